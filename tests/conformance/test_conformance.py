"""The official MCP conformance suite against `taskloom serve --transport http`, with the
suite's fixture tools, resources and prompts mounted by a test-only server; each scenario's result
must match the committed baseline (expected pass or fail, and why)."""

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.conformance import REVISIONS, conformance_command, run_suites, verdicts
from tests.fixtures.inspector import Unavailable
from tests.fixtures.taskloom_process import HttpServer, http_server

pytestmark = pytest.mark.slow

BASELINE = Path(__file__).with_name("baseline.json")
ROOT = Path(__file__).parents[2]
FIXTURES = "tests.fixtures.conformance_server:server"


@pytest.fixture(scope="module")
def suite() -> list[str]:
    """The suite's command; skips without Node >= 22 or the npm registry (fails in CI)."""
    try:
        return conformance_command()
    except Unavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the MCP conformance suite: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One `serve --transport http` with the conformance fixtures mounted beside Taskloom's."""
    db = tmp_path_factory.mktemp("conformance") / "t.db"
    env = {"TASKLOOM_MOUNT_SERVER": FIXTURES, "PYTHONPATH": str(ROOT)}
    with http_server(db, **env) as running:
        yield running


def test_conformance_matches_the_baseline(
    suite: list[str], server: HttpServer, tmp_path: Path
) -> None:
    """Every scenario each revision requires (and those it runs unscored) passes or fails as
    the baseline says."""
    baseline = json.loads(BASELINE.read_text())
    outputs = run_suites(suite, f"{server.url}/mcp", tmp_path)
    differences = {
        revision: differing(baseline[revision], verdicts(tmp_path / revision))
        for revision in REVISIONS
    }
    assert not any(differences.values()), (
        json.dumps(differences, indent=2)
        + "\n"
        + "\n".join(output[-2000:] for output in outputs.values())
    )


def differing(expected: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """The scenarios whose result is not the expected one (or that are missing on one side)."""
    return {
        name: {
            "expected": expected.get(name, {}).get("expect"),
            "got": found.get(name, {}).get("result"),
            "failing checks": found.get(name, {}).get("failing"),
            "baseline says": expected.get(name, {}).get("why"),
        }
        for name in sorted(expected.keys() | found.keys())
        if expected.get(name, {}).get("expect") != found.get(name, {}).get("result")
    }
