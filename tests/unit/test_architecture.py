"""The dependency rule of docs/architecture.md, checked with import-linter's contracts in
pyproject.toml: no cycle between packages, a pure domain, the store below the services, and the
services knowing the store only as its protocol."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(source_root: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the packages found under `source_root` (the repository's by default)."""
    env = {
        "PATH": str(LINT.parent),
        "PYTHONPATH": f"{source_root / 'server'}:{source_root / 'tools'}",
    }
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def copy_with(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the source tree where `module` (a path under server/) gains `line`."""
    copy = tmp_path / "copy"
    for part in ("server", "tools"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "server" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return copy


def test_the_code_keeps_every_contract(tmp_path: Path) -> None:
    """The repository's imports keep every contract."""
    done = lint(ROOT, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("taskloom/domain/tasks.py", "import taskloom.store.tables", "The domain is pure"),
        ("taskloom/domain/runs.py", "import fastmcp", "The domain is pure"),
        ("taskloom/store/stats.py", "import taskloom.runs.service", "The store depends on"),
        ("taskloom/tasks/suggest.py", "import taskloom.runs.runner", "No import cycle"),
        ("taskloom/runs/service.py", "import taskloom.store.sql", "only as its protocol"),
        ("taskloom/api/common.py", "import sqlalchemy", "only as its protocol"),
        ("taskloom/scheduling/scheduler.py", "from sqlmodel import select", "only as its protocol"),
        ("taskloom/services.py", "import taskloom.app", "never import the MCP server"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    """An import against the rule (domain -> store, domain -> FastMCP, store -> services, a
    cycle between packages, a service -> the concrete store or SQLAlchemy) fails the check and
    names the contract."""
    done = lint(copy_with(tmp_path, module, line), tmp_path)
    assert done.returncode != 0
    broken = done.stdout[done.stdout.index("Broken contracts") :]
    assert contract in broken, done.stdout
