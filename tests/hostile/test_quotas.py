"""Hostile principals against a real `taskloom serve --transport http`: every quota refuses by
name, a burst of manual runs obeys the overlap policy, oversized events are refused before they
are read, scheduler_status shows each principal only its own figures, and the other principal keeps
being answered throughout."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import ToolError

from taskloom.domain.tasks import TaskSpec
from taskloom.errors import Conflict
from taskloom.services import build_services
from tests.conftest import make_settings
from tests.fixtures.taskloom_process import HttpServer, http_server
from tests.hostile.conftest import named

pytestmark = pytest.mark.slow

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
CAROL = "carol-token-0123456789abcdef"
TOKENS = f"alice={ALICE},bob={BOB},carol={CAROL}"
LONG_WAIT = {"id": "pause", "tool": "wait", "args": {"seconds": 600}}
QUICK = {"id": "say", "tool": "render", "args": {"template": "hi"}}
PAYLOAD_LIMIT = 4096


@contextmanager
def hostile_server(tmp_path: Path, **env: str) -> Iterator[tuple[HttpServer, Path]]:
    """A server with three principals (carol is an operator) and the given quota settings."""
    db = tmp_path / "t.db"
    settings = {
        "TASKLOOM_HTTP_TOKENS": TOKENS,
        "TASKLOOM_OPERATORS": "carol",
        "TASKLOOM_MAX_EVENT_PAYLOAD_BYTES": str(PAYLOAD_LIMIT),
        "TASKLOOM_SHUTDOWN_GRACE_S": "0",
        **env,
    }
    with http_server(db, **settings) as server:
        yield server, db
        assert server.process.poll() is None, "the server died"


def client(server: HttpServer, token: str, mode: str = "auto") -> Client[StreamableHttpTransport]:
    transport = StreamableHttpTransport(f"{server.url}/mcp", auth=token)
    return Client(transport, mode=mode, timeout=300)


async def call(c: Client[Any], tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await c.call_tool(tool, args)
    assert result.structured_content is not None, result
    return result.structured_content


async def refusal(c: Client[Any], tool: str, args: dict[str, Any]) -> str:
    with pytest.raises(ToolError) as caught:
        await c.call_tool(tool, args)
    return str(caught.value)


async def create(c: Client[Any], steps: list[dict[str, Any]], **fields: Any) -> str:
    answer = await call(c, "create_task", {"name": named("hostile"), "steps": steps, **fields})
    return str(answer["task"]["id"])


async def start(c: Client[Any], task_id: str) -> dict[str, Any]:
    return (await call(c, "run_task", {"task_id": task_id, "wait": False}))["run"]


async def neighbour_answers(server: HttpServer) -> None:
    """Bob's list_tasks answers (the other principal is not starved)."""
    async with client(server, BOB) as bob:
        assert "tasks" in await call(bob, "list_tasks", {})


def statuses(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
    return {str(status): int(count) for status, count in rows}


async def cancel_all(c: Client[Any], db: Path, owner: str, deadline_s: float = 60.0) -> None:
    """Cancel `owner`'s runs still going until none is left going (a queued run may start as
    the one before it is cancelled, so this polls, with a generous deadline)."""
    deadline = asyncio.get_running_loop().time() + deadline_s
    while (left := going(db, owner)) and asyncio.get_running_loop().time() < deadline:
        for run_id in left:  # one that ended meanwhile answers "nothing to cancel": fine
            await c.call_tool("cancel_run", {"run_id": run_id}, raise_on_error=False)
        await asyncio.sleep(0.2)
    assert going(db, owner) == []


def going(db: Path, owner: str) -> list[str]:
    query = "SELECT id FROM runs WHERE owner = ? AND status IN ('running', 'queued')"
    with sqlite3.connect(db) as conn:
        return [str(row[0]) for row in conn.execute(query, (owner,))]


def stored_bytes(folder: Path) -> int:
    """The database file and its WAL and shared-memory files."""
    return sum(p.stat().st_size for p in folder.glob("t.db*"))


# -- quotas -------------------------------------------------------------------------------------


async def test_concurrent_run_quota_refuses_by_name(tmp_path: Path) -> None:
    """A principal at TASKLOOM_MAX_CONCURRENT_RUNS is refused another run; others are not."""
    with hostile_server(tmp_path, TASKLOOM_MAX_CONCURRENT_RUNS="2") as (server, db):
        async with client(server, ALICE) as alice, client(server, BOB) as bob:
            task = await create(alice, [LONG_WAIT], overlap="allow")
            await start(alice, task)
            await start(alice, task)
            message = await refusal(alice, "run_task", {"task_id": task, "wait": False})
            assert "TASKLOOM_MAX_CONCURRENT_RUNS=2" in message
            assert "'alice' already has 2 runs running" in message
            bobs = await create(bob, [LONG_WAIT])
            assert (await start(bob, bobs))["status"] == "running"
            await neighbour_answers(server)
            assert statuses(db) == {"running": 3}
            await cancel_all(alice, db, "alice")
            await cancel_all(bob, db, "bob")


async def test_queued_run_quota_refuses_by_name(tmp_path: Path) -> None:
    """Past TASKLOOM_MAX_QUEUED_RUNS a manual run that would queue is refused, naming it."""
    with hostile_server(tmp_path, TASKLOOM_MAX_QUEUED_RUNS="1") as (server, db):
        async with client(server, ALICE) as alice:
            first = await create(alice, [LONG_WAIT], overlap="queue")
            second = await create(alice, [LONG_WAIT], overlap="queue")
            await start(alice, first)
            assert (await start(alice, first))["status"] == "queued"
            await start(alice, second)
            message = await refusal(alice, "run_task", {"task_id": second, "wait": False})
            assert "TASKLOOM_MAX_QUEUED_RUNS=1" in message
            await neighbour_answers(server)
            await cancel_all(alice, db, "alice")


async def test_runs_per_minute_quota_refuses_by_name(tmp_path: Path) -> None:
    """Past TASKLOOM_MAX_RUNS_PER_MINUTE a principal's runs are refused; another's still start."""
    with hostile_server(tmp_path, TASKLOOM_MAX_RUNS_PER_MINUTE="3") as (server, db):
        async with client(server, ALICE) as alice, client(server, BOB) as bob:
            task = await create(alice, [QUICK], overlap="allow")
            for _ in range(3):
                await start(alice, task)
            message = await refusal(alice, "run_task", {"task_id": task})
            assert "quota of 3 runs per minute (TASKLOOM_MAX_RUNS_PER_MINUTE)" in message
            bobs = await create(bob, [QUICK])
            assert (await call(bob, "run_task", {"task_id": bobs}))["run"]["status"] == "succeeded"
            await cancel_all(alice, db, "alice")


@pytest.mark.timeout(900)
async def test_300_concurrent_manual_runs_of_a_skip_task_start_exactly_one(
    tmp_path: Path,
) -> None:
    """300 concurrent run_task(wait=false) calls on an overlap 'skip' task start one run."""
    with hostile_server(tmp_path) as (server, db):
        async with client(server, ALICE) as alice:
            task = await create(alice, [LONG_WAIT], overlap="skip")

            async def attempt(c: Client[Any]) -> str:
                try:
                    return (await start(c, task))["status"]
                except ToolError as exc:
                    return str(exc)

            async with AsyncExitStack() as stack:
                # The 2025 protocol era: under the 2026 one the server lists every tool on
                # each tools/call (its Mcp-Param header check), which here costs ~0.5 s a call
                # and would make this a test of that listing rather than of admission.
                opened = [client(server, ALICE, mode="legacy") for _ in range(10)]
                clients = [await stack.enter_async_context(c) for c in opened]
                outcomes = await asyncio.gather(*(attempt(clients[i % 10]) for i in range(300)))
            await neighbour_answers(server)
            assert outcomes.count("running") == 1
            refused = [o for o in outcomes if o != "running"]
            assert all("overlap policy is 'skip'" in o for o in refused), set(refused)
            assert statuses(db) == {"running": 1}
            await cancel_all(alice, db, "alice")


async def test_oversized_emit_event_payload_is_refused_by_name(tmp_path: Path) -> None:
    """emit_event with a payload over the limit is refused, naming the setting; nothing runs."""
    with hostile_server(tmp_path) as (server, db):
        async with client(server, ALICE) as alice:
            await create(alice, [QUICK], trigger={"event": "deploy"})
            payload = {"blob": "x" * PAYLOAD_LIMIT}
            message = await refusal(alice, "emit_event", {"name": "deploy", "payload": payload})
            assert "TASKLOOM_MAX_EVENT_PAYLOAD_BYTES" in message
            assert statuses(db) == {}


async def test_posted_event_over_the_limit_gets_413_by_content_length(tmp_path: Path) -> None:
    """A POST /events body declared larger than the limit is refused with 413 unread."""
    with hostile_server(tmp_path) as (server, db):
        async with client(server, ALICE) as alice:
            await create(alice, [QUICK], trigger={"event": "deploy"})
            await create(alice, [QUICK], trigger={"event": "deploy"})
        body = b'{"blob": "' + b"x" * (20 * 1024 * 1024) + b'"}'
        answer = await _post(server, body)
        assert answer.status_code == 413
        assert "TASKLOOM_MAX_EVENT_PAYLOAD_BYTES" in answer.json()["message"]
        assert statuses(db) == {}
        await neighbour_answers(server)


async def test_posted_chunked_event_over_the_limit_gets_413_while_streaming(
    tmp_path: Path,
) -> None:
    """A chunked 100 MB POST /events body is refused with 413; nothing of it is stored."""
    with hostile_server(tmp_path) as (server, db):
        async with client(server, ALICE) as alice:
            await create(alice, [QUICK], trigger={"event": "deploy"})
            await create(alice, [QUICK], trigger={"event": "deploy"})

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"blob": "'
            for _ in range(100):
                yield b"x" * (1024 * 1024)
            yield b'"}'

        answer = await _post(server, chunks())
        assert answer.status_code == 413
        assert "TASKLOOM_MAX_EVENT_PAYLOAD_BYTES" in answer.json()["message"]
        assert statuses(db) == {}
        stored = stored_bytes(tmp_path)
        assert stored < 5 * 1024 * 1024, stored
        await neighbour_answers(server)


async def test_posted_event_within_the_limit_is_stored_once_per_listener(tmp_path: Path) -> None:
    """An event within the limit starts each listening task once; its payload stays bounded."""
    with hostile_server(tmp_path) as (server, db):
        async with client(server, ALICE) as alice:
            for _ in range(3):
                await create(alice, [QUICK], trigger={"event": "deploy"})
        answer = await _post(server, b'{"blob": "' + b"x" * (PAYLOAD_LIMIT - 20) + b'"}')
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["runs"]) == 3
        with sqlite3.connect(db) as conn:
            sizes = [r[0] for r in conn.execute("SELECT length(event) FROM runs")]
        assert len(sizes) == 3
        assert all(size <= PAYLOAD_LIMIT for size in sizes), sizes


async def _post(server: HttpServer, content: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {ALICE}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as raw:
        return await raw.post("/events/deploy", headers=headers, content=content)


# -- scheduler_status ---------------------------------------------------------------------------


async def test_scheduler_status_shows_a_principal_only_its_own_figures(tmp_path: Path) -> None:
    """Bob sees only his tasks' figures and no hosts or pids; carol, an operator, sees them."""
    with hostile_server(tmp_path) as (server, db):
        async with client(server, ALICE) as alice, client(server, BOB) as bob:
            task = await create(alice, [LONG_WAIT], overlap="allow")
            await start(alice, task)
            await create(alice, [QUICK], trigger={"every": "1h"})
            seen = await call(bob, "scheduler_status", {})
            assert (seen["runs_in_flight"], seen["next_fires"], seen["per_task"]) == ([], [], [])
            assert (seen["queue_depth"], seen["tasks_by_status"]) == (0, {})
            assert seen["processes"] == []
            assert str(server.process.pid) not in str(seen)
            own = await call(alice, "scheduler_status", {})
            assert [r["holder"] for r in own["runs_in_flight"]] == [None]
            assert own["processes"] == []
            async with client(server, CAROL) as carol:
                operator = await call(carol, "scheduler_status", {})
            assert server.process.pid in [p["pid"] for p in operator["processes"]]
            await cancel_all(alice, db, "alice")


# -- the race, in the store itself, on SQLite and PostgreSQL ------------------------------------


async def test_manual_admission_is_race_free_on_every_store(tmp_path: Path, db_url: str) -> None:
    """300 concurrent manual runs of an overlap 'skip' task, from two processes' services on one
    database, record exactly one run."""
    settings = make_settings(tmp_path, database_url=db_url, scheduler=False)
    first, second = build_services(settings), build_services(settings)
    await first.start()
    await second.start()
    try:
        spec = TaskSpec(name="racy", steps=[QUICK], overlap="skip")
        task = (await first.tasks.create(spec, owner="alice")).task
        sides = [first, second]
        results = await asyncio.gather(
            *(sides[i % 2].runs.admit_manual(task.id, owner="alice") for i in range(300)),
            return_exceptions=True,
        )
        admitted = [r for r in results if not isinstance(r, BaseException)]
        assert len(admitted) == 1
        assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
        page = await first.store.list_runs(owner=None, limit=200)
        assert [r.status.value for r in page.items] == ["running"]
        await first.runs.cancel(page.items[0].id, owner=None)
    finally:
        await second.stop(0)
        await first.stop(0)
