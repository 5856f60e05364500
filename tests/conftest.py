"""Fixtures shared by every layer: settings on a temp SQLite file, a real PostgreSQL database per
test where asked, the server, and a real in-memory MCP client."""

import asyncio
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from taskloom import logging as tl_logging
from taskloom.settings import Settings
from tests.fixtures.api_server import ApiServer, serve_api

PG_ADMIN_URL = os.environ.get("TASKLOOM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

os.environ["FASTMCP_SHOW_SERVER_BANNER"] = "false"
os.environ["FASTMCP_CHECK_FOR_UPDATES"] = "off"
tl_logging.configure("info", "console")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own config, data directory or secrets."""
    for key in list(os.environ):
        if key.startswith("TASKLOOM_") and key != "TASKLOOM_TEST_PG_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("TASKLOOM_CONFIG_FILE", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("TASKLOOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


@pytest.fixture(autouse=True)
def _stdio_servers_reaped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stdio client waits until the server it killed is reaped. The SDK gives up after 2 s; on
    a busy machine the process then dies later and its `Popen` warns (ResourceWarning, an error
    here) in whichever test happens to collect it."""
    import mcp.client.stdio

    monkeypatch.setattr(mcp.client.stdio, "_KILL_REAP_TIMEOUT", 60.0)


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": f"sqlite:///{tmp_path / 'taskloom.db'}",
        "timezone": "UTC",
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def _blocking(coro: Any) -> Any:
    """Run a coroutine to completion on a private loop (fixtures here are synchronous)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _pg_admin(sql: str | None) -> str | None:
    import asyncpg

    try:
        conn = await asyncio.wait_for(asyncpg.connect(PG_ADMIN_URL), timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({type(exc).__name__}: {exc})"
    try:
        if sql:
            await conn.execute(sql)
    finally:
        await conn.close()
    return None


def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards; skips (fails in CI) without one."""
    problem = _blocking(_pg_admin(None))
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must reach PostgreSQL: {problem}")
        pytest.skip(problem)
    name = f"taskloom_t_{uuid.uuid4().hex[:12]}"
    _blocking(_pg_admin(f'CREATE DATABASE "{name}"'))
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    _blocking(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from pg_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test over the embedded SQLite file and a real PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'contract.db'}"
    else:
        yield from pg_database()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def api() -> Iterator[ApiServer]:
    """The loopback test API (tests/fixtures/api_server.py), one server for the session."""
    with serve_api() as server:
        yield server
