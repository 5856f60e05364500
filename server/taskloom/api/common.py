"""Shared pieces of the MCP surface: tool hints, argument types, and the one place domain
errors become `ToolError` (anything unexpected is masked by FastMCP and logged).
"""

from collections.abc import Awaitable, Iterable
from typing import Annotated, Any, TypeVar

from fastmcp.exceptions import ToolError
from fastmcp.exceptions import ValidationError as ArgumentError
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.middleware import Middleware, MiddlewareContext
from pydantic import Field, ValidationError

from taskloom.errors import InvalidInput, InvalidInputs, TaskloomError
from taskloom.services import Services
from taskloom.tasks.suggest import did_you_mean, fields_beside

T = TypeVar("T")

READ = {
    "readOnlyHint": True,
    "destructiveHint": False,
    "idempotentHint": True,
    "openWorldHint": False,
}
WRITE = {
    "readOnlyHint": False,
    "destructiveHint": False,
    "idempotentHint": False,
    "openWorldHint": False,
}
IDEMPOTENT = {**WRITE, "idempotentHint": True}
DESTRUCTIVE = {**WRITE, "destructiveHint": True, "idempotentHint": True}

TaskId = Annotated[
    str, Field(description="the task's id (tsk_...), from create_task or list_tasks")
]
Limit = Annotated[int, Field(ge=1, le=200, description="page size")]
Cursor = Annotated[
    str | None, Field(description="next_cursor from the previous page; omit at first")
]


UNKNOWN_FIELD = frozenset({"unexpected_keyword_argument", "extra_forbidden"})


def format_validation_error(
    exc: ValidationError, prefix: str = "", arguments: Iterable[str] = ()
) -> InvalidInputs:
    """Pydantic's errors in our voice; an unknown field gets the closest known one (`arguments`:
    the tool's own argument names)."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not str(p).startswith("function-")]
        # A trigger's tag repeats its key (`trigger.every.every`): show it once.
        path = ".".join(str(p) for i, p in enumerate(loc) if i == 0 or p != loc[i - 1])
        msg = str(err["msg"]).removeprefix("Value error, ") + "."
        if err["type"] in UNKNOWN_FIELD and loc:
            msg = _unknown_field(loc, arguments)
        problems.append(InvalidInput(f"{prefix}{path}" or "arguments", err.get("input"), msg))
    return InvalidInputs(problems)


def _unknown_field(loc: list[Any], arguments: Iterable[str]) -> str:
    parent = tuple(str(p) for p in loc[:-1] if not isinstance(p, int))
    known = fields_beside(parent, arguments)
    name = str(loc[-1])
    if not known:
        return "Unknown field; remove it."
    hint = did_you_mean(name, known)
    return f"Unknown field.{hint}" if hint else f"Unknown field; known here: {', '.join(known)}."


async def answer(call: Awaitable[T]) -> T:
    try:
        return await call
    except TaskloomError as exc:
        raise ToolError(exc.message) from exc
    except ValidationError as exc:
        raise ToolError(format_validation_error(exc).message) from exc


class ArgumentErrors(Middleware):
    """Rewrites FastMCP's argument validation errors in our voice: field, value, fix."""

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        try:
            return await call_next(context)
        except ArgumentError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                arguments = await _tool_arguments(context)
                raise ToolError(format_validation_error(cause, "", arguments).message) from exc
            raise


async def _tool_arguments(context: MiddlewareContext[Any]) -> list[str]:
    """The called tool's argument names, to suggest one for a misspelt argument."""
    server = context.fastmcp_context.fastmcp if context.fastmcp_context else None
    name = getattr(context.message, "name", None)
    tool = await server.get_tool(name) if server is not None and name else None
    return list(tool.parameters.get("properties", {})) if tool is not None else []


def owner() -> str | None:
    """The authenticated principal over HTTP with auth; None means the local single user."""
    token = get_access_token()
    if token is None:
        return None
    return str(token.claims.get("sub") or token.client_id)


def owner_of(services: Services) -> str:
    return owner() or services.settings.owner
