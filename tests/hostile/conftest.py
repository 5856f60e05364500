"""A real `taskloom serve --transport http` with two principals: `alice` runs hostile tasks,
`bob` is the neighbour whose answers must keep coming."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from tests.fixtures.taskloom_process import HttpServer, http_server

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
# Generous: the neighbour's answer is late on a busy machine, but never missing.
ANSWER_DEADLINE_S = 60.0
# Small limits so each hostile case reaches them quickly.
SERVER_ENV = {
    "TASKLOOM_HTTP_TOKENS": f"alice={ALICE},bob={BOB}",
    "TASKLOOM_SANDBOX_CPU_S": "1",
    "TASKLOOM_SANDBOX_MEMORY_MB": "256",
    "TASKLOOM_SANDBOX_WALL_S": "30",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One server for the module; each test checks it is still alive at its end."""
    db = tmp_path_factory.mktemp("hostile") / "t.db"
    with http_server(db, **SERVER_ENV) as running:
        yield running


def client(server: HttpServer, token: str) -> Client[StreamableHttpTransport]:
    return Client(StreamableHttpTransport(f"{server.url}/mcp", auth=token), timeout=120)


async def call(client: Client[Any], tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert result.structured_content is not None, result
    return result.structured_content


@dataclass
class Neighbour:
    """Bob's `list_tasks`, polled in a loop while a hostile case runs."""

    answers: int = 0
    failures: list[str] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)


@asynccontextmanager
async def neighbour_polling(server: HttpServer) -> AsyncIterator[Neighbour]:
    """Polls bob's list_tasks until the block ends; each call must answer within the deadline."""
    seen = Neighbour()

    async def poll(bob: Client[Any]) -> None:
        while True:
            try:
                async with asyncio.timeout(ANSWER_DEADLINE_S):
                    await call(bob, "list_tasks", {})
                seen.answers += 1
                seen.answered.set()
            except TimeoutError:
                seen.failures.append(f"list_tasks gave no answer within {ANSWER_DEADLINE_S} s")
            except Exception as exc:  # any failed call is what the test reports
                seen.failures.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.1)

    async with client(server, BOB) as bob:
        poller = asyncio.create_task(poll(bob))
        try:
            yield seen
            # One more answer after the hostile work: the server still serves bob.
            seen.answered.clear()
            await asyncio.wait_for(seen.answered.wait(), 2 * ANSWER_DEADLINE_S)
        finally:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
    assert seen.failures == []
    assert seen.answers >= 1
    assert server.process.poll() is None, server.log.read_text()[-3000:]


def named(prefix: str) -> str:
    """A task name of its own: names are unique per owner, and the server outlives a test."""
    return f"{prefix} {uuid.uuid4().hex[:8]}"
