"""Protocol details that need a real `taskloom serve` process: a bad stdio line, and resuming a
Streamable HTTP stream with Last-Event-ID after the connection was lost."""

import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.taskloom_process import SERVE, http_server, server_env
from tests.mcp.conftest import task_args

pytestmark = pytest.mark.slow

HELLO = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "raw", "version": "0"}},
}  # fmt: skip
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def test_stdio_answers_a_line_that_is_not_json_and_goes_on(tmp_path: Path) -> None:
    """A line that is not JSON gets a -32700 parse error, one that is JSON but no message a
    -32600, each with a null id, and the next request is answered as usual."""
    with subprocess.Popen(
        SERVE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=server_env(tmp_path / "t.db"),
    ) as server:  # fmt: skip
        assert server.stdin is not None
        assert server.stdout is not None
        try:
            server.stdin.write(line(HELLO) + line(INITIALIZED))
            server.stdin.write(b"this is {not json\n" + b'{"hello": "world"}\n')
            server.stdin.write(line({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
            server.stdin.flush()
            answers = [json.loads(server.stdout.readline()) for _ in range(4)]
            server.stdin.close()
            server.wait(timeout=30)
        finally:
            server.kill()
    assert answers[0]["id"] == 1
    assert "result" in answers[0]
    assert [(a["id"], a["error"]["code"]) for a in answers[1:3]] == [(None, -32700), (None, -32600)]
    assert "not valid JSON" in answers[1]["error"]["message"]
    assert answers[3] == {"jsonrpc": "2.0", "id": 2, "result": {}}


# -- Streamable HTTP: resuming after a lost connection ------------------------------------------


class McpHttp:
    """A raw Streamable HTTP session (2025-11-25 era) that sees SSE event ids and can drop a
    response stream mid-way, as a client on a flaky network would."""

    def __init__(self, raw: httpx.AsyncClient) -> None:
        self.raw = raw
        self.headers = {"Accept": "application/json, text/event-stream"}

    async def open(self) -> None:
        hello = await self.raw.post("/mcp", json=HELLO, headers=self.headers)
        hello.raise_for_status()
        self.headers |= {
            "mcp-session-id": hello.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-11-25",
        }
        await self.raw.post("/mcp", json=INITIALIZED, headers=self.headers)

    async def call(self, request_id: int, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                "params": {"name": tool, "arguments": args}}  # fmt: skip
        async with self.raw.stream("POST", "/mcp", json=body, headers=self.headers) as answer:
            async for event in sse_events(answer):
                if event.get("id") == request_id:
                    return event
        raise AssertionError(f"no answer to {tool}")


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each SSE event's JSON message, with the event's id under `sse_id` (priming events too)."""
    fields: dict[str, str] = {}
    async for text in response.aiter_lines():
        if text:
            name, _, value = text.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        message = json.loads(fields["data"]) if fields.get("data") else {}
        yield {**message, "sse_id": fields.get("id")}
        fields = {}


async def test_client_that_lost_its_connection_resumes_and_gets_the_run(tmp_path: Path) -> None:
    """A client whose run_task stream breaks after the first progress reconnects with
    Last-Event-ID and receives the rest of the progress and the run's result."""
    slow = [{"id": "pause", "tool": "wait", "args": {"seconds": 2}}]
    with http_server(tmp_path / "t.db") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as raw:
            session = McpHttp(raw)
            await session.open()
            created = await session.call(2, "create_task", task_args(steps=slow, trigger=None))
            task_id = created["result"]["structuredContent"]["task"]["id"]
            run = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                   "params": {"name": "run_task", "arguments": {"task_id": task_id},
                              "_meta": {"progressToken": "p"}}}  # fmt: skip
            seen: list[dict[str, Any]] = []
            async with raw.stream("POST", "/mcp", json=run, headers=session.headers) as first:
                async for event in sse_events(first):
                    seen.append(event)
                    if event.get("method") == "notifications/progress":
                        break  # the connection is lost here, the run goes on
            resume = session.headers | {"Last-Event-ID": seen[-1]["sse_id"]}
            async with raw.stream("GET", "/mcp", headers=resume) as again:
                assert again.status_code == 200
                replayed = []
                async for event in sse_events(again):
                    replayed.append(event)
                    if event.get("id") == 3:
                        break
    assert seen[0]["sse_id"]
    assert "method" not in seen[0]
    progress = [
        e["params"]["message"] for e in replayed if e.get("method") == "notifications/progress"
    ]
    assert progress == ["finished: succeeded"]
    result = replayed[-1]["result"]["structuredContent"]["run"]
    assert (result["task_id"], result["status"]) == (task_id, "succeeded")
