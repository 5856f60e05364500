"""`taskloom serve` as a real process over stdio, Streamable HTTP and SSE, through real clients."""

import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import SSETransport, StreamableHttpTransport

from tests.fixtures.inspector import Unavailable, inspector_command
from tests.fixtures.taskloom_process import (
    SERVE,
    HttpServer,
    http_server,
    log_events,
    log_lines,
    run_status,
    server_env,
    stdio_client,
)
from tests.mcp.conftest import eventually, task_args
from tests.mcp.test_task_tools import PRODUCT_TOOLS

pytestmark = pytest.mark.slow

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
TOKENS = f"alice={ALICE},bob={BOB}"


async def call(client: Client[Any], tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert result.structured_content is not None, result
    return result.structured_content


_NUMBERS = itertools.count(1)


async def create(client: Client[Any], **overrides: Any) -> str:
    """A new task's id; named apart (the servers here outlive one test) unless given a name."""
    overrides.setdefault("name", f"Morning digest {next(_NUMBERS)}")
    task_id: str = (await call(client, "create_task", task_args(**overrides)))["task"]["id"]
    return task_id


async def listed_ids(client: Client[Any]) -> list[str]:
    return [t["id"] for t in (await call(client, "list_tasks", {}))["tasks"]]


# -- stdio ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "version"), [("legacy", "2025-11-25"), ("auto", "2026-07-28")], ids=["2025", "2026"]
)
async def test_stdio_serves_both_protocol_eras(tmp_path: Path, mode: str, version: str) -> None:
    """A stdio server negotiates either era and lists tools, creates and lists a task."""
    async with stdio_client(tmp_path / "t.db", tmp_path / "serve.log", mode=mode) as client:
        assert client.protocol_version == version
        assert {t.name for t in await client.list_tools()} == PRODUCT_TOOLS
        task_id = await create(client)
        assert await listed_ids(client) == [task_id]


def test_stdio_stdout_carries_only_protocol(tmp_path: Path) -> None:
    """Every line a stdio server writes to stdout is a JSON-RPC message."""
    hello = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}},
    }  # fmt: skip
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    lines = [hello, {"jsonrpc": "2.0", "method": "notifications/initialized"}, ping]
    with subprocess.Popen(
        SERVE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env=server_env(tmp_path / "t.db"),
    ) as server:  # fmt: skip
        assert server.stdin is not None
        assert server.stdout is not None
        try:
            server.stdin.write("".join(json.dumps(m) + "\n" for m in lines))
            server.stdin.flush()
            # Both answers before stdin closes: a server may drop requests in flight at EOF.
            answered = [server.stdout.readline(), server.stdout.readline()]
            server.stdin.close()
            rest = server.stdout.read()
            server.wait(timeout=30)
        finally:
            server.kill()
    answers = [json.loads(line) for line in [*answered, *rest.splitlines()]]
    assert [a["id"] for a in answers] == [1, 2]
    assert all(a["jsonrpc"] == "2.0" and "result" in a for a in answers)


async def test_stdio_stderr_carries_only_json_logs(tmp_path: Path) -> None:
    """A stdio server's stderr is structlog JSON lines, one event each, with no stray prints."""
    log = tmp_path / "serve.log"
    async with stdio_client(tmp_path / "t.db", log) as client:
        await create(client)
    events = log_events(log)
    assert {"scheduler_started", "task_created", "scheduler_stopped"} <= {
        e["event"] for e in events
    }
    assert all({"event", "level", "timestamp"} <= e.keys() for e in events)


async def test_tasks_survive_a_server_restart(tmp_path: Path) -> None:
    """A task created through one stdio process is listed by the next one on the same file."""
    db = tmp_path / "t.db"
    async with stdio_client(db, tmp_path / "first.log") as first:
        task_id = await create(first)
    async with stdio_client(db, tmp_path / "second.log") as second:
        assert await listed_ids(second) == [task_id]


async def test_two_servers_on_one_file_see_each_others_tasks(tmp_path: Path) -> None:
    """Two stdio processes open at once on one database file each see the other's tasks."""
    db = tmp_path / "t.db"
    async with (
        stdio_client(db, tmp_path / "a.log") as a,
        stdio_client(db, tmp_path / "b.log") as b,
    ):
        from_a = await create(a, name="from a")
        from_b = await create(b, name="from b")
        both = sorted([from_a, from_b])
        assert sorted(await listed_ids(a)) == both
        assert sorted(await listed_ids(b)) == both


async def test_stdio_finishes_an_in_flight_run_after_the_client_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After stdin closes, the server finishes a started run before it exits on its own."""
    # The SDK kills a stdio server 2 s after closing its stdin; wait longer, to see the server's
    # own shutdown (a kill would leave the run `running`, then `interrupted` by a sweeper).
    monkeypatch.setattr("mcp.client.stdio.PROCESS_TERMINATION_TIMEOUT", 30.0)
    db, log = tmp_path / "t.db", tmp_path / "serve.log"
    slow = [{"id": "pause", "tool": "wait", "args": {"seconds": 2}}]
    async with stdio_client(db, log, TASKLOOM_SHUTDOWN_GRACE_S="30") as client:
        task_id = await create(client, steps=slow, trigger=None)
        run = (await call(client, "run_task", {"task_id": task_id, "wait": False}))["run"]
        assert run["status"] == "running"
    assert run_status(db, run["id"]) == "succeeded"
    drained = next(e for e in log_events(log) if e["event"] == "runs_drained")
    assert (drained["finished"], drained["cancelled"]) == (1, 0)


async def test_stdio_records_a_run_cut_short_by_sigterm(tmp_path: Path) -> None:
    """A run still going when the client's SIGTERM comes gets a final record, not `running`."""
    db, log = tmp_path / "t.db", tmp_path / "serve.log"
    slow = [{"id": "pause", "tool": "wait", "args": {"seconds": 60}}]
    async with stdio_client(db, log, TASKLOOM_SHUTDOWN_GRACE_S="60") as client:
        task_id = await create(client, steps=slow, trigger=None)
        run = (await call(client, "run_task", {"task_id": task_id, "wait": False}))["run"]
    assert run_status(db, run["id"]) in {"cancelled", "interrupted"}
    assert "run_finished" in {e["event"] for e in log_events(log)}


# -- Streamable HTTP with bearer tokens ---------------------------------------------------------


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One `serve --transport http` with tokens for alice and bob, shared by this module."""
    db = tmp_path_factory.mktemp("http") / "t.db"
    with http_server(db, TASKLOOM_HTTP_TOKENS=TOKENS) as server:
        yield server


def http_client(server: HttpServer, token: str | None) -> Client[StreamableHttpTransport]:
    return Client(StreamableHttpTransport(f"{server.url}/mcp", auth=token))


async def test_streamable_http_serves_mcp_with_a_token(http: HttpServer) -> None:
    """A client with a valid bearer token lists the tools at /mcp and creates a task."""
    async with http_client(http, ALICE) as client:
        assert {t.name for t in await client.list_tools()} == PRODUCT_TOOLS
        task_id = await create(client)
        assert task_id in await listed_ids(client)


@pytest.mark.parametrize("token", [None, "not-a-valid-token-at-all"])
async def test_mcp_without_a_valid_token_gets_401(http: HttpServer, token: str | None) -> None:
    """A request to /mcp without a valid bearer token is refused with 401."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=http.url) as raw:
        answer = await raw.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                headers=headers)  # fmt: skip
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("header", "status"),
    [({"Host": "evil.example"}, 421), ({"Origin": "http://evil.example"}, 403)],
    ids=["host", "origin"],
)
async def test_foreign_host_or_origin_is_refused(
    http: HttpServer, header: dict[str, str], status: int
) -> None:
    """A request naming a foreign Host or Origin is refused even with a valid token."""
    headers = {"Authorization": f"Bearer {ALICE}", **header}
    async with httpx.AsyncClient(base_url=http.url) as raw:
        answer = await raw.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                headers=headers)  # fmt: skip
    assert answer.status_code == status


async def test_each_token_sees_only_its_own_tasks(http: HttpServer) -> None:
    """Tasks created with alice's token are invisible to bob's, and the other way round."""
    async with http_client(http, ALICE) as alice, http_client(http, BOB) as bob:
        alices = await create(alice, name="alice's")
        bobs = await create(bob, name="bob's")
        assert alices in await listed_ids(alice)
        assert bobs not in await listed_ids(alice)
        assert await listed_ids(bob) == [bobs]
        result = await bob.call_tool("get_task", {"task_id": alices}, raise_on_error=False)
        assert result.is_error


# -- POST /events/{name} ------------------------------------------------------------------------


async def post_event(
    server: HttpServer, name: str, token: str | None, **request: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=server.url) as raw:
        return await raw.post(f"/events/{name}", headers=headers, **request)


async def test_posted_event_starts_only_the_token_owners_tasks(http: HttpServer) -> None:
    """POST /events/{name} runs the caller's listening tasks with the body as {{ event }}."""
    render = {"id": "say", "tool": "render", "args": {"template": "v{{ event.version }}"}}
    args: dict[str, Any] = {"steps": [render], "trigger": {"event": "deployed"}}
    async with http_client(http, ALICE) as alice, http_client(http, BOB) as bob:
        alices = await create(alice, **args)
        await create(bob, **args)
        answer = await post_event(http, "deployed", ALICE, json={"version": 7})
        assert answer.status_code == 200
        body = answer.json()
        assert (body["event"], len(body["runs"])) == ("deployed", 1)

        async def finished() -> dict[str, Any] | None:
            run = (await call(alice, "get_run", {"run_id": body["runs"][0]}))["run"]
            return run if run["status"] == "succeeded" else None

        run = await eventually(finished)
    assert (run["task_id"], run["trigger"], run["output"]) == (alices, "event", "v7")


async def test_posted_event_with_no_listener_says_so(http: HttpServer) -> None:
    """An event nobody listens to answers 200 with no runs and how to listen to it."""
    answer = await post_event(http, "nobody.listens", BOB)
    assert answer.status_code == 200
    assert answer.json()["runs"] == []
    assert "{'event': 'nobody.listens'}" in answer.json()["message"]


@pytest.mark.parametrize("token", [None, "not-a-valid-token-at-all"])
async def test_posted_event_without_a_valid_token_gets_401(
    http: HttpServer, token: str | None
) -> None:
    """POST /events/{name} without a valid bearer token is refused with 401 and starts nothing."""
    answer = await post_event(http, "deployed", token, json={})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("name", "request_args", "fragment"),
    [
        ("bad name!", {}, "letters, digits"),
        ("deployed", {"content": b"{not json"}, "not valid JSON"),
        ("deployed", {"json": [1, 2]}, "JSON list"),
        ("deployed", {"json": "text"}, "JSON str"),
    ],
    ids=["name", "json", "list", "string"],
)
async def test_bad_posted_event_is_explained(
    http: HttpServer, name: str, request_args: dict[str, Any], fragment: str
) -> None:
    """A bad event name or a body that is not a JSON object gets 400 saying what to send."""
    answer = await post_event(http, name, ALICE, **request_args)
    assert answer.status_code == 400
    assert fragment in answer.json()["message"]


# -- other transports and the server's own shutdown ---------------------------------------------


async def test_sse_transport_serves_legacy_clients(tmp_path: Path) -> None:
    """`serve --transport sse` answers a legacy SSE client: tools, then a created task."""
    with http_server(tmp_path / "t.db", "sse") as server:
        async with Client(SSETransport(f"{server.url}/sse")) as client:
            assert client.protocol_version == "2025-11-25"
            assert {t.name for t in await client.list_tools()} == PRODUCT_TOOLS
            task_id = await create(client)
            assert await listed_ids(client) == [task_id]


def test_http_server_closes_its_services_on_sigterm(tmp_path: Path) -> None:
    """On SIGTERM an HTTP server stops its scheduler and store before it exits."""
    with http_server(tmp_path / "t.db") as server:
        assert server.stop() == 128 + 15
    events = [json.loads(line)["event"] for line in log_lines(server.log)]
    assert events[-1] == "scheduler_stopped"


# -- the MCP Inspector CLI ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def inspector() -> list[str]:
    """The Inspector CLI's command; skips without Node >= 22 or the npm registry (fails in CI)."""
    try:
        return inspector_command()
    except Unavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the MCP Inspector: {exc}")
        pytest.skip(str(exc))


def inspect(inspector: list[str], tmp_path: Path, *method: str) -> dict[str, Any]:
    """The Inspector CLI's JSON answer for one method against `taskloom serve` over stdio."""
    server = server_env(tmp_path / "t.db")
    settings = [f"{k}={v}" for k, v in server.items() if k.startswith(("TASKLOOM_", "FASTMCP_"))]
    env = {
        **os.environ, "HOME": str(tmp_path / "home"),
        "MCP_CATALOG_PATH": str(tmp_path / "catalog.json"),
        "MCP_CLIENT_CONFIG_PATH": str(tmp_path / "client.json"),
    }  # fmt: skip
    args = [*inspector, "--cli", "--format", "json", *(a for s in settings for a in ("-e", s))]
    done = subprocess.run(
        [*args, *SERVE, *method], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)["result"]
    return answer


def test_inspector_cli_lists_tools_and_creates_a_task(inspector: list[str], tmp_path: Path) -> None:
    """The MCP Inspector CLI lists the product tools and creates a task over stdio."""
    listed = inspect(inspector, tmp_path, "--method", "tools/list")
    assert {t["name"] for t in listed["tools"]} == PRODUCT_TOOLS
    steps = json.dumps([{"id": "pause", "tool": "wait", "args": {"seconds": 0}}])
    created = inspect(
        inspector, tmp_path, "--method", "tools/call", "--tool-name", "create_task",
        "--tool-arg", "name=Inspected", f"steps={steps}",
    )  # fmt: skip
    assert not created.get("isError"), created
    task = created["structuredContent"]["task"]
    assert (task["name"], task["steps"][0]["tool"]) == ("Inspected", "wait")
