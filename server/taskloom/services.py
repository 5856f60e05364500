"""The service graph, wired in one place (`app.py`) and handed to the MCP surface and the CLI."""

import os
import socket
from dataclasses import dataclass
from typing import Any

import httpx

from taskloom.answers import TaskAnswer
from taskloom.clock import Clock
from taskloom.runs.service import RunService
from taskloom.settings import Settings
from taskloom.step_tools import StepCatalog
from taskloom.store.sql import Store
from taskloom.tasks.service import TaskService
from taskloom_tools.base import ToolContext


def new_process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class ToolContexts:
    """Builds each built-in step call's `ToolContext`; owns the shared HTTP client."""

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        anthropic_http: Any = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.anthropic_http = anthropic_http
        self._own_http = http is None

    async def start(self) -> None:
        if self.http is None:
            self.http = httpx.AsyncClient(follow_redirects=False, timeout=30.0)

    async def stop(self) -> None:
        if self._own_http and self.http is not None:
            await self.http.aclose()
            self.http = None

    def __call__(self, template_context: dict[str, Any]) -> ToolContext:
        if self.http is None:
            raise RuntimeError("services are not started")
        key = self.settings.anthropic_api_key
        return ToolContext(
            http=self.http,
            allow_hosts=self.settings.http_allow_hosts,
            anthropic_api_key=key.get_secret_value() if key else None,
            anthropic_base_url=self.settings.anthropic_base_url,
            anthropic_http=self.anthropic_http,
            default_model=self.settings.llm_model,
            template_context=template_context,
        )


@dataclass
class Services:
    settings: Settings
    clock: Clock
    store: Store
    catalog: StepCatalog
    tasks: TaskService
    runs: RunService
    tool_contexts: ToolContexts
    process_id: str

    async def start(self) -> None:
        await self.store.open()
        await self.tool_contexts.start()

    async def stop(self, grace_s: float = 10.0) -> None:
        await self.runs.shutdown(grace_s)
        if self.catalog.upstream is not None:
            await self.catalog.upstream.aclose()
        await self.tool_contexts.stop()
        await self.store.close()

    async def task_details(self, task_id: str, *, owner: str | None) -> TaskAnswer:
        task = await self.tasks.get(task_id, owner=owner)
        runs = await self.store.list_runs(owner=owner, task_id=task_id, limit=5)
        return self.tasks.answer(task, recent_runs=runs.items)
