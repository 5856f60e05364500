"""A real Taskloom server on a temp SQLite file, reached through FastMCP's in-memory Client."""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
from fastmcp import Client, FastMCP

from taskloom.app import build_server
from taskloom.scheduling.scheduler import Timing
from taskloom.services import Services, build_services
from taskloom.settings import Settings
from tests.conftest import make_settings
from tests.fixtures.anthropic import message_json

T = TypeVar("T")


@pytest.fixture
def services(settings: Settings) -> Services:
    return build_services(settings)


@pytest.fixture
def server(services: Services) -> FastMCP:
    return build_server(services)


@pytest.fixture
async def client(server: FastMCP) -> AsyncIterator[Client[Any]]:
    async with Client(server) as c:
        yield c


WAIT_STEP = {"id": "pause", "tool": "wait", "args": {"seconds": 0}}


def task_args(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Morning digest",
        "steps": [WAIT_STEP],
        "trigger": {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"},
        **overrides,
    }


# -- the chain engine end to end: real loopback HTTP, fake Anthropic at the transport ---------


class FakeAnthropic:
    """The Anthropic API at the HTTP transport: answers `text` (or `status`), keeps requests;
    `script` holds whole answers (e.g. tool use) given out in order before `text` is."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []
        self.text = "Prices are steady."
        self.status = 200
        self.script: list[dict[str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if self.status != 200:
            error = {"type": "error", "error": {"type": "api_error", "message": "overloaded"}}
            return httpx2.Response(self.status, json=error)
        model = json.loads(request.content)["model"]
        if self.script:
            return httpx2.Response(200, json={**self.script.pop(0), "model": model})
        return httpx2.Response(200, json=message_json(self.text, model))

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout_s: float = 15.0) -> T:
    """The first truthy value `probe` returns, polled until `timeout_s` (then the test fails)."""
    async with asyncio.timeout(timeout_s):
        while True:
            value = await probe()
            if value:
                return value
            await asyncio.sleep(0.02)


@dataclass
class Loom:
    """A Taskloom server reached through a real in-memory MCP client, with helpers that return
    exactly what the calling model sees."""

    client: Client[Any]
    services: Services
    settings: Settings
    llm: FakeAnthropic
    progress: list[tuple[float, float | None, str | None]] = field(default_factory=list)
    created: int = 0

    async def call(self, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        result = await self.client.call_tool(tool, args or {})
        assert result.structured_content is not None, result
        return result.structured_content

    async def error(self, tool: str, args: dict[str, Any]) -> str:
        result = await self.client.call_tool(tool, args, raise_on_error=False)
        assert result.is_error, result
        return "\n".join(getattr(c, "text", "") for c in result.content)

    async def create(self, steps: list[dict[str, Any]], **fields: Any) -> str:
        """A new task's id; each is named apart (names are unique per owner) unless given."""
        self.created += 1
        named = {"name": f"Chain {self.created}", "steps": steps, **fields}
        answer = await self.call("create_task", named)
        task_id: str = answer["task"]["id"]
        return task_id

    async def run(self, task_id: str, **args: Any) -> dict[str, Any]:
        """run_task's run, after waiting for it (unless wait=false is given)."""
        run: dict[str, Any] = (await self.call("run_task", {"task_id": task_id, **args}))["run"]
        return run

    async def get_run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = (await self.call("get_run", {"run_id": run_id}))["run"]
        return run

    async def task(self, task_id: str) -> dict[str, Any]:
        task: dict[str, Any] = (await self.call("get_task", {"task_id": task_id}))["task"]
        return task

    async def listed(self, task_id: str) -> dict[str, Any]:
        tasks = (await self.call("list_tasks", {}))["tasks"]
        return next(t for t in tasks if t["id"] == task_id)

    async def wait_run(self, run_id: str, *statuses: str) -> dict[str, Any]:
        """get_run's answer once the run has one of `statuses` (default: any final one)."""
        wanted = statuses or ("succeeded", "failed", "cancelled", "interrupted", "skipped")

        async def probe() -> dict[str, Any] | None:
            run = await self.get_run(run_id)
            return run if run["status"] in wanted else None

        return await eventually(probe)


LoomFactory = Callable[..., AbstractAsyncContextManager[Loom]]


@pytest.fixture
def open_loom(tmp_path: Path) -> LoomFactory:
    """Opens a Loom on settings that reach 127.0.0.1, with the Anthropic API faked at the
    transport and a scheduler that polls its queue every 50 ms; `overrides` change settings."""

    @asynccontextmanager
    async def opened(**overrides: Any) -> AsyncIterator[Loom]:
        values: dict[str, Any] = {
            "http_allow_hosts": "127.0.0.1",
            "ANTHROPIC_API_KEY": "sk-ant-test",
            "shutdown_grace_s": 0,
            **overrides,
        }
        settings = make_settings(tmp_path, **values)
        llm = FakeAnthropic()
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(llm)) as anthropic_http:
            timing = Timing(poll_s=0.05, lease_s=settings.lease_s)
            services = build_services(settings, anthropic_http=anthropic_http, timing=timing)
            loom_ref: list[Loom] = []

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                loom_ref[0].progress.append((done, total, message))

            client = Client(build_server(services), progress_handler=on_progress)
            async with client:
                loom_ref.append(Loom(client, services, settings, llm))
                yield loom_ref[0]

    return opened


@pytest.fixture
async def loom(open_loom: LoomFactory) -> AsyncIterator[Loom]:
    async with open_loom() as opened:
        yield opened
