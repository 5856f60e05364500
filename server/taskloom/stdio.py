"""Serving MCP over stdio, answering a line that is not a JSON-RPC message instead of ignoring it.

The MCP SDK's stdio reader hands such a line to the server as an exception, which the server only
logs: the client never hears why its request went unanswered. JSON-RPC 2.0 asks for an error with
a null id: Parse error (-32700) when the line is not JSON, Invalid Request (-32600) when it is
JSON but not a message. Serving then goes on with the next line.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream
from fastmcp import FastMCP
from fastmcp.server.context import reset_transport, set_transport
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

log = structlog.get_logger(__name__)

Incoming = SessionMessage | Exception


def error_for(exc: Exception) -> JSONRPCError:
    """The JSON-RPC error answering a line the SDK could not read as a message."""
    not_json = isinstance(exc, ValidationError) and any(
        e["type"] == "json_invalid" for e in exc.errors(include_url=False)
    )
    if not_json:
        error = ErrorData(code=PARSE_ERROR, message="Parse error: the line is not valid JSON.")
    else:
        error = ErrorData(
            code=INVALID_REQUEST,
            message="Invalid Request: the line is JSON but not a JSON-RPC 2.0 message.",
        )
    return JSONRPCError(jsonrpc="2.0", id=None, error=error)


@asynccontextmanager
async def answering_bad_lines(
    read: ReadStream[Incoming], write: WriteStream[SessionMessage]
) -> AsyncIterator[MemoryObjectReceiveStream[Incoming]]:
    """The messages of `read`; what is not one is answered on `write` and not passed on."""
    send, receive = anyio.create_memory_object_stream[Incoming](0)

    async def pump() -> None:
        async with send:
            async for item in read:
                if isinstance(item, Exception):
                    log.warning("stdio_line_refused", error=type(item).__name__)
                    await write.send(SessionMessage(error_for(item)))
                else:
                    await send.send(item)

    async with anyio.create_task_group() as tasks, receive:
        tasks.start_soon(pump)
        yield receive
        tasks.cancel_scope.cancel()


async def serve_stdio(mcp: FastMCP) -> None:
    """What `FastMCP.run(transport="stdio")` does, with bad lines answered."""
    token = set_transport("stdio")
    try:
        async with (
            mcp._lifespan_manager(),
            stdio_server() as (read, write),
            answering_bad_lines(read, write) as messages,
        ):
            server = mcp._mcp_server
            await server.run(messages, write, server.create_initialization_options())
    finally:
        reset_transport(token)
