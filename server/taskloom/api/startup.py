"""Services started after the handshake: `taskloom serve` over stdio answers its client's
`initialize` and lists first, then builds and starts the services (store, migrations check,
scheduler), in the event loop, not in a thread: imports hold the GIL, so work beside the
handshake would slow it down as much as work before it.

The services start at the first of: a tool call, resource read or prompt (which waits for
them), `AFTER_LIST_S` after the client's last list request (clients list tools, resources and
prompts right after `initialize`), or `AT_THE_LATEST_S` after serving began (a client that never
lists still gets its schedules fired). A failed start ends `serve` as a failure in the MCP
lifespan did: `failed` is set, and `serve` raises `error`.
"""

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, cast

from fastmcp.exceptions import FastMCPError, PromptError, ResourceError, ToolError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext

from taskloom.errors import TaskloomError
from taskloom.services import Services
from taskloom.settings import Settings

AFTER_LIST_S = 0.15
AT_THE_LATEST_S = 1.0


class NotStarted(RuntimeError):
    pass


class Pending:
    """Stands in for the services in the MCP surface until they are built: the surface reads
    only the settings at registration, and everything else once `Startup` let a call through."""

    def __init__(self, startup: "Startup") -> None:
        self.settings = startup.settings
        self._startup = startup

    def __getattr__(self, name: str) -> Any:
        services = self._startup.services
        if services is None:
            raise NotStarted(f"services.{name} used before the services started")
        return getattr(services, name)


class Startup(Middleware):
    """Builds and starts the services once (see the module's doc); makes tool calls, resource
    reads and prompts wait for them."""

    def __init__(self, settings: Settings, build: Callable[[], Services]) -> None:
        self.settings = settings
        self._build = build
        self.services: Services | None = None
        self.error: BaseException | None = None
        self.failed = asyncio.Event()
        self.started = asyncio.Event()
        self._task: asyncio.Task[Services] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._latest: float | None = None

    def pending(self) -> Services:
        """What the MCP surface is built on: the services, once started."""
        return cast(Services, Pending(self))

    def serving(self) -> None:
        """Serving began: the services start within AT_THE_LATEST_S."""
        self._latest = asyncio.get_running_loop().time() + AT_THE_LATEST_S
        self._start_in(AT_THE_LATEST_S)

    def _start_in(self, delay_s: float) -> None:
        """Start the services `delay_s` from now, but no later than AT_THE_LATEST_S after
        serving began."""
        if self._task is not None or self._stopping:
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay_s
        if self._latest is not None:
            when = min(when, self._latest)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._begin)

    def _begin(self) -> "asyncio.Task[Services]":
        if self._task is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._task = asyncio.create_task(self._start(), name="services-start")
            self._task.add_done_callback(_retrieved)  # the error is kept in `error`, for serve
        return self._task

    async def _start(self) -> Services:
        try:
            services = self._build()
            await services.start()
        except BaseException as exc:
            self.error = exc
            self.failed.set()
            raise
        self.services = services
        self.started.set()
        return services

    async def ready(self) -> Services:
        """The started services; starts them now if they are not yet starting."""
        if self._stopping:
            raise NotStarted("the server is stopping")
        return await asyncio.shield(self._begin())

    @property
    def stopping(self) -> bool:
        return self._stopping or (self.services is not None and self.services.stopping)

    def hurry(self) -> None:
        if self.services is not None:
            self.services.runs.hurry()

    async def stop(self) -> None:
        """Stop the services if they started (waiting for a start under way); at most once."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        if self._task is None:
            return
        with contextlib.suppress(BaseException):
            await asyncio.shield(self._task)
        if self.services is not None:
            await self.services.stop()

    async def _after_ready(
        self,
        context: MiddlewareContext[Any],
        call_next: CallNext[Any, Any],
        refusal: type[FastMCPError] = ToolError,
    ) -> Any:
        """The call runs on started services; a start that failed or a server that is stopping
        is the call's error, said plainly (not masked as an internal error)."""
        try:
            await self.ready()
        except NotStarted:
            raise refusal("Taskloom is stopping; this call was not run.") from None
        except Exception as exc:
            reason = (
                exc.message if isinstance(exc, TaskloomError) else f"{type(exc).__name__}: {exc}"
            )
            raise refusal(
                f"Taskloom could not start: {reason}. The server is ending; its log (stderr) "
                "has the details."
            ) from exc
        return await call_next(context)

    async def _then_start(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        result = await call_next(context)
        self._start_in(AFTER_LIST_S)
        return result

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        return await self._after_ready(context, call_next)

    async def on_read_resource(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        return await self._after_ready(context, call_next, ResourceError)

    async def on_get_prompt(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        return await self._after_ready(context, call_next, PromptError)

    async def on_list_tools(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        return await self._then_start(context, call_next)

    async def on_list_resources(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        return await self._then_start(context, call_next)

    async def on_list_resource_templates(
        self, context: MiddlewareContext[Any], call_next: Any
    ) -> Any:
        return await self._then_start(context, call_next)

    async def on_list_prompts(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        return await self._then_start(context, call_next)


def _retrieved(task: "asyncio.Task[Services]") -> None:
    if not task.cancelled():
        task.exception()
