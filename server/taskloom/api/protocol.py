"""Protocol errors in the shapes the MCP specification gives them, in both protocol eras.

A missing resource is `-32002` up to 2025-11-25 and Invalid Params (`-32602`) from 2026-07-28 on
(SEP-2164), with the requested URI in `data.uri` either way; FastMCP answers `-32602` in both, and
masks an error raised inside a resource template as an internal error. A `prompts/get` without a
required argument would be masked the same way; it is Invalid Params naming the argument.
"""

import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastmcp.exceptions import NotFoundError, ResourceError
from fastmcp.server.middleware import Middleware, MiddlewareContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from taskloom.errors import NotFound, TaskloomError

T = TypeVar("T")
RESOURCE_NOT_FOUND_2025 = -32002


class ResourceMissing(ResourceError):
    """Raised by a resource template whose task or run does not exist; not worth an error log."""

    def __init__(self, message: str) -> None:
        super().__init__(message, log_level=logging.DEBUG)


async def found(call: Awaitable[T]) -> T:
    """What `answer` is for tools, for resource templates: a missing task or run is the
    protocol's resource-not-found error, any other domain error a resource error."""
    try:
        return await call
    except NotFound as exc:
        raise ResourceMissing(exc.message) from exc
    except TaskloomError as exc:
        raise ResourceError(exc.message) from exc


def resource_not_found_code(protocol_version: str | None) -> int:
    """-32602 in the 2026-07-28 era (SEP-2164), the earlier eras' -32002 otherwise."""
    return (
        INVALID_PARAMS if protocol_version in MODERN_PROTOCOL_VERSIONS else RESOURCE_NOT_FOUND_2025
    )


def _protocol_version(context: MiddlewareContext[Any]) -> str | None:
    ctx = context.fastmcp_context
    request = ctx.request_context if ctx is not None else None
    return request.protocol_version if request is not None else None


class ProtocolErrors(Middleware):
    """Answers a missing resource and a missing prompt argument as the specification says."""

    async def on_read_resource(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        try:
            return await call_next(context)
        except (ResourceMissing, NotFoundError) as exc:
            uri = str(context.message.uri)
            detail = str(exc) if isinstance(exc, ResourceMissing) else "No resource has this URI."
            raise MCPError(
                code=resource_not_found_code(_protocol_version(context)),
                message=f"Resource not found: {uri}. {detail}",
                data={"uri": uri},
            ) from exc

    async def on_get_prompt(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        missing = await _missing_arguments(context)
        if missing:
            name = context.message.name
            listed = ", ".join(f"{arg!r} ({why})" if why else repr(arg) for arg, why in missing)
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Prompt {name!r} needs the argument(s) {listed}; pass them in "
                "`arguments` and ask again.",
                data={"prompt": name, "missing": [arg for arg, _ in missing]},
            )
        return await call_next(context)


async def _missing_arguments(context: MiddlewareContext[Any]) -> list[tuple[str, str]]:
    """The prompt's required arguments the request left out, each with its description."""
    ctx = context.fastmcp_context
    if ctx is None:
        return []
    prompt = await ctx.fastmcp.get_prompt(context.message.name)
    if prompt is None:  # FastMCP answers an unknown prompt itself
        return []
    given = context.message.arguments or {}
    # FastMCP appends a JSON schema to a typed argument's description: the first part is ours.
    return [
        (arg.name, (arg.description or "").split("\n\n")[0])
        for arg in prompt.arguments or []
        if arg.required and arg.name not in given
    ]
