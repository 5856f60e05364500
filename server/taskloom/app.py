"""Composition root: settings in, a FastMCP server with its services out."""

import hmac
import importlib
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastmcp import FastMCP
from fastmcp.server.auth import AccessToken, AuthProvider, TokenVerifier
from fastmcp.server.middleware import Middleware
from mcp.shared.exceptions import MCPDeprecationWarning

from taskloom import __version__
from taskloom.api import prompts, resources, revisions, runs, tasks
from taskloom.api.common import ArgumentErrors
from taskloom.api.protocol import ProtocolErrors
from taskloom.api.schemas import CompactSchemas
from taskloom.api.startup import Startup
from taskloom.errors import TaskloomError
from taskloom.services import Services
from taskloom.settings import Settings, parse_http_tokens

if TYPE_CHECKING:
    from fastmcp.server.event_store import EventStore

# Protocol lists (tools, resources, prompts) are paged, even though one page holds them all, so
# that FastMCP checks a `cursor` and refuses one it did not issue instead of ignoring it.
LIST_PAGE_SIZE = 100

INSTRUCTIONS = """\
Taskloom runs background work for the user on a schedule. A task is a chain of steps; each step
calls a step tool (see list_step_tools) with arguments that may use earlier steps' outputs.
Typical flow: list_step_tools -> preview_schedule (check the trigger) -> create_task ->
list_tasks / get_task to see status, next fire times and last results. Times are shown in the
task's timezone and UTC."""


def build_auth(settings: Settings) -> AuthProvider | None:
    """Bearer tokens from TASKLOOM_HTTP_TOKENS ("alice=tok1,bob=tok2"): each name owns its tasks."""
    try:
        tokens = parse_http_tokens(settings.http_tokens)
    except ValueError as exc:
        raise TaskloomError(f"TASKLOOM_HTTP_TOKENS {exc}.") from None
    if not tokens:
        return None
    return BearerTokens(tokens)


class BearerTokens(TokenVerifier):
    """Static bearer tokens, compared in constant time; the token's name is the principal."""

    def __init__(self, tokens: dict[str, str]) -> None:
        super().__init__()
        self._tokens = tokens

    async def verify_token(self, token: str) -> AccessToken | None:
        for name, expected in self._tokens.items():
            if hmac.compare_digest(token.encode(), expected.encode()):
                return AccessToken(
                    token=token, client_id=name, scopes=[], subject=name, claims={"sub": name}
                )
        return None


# Tools that take create_task's models: their schemas leave the models' docs to create_task's.
BRIEF_SCHEMAS = frozenset({"update_task", "dry_run", "preview_schedule"})


def build_event_store(settings: Settings) -> "EventStore":
    """Streamable HTTP keeps each stream's recent messages in memory, so a client that lost its
    connection (e.g. during a long run_task) reconnects with Last-Event-ID and gets what it
    missed, the result included. Bounded in count, per stream and in age."""
    from fastmcp.server.event_store import EventStore
    from key_value.aio.stores.memory import MemoryStore

    storage = MemoryStore(max_entries_per_collection=settings.event_store_max_events)
    return EventStore(
        storage=storage,
        max_events_per_stream=settings.event_store_max_events_per_stream,
        ttl=settings.event_store_ttl_s,
    )


def build_server(services: Services, *, auth: AuthProvider | None = None) -> FastMCP:
    """The MCP server on started services: the lifespan starts them before the first answer."""

    @asynccontextmanager
    async def lifespan(_: FastMCP) -> AsyncIterator[dict[str, Any]]:
        await services.start()
        try:
            yield {}
        finally:
            await services.stop()

    return _server(services, lifespan, auth=auth)


def build_server_starting_later(
    settings: Settings, build: Callable[[], Services]
) -> tuple[FastMCP, Startup]:
    """The MCP server `serve` runs over stdio: the services are built and started after the
    handshake (see `taskloom.api.startup`); the lifespan stops them."""
    startup = Startup(settings, build)

    @asynccontextmanager
    async def lifespan(_: FastMCP) -> AsyncIterator[dict[str, Any]]:
        startup.serving()
        try:
            yield {}
        finally:
            await startup.stop()

    return _server(startup.pending(), lifespan, extra=[startup]), startup


def _jsonref_without_requests() -> None:
    """FastMCP inlines the tool schemas' $refs with jsonref at the first tools/list; jsonref
    imports requests (~50 ms with urllib3) only to fetch remote $refs, which FastMCP strips
    before it dereferences. Imported here with requests hidden, it takes ~1 ms."""
    if "jsonref" in sys.modules or "requests" in sys.modules:
        return
    sys.modules["requests"] = None  # type: ignore[assignment]  # makes `import requests` fail
    try:
        import jsonref  # type: ignore[import-untyped]  # noqa: F401
    finally:
        del sys.modules["requests"]


def _server(
    services: Services,
    lifespan: Callable[[FastMCP], AbstractAsyncContextManager[dict[str, Any]]],
    *,
    auth: AuthProvider | None = None,
    extra: Sequence[Middleware] = (),
) -> FastMCP:
    # Run progress also goes to clients as log messages; the SDK marks logging deprecated from
    # 2026-07-28 on (SEP-2577) and would print that warning to stderr beside our JSON logs.
    _jsonref_without_requests()
    warnings.filterwarnings(
        "ignore", "The logging capability is deprecated", MCPDeprecationWarning, "mcp|fastmcp"
    )
    mcp = FastMCP(
        "taskloom",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        mask_error_details=True,
        middleware=[ArgumentErrors(), ProtocolErrors(), CompactSchemas(BRIEF_SCHEMAS), *extra],
        auth=auth,
        list_page_size=LIST_PAGE_SIZE,
    )
    if services.settings.mcp_tasks:
        from fastmcp_tasks import TasksExtension  # ~0.3 s of imports: only when asked for

        mcp.add_extension(TasksExtension())
    tasks.register_task_tools(mcp, services)
    tasks.register_schedule_tools(mcp, services)
    runs.register_run_tools(mcp, services)
    revisions.register_revision_tools(mcp, services)
    resources.register_resources(mcp, services)
    prompts.register_prompts(mcp, services)
    if services.settings.mount_server:
        mcp.mount(load_server(services.settings.mount_server))
    return mcp


def load_server(path: str) -> FastMCP:
    """The FastMCP server named by TASKLOOM_MOUNT_SERVER (`package.module:attribute`)."""
    module, _, attribute = path.partition(":")
    try:
        server = getattr(importlib.import_module(module), attribute or "server")
    except (ImportError, AttributeError) as exc:
        raise TaskloomError(
            f"TASKLOOM_MOUNT_SERVER {path!r} names nothing importable ({exc}); give "
            "package.module:attribute of a FastMCP server, or leave it empty."
        ) from exc
    if not isinstance(server, FastMCP):
        raise TaskloomError(f"TASKLOOM_MOUNT_SERVER {path!r} is not a FastMCP server.")
    return server
