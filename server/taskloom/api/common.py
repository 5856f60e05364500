"""Shared pieces of the MCP surface: tool hints, argument types, and the one place domain
errors become `ToolError` (anything unexpected is masked by FastMCP and logged).
"""

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastmcp.exceptions import ToolError
from fastmcp.exceptions import ValidationError as ArgumentError
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.middleware import Middleware, MiddlewareContext
from pydantic import Field, ValidationError

from taskloom.errors import InvalidInput, InvalidInputs, TaskloomError
from taskloom.services import Services

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


def format_validation_error(exc: ValidationError, prefix: str = "") -> InvalidInputs:
    problems = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = str(err["msg"]).removeprefix("Value error, ")
        problems.append(InvalidInput(f"{prefix}{path}" or "arguments", err.get("input"), msg + "."))
    return InvalidInputs(problems)


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
                raise ToolError(format_validation_error(cause).message) from exc
            raise


def owner() -> str | None:
    """The authenticated principal over HTTP with auth; None means the local single user."""
    token = get_access_token()
    if token is None:
        return None
    return str(token.claims.get("sub") or token.client_id)


def owner_of(services: Services) -> str:
    return owner() or services.settings.owner
