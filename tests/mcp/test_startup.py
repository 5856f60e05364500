"""`taskloom serve` over stdio starts its services after the handshake (`taskloom.api.startup`):
a tool call made at once waits for them, they start on their own once the client has listed, and
a start that fails ends the server with its error."""

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from taskloom.app import build_server_starting_later
from taskloom.services import Services, build_services
from tests.conftest import make_settings
from tests.fixtures.taskloom_process import SERVE, server_env
from tests.mcp.conftest import eventually, task_args


async def test_a_call_made_at_once_waits_for_the_services(tmp_path: Path) -> None:
    """The first request is a tool call: it starts the services and is answered by them."""
    settings = make_settings(tmp_path)
    mcp, startup = build_server_starting_later(settings, lambda: build_services(settings))
    async with Client(mcp) as client:
        created = await client.call_tool("create_task", task_args(name="At once"))
        assert created.structured_content is not None
        assert created.structured_content["task"]["name"] == "At once"
        assert startup.services is not None
        assert startup.services.scheduler is not None
        assert startup.services.scheduler.started_at is not None
    assert startup.services.stopping


async def test_the_services_start_on_their_own_after_the_lists(tmp_path: Path) -> None:
    """A client that only lists still gets its services (and schedules) started."""
    settings = make_settings(tmp_path)
    mcp, startup = build_server_starting_later(settings, lambda: build_services(settings))
    async with Client(mcp) as client:
        assert await client.list_tools()
        services = await eventually(lambda: _started(startup.services), timeout_s=60)
        assert services.scheduler is not None


async def _started(services: Services | None) -> Services | None:
    return services if services is not None and services.scheduler is not None and (
        services.scheduler.started_at is not None
    ) else None  # fmt: skip


async def test_a_failed_start_is_reported_and_fails_the_call(tmp_path: Path) -> None:
    """The services' error is kept for `serve` to end with; the call waiting for them fails."""
    settings = make_settings(tmp_path)

    def broken() -> Services:
        raise RuntimeError("the store is on fire")

    mcp, startup = build_server_starting_later(settings, broken)
    async with Client(mcp) as client:
        with pytest.raises(
            ToolError, match="Taskloom could not start: RuntimeError: the store is on fire"
        ):
            await client.call_tool("list_tasks", {})
    assert startup.failed.is_set()
    assert str(startup.error) == "the store is on fire"


@pytest.mark.slow
def test_stdio_starts_its_scheduler_with_the_client_idle(tmp_path: Path) -> None:
    """Spawned and never asked anything, a stdio server still starts its scheduler."""
    log = tmp_path / "serve.log"
    with log.open("w") as err, subprocess.Popen(
        SERVE, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
        env=server_env(tmp_path / "t.db"),
    ) as server:  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while "scheduler_started" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "scheduler_started" in log.read_text(), log.read_text()
            assert server.stdin is not None
            server.stdin.close()
            assert server.wait(timeout=60) == 0
        finally:
            server.kill()


@pytest.mark.slow
def test_stdio_server_whose_services_fail_ends_with_the_error(tmp_path: Path) -> None:
    """Services that cannot start end the server with its one-line error, although the client
    keeps stdin open (the thread reading it does not hold the exit)."""
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as conn:  # a schema revision this Taskloom does not know
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('9999')")
    hello = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}},
    }  # fmt: skip
    with subprocess.Popen(
        SERVE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=server_env(db),
    ) as server:  # fmt: skip
        assert server.stdin is not None
        assert server.stderr is not None
        try:
            server.stdin.write(json.dumps(hello) + "\n")
            server.stdin.flush()
            code = server.wait(timeout=90)
            stderr = server.stderr.read()
        finally:
            server.kill()
    assert code == 1, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("unexpected error: CommandError: Can't locate revision"), stderr
    assert "'9999'" in last
