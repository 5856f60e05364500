"""Connections to the upstream MCP servers named in the MCP config file (`mcpServers` format).

A step whose tool is `"<server>/<tool>"` is called here. Each server gets one fastmcp `Client`,
opened on first use and kept for later steps and runs; a connection that breaks is dropped and
opened again on the next use. fastmcp is imported inside functions so that creating the pool at
start costs nothing until a chain first needs an upstream tool.
"""

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TextIO, TypeVar
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from taskloom.errors import TaskloomError

if TYPE_CHECKING:
    import mcp_types
    from fastmcp import Client
    from fastmcp.client.transports import ClientTransport
    from fastmcp.mcp_config import RemoteMCPServer, StdioMCPServer

    ServerEntry = StdioMCPServer | RemoteMCPServer

log = structlog.get_logger(__name__)
T = TypeVar("T")

# Beyond what the MCP SDK already passes (HOME, PATH, SHELL, TERM, USER, LOGNAME): locale and
# temp dir only. Everything else a child needs comes from its `env` in the config file.
_INHERITED_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")
_TASKLOOM_TOKEN = re.compile(r"^taskloom(?:$|[.\[=@<>~!])", re.IGNORECASE)
_LOCAL_HOSTS = {"localhost", "::1", "0.0.0.0", "::"}
_PING_TIMEOUT_S = 5.0


class ProgressCallback(Protocol):
    """Receives the progress notifications an upstream tool sends while it runs."""

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None: ...


class UpstreamToolInfo(BaseModel):
    """A tool of an upstream server, as a step may name it (`name` is `"<server>/<tool>"`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    server: str
    tool: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None


class UpstreamError(TaskloomError):
    """An upstream server or tool failed; the message names it and says what to do."""


def load_mcp_config(path: Path, *, self_urls: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """The valid server entries of the MCP config file, by name.

    Raises `UpstreamError` when the file is missing, not JSON, or has a malformed entry. Entries
    that start or reach Taskloom itself are left out with a warning rather than raised on: a
    shared desktop config normally lists Taskloom too, and the other servers must stay usable.
    """
    accepted, _ = _read_config(path, self_urls)
    return {name: entry.model_dump(exclude_none=True) for name, entry in accepted.items()}


def _read_config(
    path: Path, self_urls: Sequence[str]
) -> tuple[dict[str, "ServerEntry"], dict[str, str]]:
    accepted: dict[str, ServerEntry] = {}
    refused: dict[str, str] = {}
    for name, item in _read_servers(path).items():
        entry = _parse_entry(path, name, item)
        reason = _self_reference(entry, self_urls)
        if reason is None:
            accepted[name] = entry
        else:
            log.warning("upstream_self_reference_skipped", server=name, reason=reason)
            refused[name] = reason
    return accepted, refused


def _read_servers(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UpstreamError(
            f"The MCP config file {path} does not exist. Create it or point "
            "TASKLOOM_MCP_CONFIG at an existing one."
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UpstreamError(f"Cannot read the MCP config file {path}: {exc}. Fix it.") from exc
    servers = raw.get("mcpServers", raw.get("servers")) if isinstance(raw, dict) else None
    if not isinstance(servers, dict):
        raise UpstreamError(
            f"The MCP config file {path} has no 'mcpServers' object. Use Claude Desktop's "
            'format: {"mcpServers": {"name": {"command": ..., "args": [...]}}}.'
        )
    return servers


def _parse_entry(path: Path, name: str, item: Any) -> "ServerEntry":
    from fastmcp.mcp_config import RemoteMCPServer, StdioMCPServer

    where = f"Server {name!r} in the MCP config file {path}"
    if not name or "/" in name:
        raise UpstreamError(f"{where}: a server name must be non-empty without '/'. Rename it.")
    model: type[StdioMCPServer] | type[RemoteMCPServer]
    if isinstance(item, dict) and "command" in item:
        model = StdioMCPServer
    elif isinstance(item, dict) and "url" in item:
        model = RemoteMCPServer
    else:
        raise UpstreamError(f"{where} needs a 'command' (stdio) or a 'url' (HTTP). Add one.")
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(part) for part in first["loc"])
        raise UpstreamError(f"{where}: {at}: {first['msg']}. Fix the entry.") from None


def _self_reference(entry: "ServerEntry", self_urls: Sequence[str]) -> str | None:
    from fastmcp.mcp_config import StdioMCPServer

    if isinstance(entry, StdioMCPServer):
        argv = [entry.command, *entry.args]
        if any(_TASKLOOM_TOKEN.match(re.split(r"[\\/]", token)[-1]) for token in argv):
            return f"its command {' '.join(argv)!r} starts Taskloom"
        return None
    own = {_endpoint(url) for url in self_urls}
    if _endpoint(entry.url) in own:
        return f"its url {entry.url} is Taskloom's own endpoint"
    return None


def _endpoint(url: str) -> tuple[str, int] | None:
    """Host and port, with every loopback spelling made one: anything on our socket is us."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    local = host in _LOCAL_HOSTS or host.startswith("127.")
    return ("loopback" if local else host, port)


@dataclass(eq=False)
class _Server:
    name: str
    entry: "ServerEntry"
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    client: "Client[Any] | None" = None
    tools: dict[str, UpstreamToolInfo] | None = None
    last_used: float = 0.0


class UpstreamPool:
    """Lazily opened, reused connections to the upstream servers of one MCP config file."""

    def __init__(
        self,
        config_path: Path | None,
        *,
        self_urls: Sequence[str] = (),
        connect_timeout_s: float = 20.0,
        ping_after_idle_s: float = 30.0,
        child_stderr: TextIO | None = None,
    ) -> None:
        """`self_urls` are Taskloom's own HTTP endpoints (refused as upstreams). Connecting and
        listing tools are bounded by `connect_timeout_s`. A connection idle for
        `ping_after_idle_s` is checked before use, so a server that died or restarted meanwhile
        is reopened instead of failing the step. Children's stderr goes to `child_stderr`
        (default: ours), never to stdout."""
        self._config_path = config_path
        self._self_urls = tuple(self_urls)
        self._connect_timeout_s = connect_timeout_s
        self._ping_after_idle_s = ping_after_idle_s
        self._child_stderr = child_stderr
        self._servers: dict[str, _Server] | None = None
        self._refused: dict[str, str] = {}
        self._closed = False

    async def list_tools(self) -> list[UpstreamToolInfo]:
        """Every tool of every reachable server; unreachable ones are logged and left out."""
        if self._closed:
            return []
        try:
            servers = self._catalogue()
        except UpstreamError as exc:
            log.warning("upstream_config_invalid", error=exc.message)
            return []
        listed = await asyncio.gather(*(self._tools_or_empty(s) for s in servers.values()))
        return [info for tools in listed for info in tools]

    async def has_tool(self, qualified: str) -> bool:
        try:
            await self._resolve(qualified)
        except UpstreamError:
            return False
        return True

    async def call(
        self,
        qualified: str,
        args: dict[str, Any],
        *,
        timeout_s: float | None,
        progress: ProgressCallback | None = None,
    ) -> Any:
        """The tool's structured result (a plain value unwrapped), else its text content."""
        server, info = await self._resolve(qualified)
        client = await self._fresh_client(server)
        if timeout_s is None and server.entry.timeout:
            timeout_s = server.entry.timeout / 1000  # the config gives milliseconds
        request = client.call_tool_mcp(
            info.tool, args, timeout=timeout_s, progress_handler=progress
        )
        result = await self._request(server, client, request, qualified, timeout_s)
        if result.is_error:
            message = _text(result.content) or "no message"
            raise UpstreamError(f"Upstream tool {qualified} failed: {message}")
        return _output(result, info)

    async def aclose(self) -> None:
        """Closes every connection and ends every child process; the pool is unusable after."""
        self._closed = True
        servers = list((self._servers or {}).values())
        await asyncio.gather(*(self._close(server) for server in servers))

    def _catalogue(self) -> dict[str, _Server]:
        if self._closed:
            raise UpstreamError("Upstream MCP connections are closed: Taskloom is shutting down.")
        if self._servers is None:
            accepted: dict[str, ServerEntry] = {}
            if self._config_path is not None:
                accepted, self._refused = _read_config(self._config_path, self._self_urls)
            self._servers = {name: _Server(name, entry) for name, entry in accepted.items()}
        return self._servers

    async def _resolve(self, qualified: str) -> tuple[_Server, UpstreamToolInfo]:
        server_name, _, tool = qualified.partition("/")
        if not server_name or not tool:
            raise UpstreamError(
                f"{qualified!r} is not an upstream tool: use '<server>/<tool>' with a server "
                "of the MCP config file."
            )
        server = self._server(server_name)
        tools = await self._tools(server)
        if tool not in tools:
            raise UpstreamError(
                f"Upstream server {server_name!r} has no tool {tool!r}; it has "
                f"{', '.join(sorted(tools)) or 'none'}. Call list_step_tools to see them."
            )
        return server, tools[tool]

    def _server(self, name: str) -> _Server:
        servers = self._catalogue()
        if name in self._refused:
            raise UpstreamError(
                f"Server {name!r} of the MCP config file is Taskloom itself "
                f"({self._refused[name]}); a chain cannot call Taskloom. Use a built-in tool."
            )
        if name not in servers:
            known = ", ".join(sorted(servers)) or "no servers"
            raise UpstreamError(
                f"No upstream MCP server named {name!r}; the MCP config file "
                f"({self._config_path or 'not set'}) names {known}. Add it there or fix the step."
            )
        return servers[name]

    async def _tools_or_empty(self, server: _Server) -> list[UpstreamToolInfo]:
        try:
            return list((await self._tools(server)).values())
        except UpstreamError as exc:
            log.warning("upstream_unreachable", server=server.name, error=exc.message)
            return []

    async def _tools(self, server: _Server) -> dict[str, UpstreamToolInfo]:
        if server.tools is None:
            client = await self._fresh_client(server)
            listing = asyncio.wait_for(client.list_tools(), self._connect_timeout_s)
            listed = await self._request(server, client, listing, server.name, None)
            server.tools = {tool.name: _info(server.name, tool) for tool in listed}
        return server.tools

    async def _fresh_client(self, server: _Server) -> "Client[Any]":
        client = await self._client(server)
        idle = time.monotonic() - server.last_used
        if idle < self._ping_after_idle_s:
            return client
        if await _answers(client):
            server.last_used = time.monotonic()
            return client
        log.info("upstream_stale", server=server.name, idle_s=round(idle, 1))
        await self._drop(server, client)
        return await self._client(server)

    async def _client(self, server: _Server) -> "Client[Any]":
        async with server.lock:
            if server.client is None:
                server.client = await self._open(server)
                server.last_used = time.monotonic()
            return server.client

    async def _open(self, server: _Server) -> "Client[Any]":
        from fastmcp import Client

        client = Client(
            self._transport(server.entry), name="taskloom", init_timeout=self._connect_timeout_s
        )
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await client.__aenter__()  # type: ignore[no-untyped-call]  # fastmcp leaves it untyped
        except Exception as exc:
            await _close_quietly(client)
            raise UpstreamError(
                f"Cannot connect to upstream MCP server {server.name!r} "
                f"({_where(server.entry)}): {self._reason(exc)}. Check its entry in the MCP "
                f"config file {self._config_path} and that it runs on its own."
            ) from exc
        log.info("upstream_connected", server=server.name, protocol=client.protocol_version)
        return client

    def _transport(self, entry: "ServerEntry") -> "ClientTransport":
        from fastmcp.client.transports import StdioTransport
        from fastmcp.mcp_config import StdioMCPServer

        if not isinstance(entry, StdioMCPServer):
            return entry.to_transport()
        inherited = {k: v for k in _INHERITED_ENV if (v := os.environ.get(k)) is not None}
        return StdioTransport(
            command=entry.command,
            args=entry.args,
            env=inherited | {str(k): str(v) for k, v in entry.env.items()},
            cwd=entry.cwd,
            keep_alive=False,
            log_file=self._child_stderr,
        )

    async def _request(
        self,
        server: _Server,
        client: "Client[Any]",
        request: Awaitable[T],
        what: str,
        timeout_s: float | None,
    ) -> T:
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        from mcp import MCPError

        try:
            answer = await request
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise UpstreamError(
                    f"Upstream tool {what} did not answer within "
                    f"{'its time limit' if timeout_s is None else f'{timeout_s:g}s'}. Raise the "
                    "step's timeout_s or check the upstream server."
                ) from exc
            if exc.code != CONNECTION_CLOSED:
                raise UpstreamError(f"Upstream {what} refused the request: {exc.message}") from exc
            await self._broken(server, client, what, exc)
        except Exception as exc:
            await self._broken(server, client, what, exc)
        server.last_used = time.monotonic()
        return answer

    async def _broken(
        self, server: _Server, client: "Client[Any]", what: str, exc: Exception
    ) -> NoReturn:
        await self._drop(server, client)
        raise UpstreamError(
            f"Lost the connection to upstream MCP server {server.name!r} while calling {what}: "
            f"{self._reason(exc)}. It is reconnected on the next call."
        ) from exc

    async def _drop(self, server: _Server, client: "Client[Any]") -> None:
        async with server.lock:
            if server.client is client:
                server.client, server.tools = None, None
        log.warning("upstream_disconnected", server=server.name)
        await _close_quietly(client)

    async def _close(self, server: _Server) -> None:
        async with server.lock:
            client, server.client, server.tools = server.client, None, None
        if client is not None:
            await _close_quietly(client)

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return f"no answer within {self._connect_timeout_s:g}s"
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return str(message).removeprefix("Client failed to connect: ")


async def _answers(client: "Client[Any]") -> bool:
    """Whether the server answers at all: the 2026-07-28 protocol dropped `ping`, so a
    "method not found" error proves the connection as well as a pong does."""
    from mcp_types import CONNECTION_CLOSED

    from mcp import MCPError

    try:
        async with asyncio.timeout(_PING_TIMEOUT_S):
            await client.ping()
    except MCPError as exc:
        return exc.code != CONNECTION_CLOSED
    except Exception:
        return False
    return True


async def _close_quietly(client: "Client[Any]") -> None:
    # After a failed connect, close() re-raises that failure; it has been reported already.
    with contextlib.suppress(Exception):
        await client.close()  # type: ignore[no-untyped-call]


def _where(entry: "ServerEntry") -> str:
    command = getattr(entry, "command", None)
    return f"command {command!r}" if command is not None else f"url {getattr(entry, 'url', '')}"


def _info(server: str, tool: "mcp_types.Tool") -> UpstreamToolInfo:
    return UpstreamToolInfo(
        name=f"{server}/{tool.name}",
        server=server,
        tool=tool.name,
        description=tool.description or "",
        input_schema=dict(tool.input_schema),
        output_schema=dict(tool.output_schema) if tool.output_schema is not None else None,
    )


def _text(content: "Sequence[mcp_types.ContentBlock]") -> str:
    from mcp_types import TextContent

    return "\n".join(block.text for block in content if isinstance(block, TextContent))


def _output(result: "mcp_types.CallToolResult", info: UpstreamToolInfo) -> Any:
    """Unwraps `{"result": x}` the way fastmcp's `CallToolResult.data` does."""
    structured = result.structured_content
    if structured is not None:
        fastmcp_meta = (result.meta or {}).get("fastmcp")
        wrapped = isinstance(fastmcp_meta, dict) and fastmcp_meta.get("wrap_result")
        wrapped = wrapped or (info.output_schema or {}).get("x-fastmcp-wrap-result")
        return structured.get("result") if wrapped else structured
    if all(block.type == "text" for block in result.content):
        return _text(result.content)
    return [block.model_dump(mode="json", exclude_none=True) for block in result.content]
