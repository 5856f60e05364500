"""Secrets: resolved by name at run time from TASKLOOM_SECRET_<NAME> or a 0600 file, and never
found in the database, the logs, run outputs or tool answers."""

import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.fixtures.api_server import ApiServer
from tests.mcp.conftest import Loom, LoomFactory

SECRET = "tok-5f2a9c81e7d3"


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKLOOM_SECRET_API_TOKEN", SECRET)


def echo_with_token(api: ApiServer) -> dict[str, Any]:
    return {
        "id": "call",
        "tool": "http_request",
        "args": {
            "url": api.url("/echo"),
            "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
        },
    }


def fail_with_token(api: ApiServer) -> dict[str, Any]:
    url = api.url("/fail") + "?key={{ secrets.API_TOKEN }}"
    return {"id": "call", "tool": "http_request", "args": {"url": url}}


@pytest.mark.usefixtures("token_env")
async def test_an_env_secret_reaches_the_request_but_not_the_answer(
    loom: Loom, api: ApiServer
) -> None:
    """The request carries the secret; args and the echoed output show it redacted."""
    result = await loom.client.call_tool(
        "run_task", {"task_id": await loom.create([echo_with_token(api)])}
    )
    assert SECRET not in json.dumps(result.structured_content)
    assert SECRET not in str(result.content)
    run = result.structured_content["run"]  # type: ignore[index]
    step = run["steps"][0]
    assert step["args"]["headers"] == {"Authorization": "Bearer [secret:API_TOKEN]"}
    assert step["output"]["json"]["headers"]["authorization"] == "Bearer [secret:API_TOKEN]"


async def test_a_file_secret_is_used(
    open_loom: LoomFactory, api: ApiServer, tmp_path: Path
) -> None:
    """A secret from a 0600 secrets file fills the template like an environment one."""
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text(f"# tokens\nAPI_TOKEN={SECRET}\n")
    secrets_file.chmod(0o600)
    async with open_loom(secrets_file=secrets_file) as loom:
        run = await loom.run(await loom.create([echo_with_token(api)]))
    assert run["status"] == "succeeded"
    assert run["steps"][0]["output"]["json"]["headers"]["authorization"] == (
        "Bearer [secret:API_TOKEN]"
    )


async def test_a_readable_secrets_file_fails_the_run(
    open_loom: LoomFactory, api: ApiServer, tmp_path: Path
) -> None:
    """A secrets file others may read fails the run with the chmod fix, and is not used."""
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text(f"API_TOKEN={SECRET}\n")
    secrets_file.chmod(0o644)
    async with open_loom(secrets_file=secrets_file) as loom:
        run = await loom.run(await loom.create([echo_with_token(api)]))
    assert run["status"] == "failed"
    assert f"chmod 600 {secrets_file}" in run["error"]
    assert [s["status"] for s in run["steps"]] == ["skipped"]


async def test_a_missing_secret_fails_the_step_naming_it(loom: Loom, api: ApiServer) -> None:
    """A template naming an unset secret fails its step, saying how to set it."""
    run = await loom.run(await loom.create([echo_with_token(api)]))
    assert run["status"] == "failed"
    assert "TASKLOOM_SECRET_API_TOKEN" in run["steps"][0]["error"]


@pytest.mark.usefixtures("token_env")
async def test_a_render_template_may_use_a_secret(loom: Loom) -> None:
    """A render template reads {{ secrets.NAME }} itself; its stored output is redacted."""
    step = {"id": "say", "tool": "render", "args": {"template": "key={{ secrets.API_TOKEN }}"}}
    run = await loom.run(await loom.create([step]))
    assert (run["status"], run["output"]) == ("succeeded", "key=[secret:API_TOKEN]")


@pytest.mark.usefixtures("token_env")
async def test_errors_and_logs_hide_the_secret(loom: Loom, api: ApiServer) -> None:
    """A failing request whose URL holds the secret shows it redacted in error and logs."""
    task_id = await loom.create([fail_with_token(api)], notify={"on": "failure"})
    with capture_logs() as logs:
        run = await loom.run(task_id)
    assert run["status"] == "failed"
    assert "[secret:API_TOKEN]" in run["steps"][0]["error"]
    assert SECRET not in json.dumps(run)
    assert logs
    assert SECRET not in json.dumps(logs, default=str)


@pytest.mark.usefixtures("token_env")
async def test_a_dry_run_answer_hides_the_secret(loom: Loom, api: ApiServer) -> None:
    """dry_run's answer shows the secret only as its redaction marker."""
    result = await loom.client.call_tool("dry_run", {"steps": [echo_with_token(api)]})
    assert "[secret:API_TOKEN]" in json.dumps(result.structured_content)
    assert SECRET not in json.dumps(result.structured_content)


@pytest.mark.usefixtures("token_env")
async def test_the_database_never_holds_a_secret(
    loom: Loom, api: ApiServer, tmp_path: Path
) -> None:
    """After successful and failing runs, no database file contains the secret's bytes."""
    good = await loom.create([echo_with_token(api)], summary={"enabled": True})
    bad = await loom.create([fail_with_token(api)])
    assert (await loom.run(good))["status"] == "succeeded"
    assert (await loom.run(bad))["status"] == "failed"
    stored = database_files(tmp_path)
    assert "taskloom.db" in stored
    for name, content in stored.items():
        assert SECRET.encode() not in content, name


def database_files(folder: Path) -> dict[str, bytes]:
    """The SQLite database and its WAL and shared-memory files, by name."""
    return {path.name: path.read_bytes() for path in folder.glob("taskloom.db*")}
