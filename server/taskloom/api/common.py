"""Shared pieces of the MCP surface: tool hints, argument types, and the one place domain
errors become `ToolError` (anything unexpected is masked by FastMCP and logged).
"""

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastmcp.exceptions import ToolError
from fastmcp.exceptions import ValidationError as ArgumentError
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.middleware import Middleware, MiddlewareContext
from fastmcp.tools import ToolResult
from mcp_types import ContentBlock, TextContent
from pydantic import BaseModel, Field, ValidationError

from taskloom.api.bounded import FRAME, Place, bound, dumps, shorten_lists, slice_of
from taskloom.domain.storage import encode_cursor
from taskloom.errors import TaskloomError
from taskloom.services import Services
from taskloom.tasks.suggest import format_validation_error

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

TaskId = Annotated[str, Field(description="tsk_... (list_tasks)")]
Limit = Annotated[int, Field(ge=1, le=200, description="page size")]
Cursor = Annotated[
    str | None, Field(description="next_cursor from the previous page; omit at first")
]
ValuePath = Annotated[
    str | None,
    Field(max_length=500, description="a value to page, e.g. 'output.json.items'"),
]
Offset = Annotated[int, Field(ge=0, description="first character")]
PageLength = Annotated[int | None, Field(ge=1, description="default: what fits")]


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


# -- answers within TASKLOOM_MAX_ANSWER_BYTES ----------------------------------------------------


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """A tool's output schema: the answer model's fields with their JSON types. Nested shapes
    are told in the fields' descriptions, so a task or a run is not repeated in every tool."""
    full = model.model_json_schema()
    fields = {name: _shallow(prop) for name, prop in full["properties"].items()}
    required = full.get("required")
    return {"type": "object", "properties": fields} | ({"required": required} if required else {})


def _shallow(prop: dict[str, Any]) -> dict[str, Any]:
    variants = prop.get("anyOf", [prop])
    kinds = [v.get("type", "object") for v in variants]
    shallow: dict[str, Any] = {"type": kinds[0] if len(kinds) == 1 else kinds}
    if "description" in prop:
        shallow["description"] = prop["description"]
    return shallow


def wire_size(data: Any) -> int:
    """Bytes of a tool result carrying `data` twice: structured, and as JSON text (MCP asks
    for both), plus the envelope."""
    return _wire_size_of(dumps(data))


def _wire_size_of(text: str) -> int:
    # The text form is the JSON again as a string, in which only quotes and backslashes gain
    # an escape (compact JSON holds no raw control characters).
    return 2 * len(text.encode()) + text.count('"') + text.count("\\") + 2 + 160


def tool_result(data: dict[str, Any], text: str | None = None) -> ToolResult:
    """`text`: `data`'s JSON when the caller has it already."""
    text = dumps(data) if text is None else text
    # Built without FastMCP's conversions: `data` is JSON values already (its text was just
    # made from it), which ToolResult() would walk and copy once more.
    content: list[ContentBlock] = [TextContent(type="text", text=text)]
    return ToolResult.model_construct(content=content, structured_content=data)


def _whole(s: Services, data: dict[str, Any]) -> ToolResult | None:
    """`data` as it is, when it fits the answer budget (the usual answer): its JSON is made
    once, for the measure and the text both, instead of once per check on the way."""
    text = dumps(data)
    if _wire_size_of(text) > s.settings.max_answer_bytes:
        return None
    return tool_result(data, text)


def reply(s: Services, data: dict[str, Any], place: Place = FRAME) -> ToolResult:
    """`data` as a tool result, its long values cut to markers to fit the answer budget (and,
    should its lists of items still be too long, those shortened: see `reply_lists`)."""
    whole = _whole(s, data)
    if whole is not None:
        return whole
    return _shortened(s, bound(data, s.settings.max_answer_bytes, place, wire_size))


def reply_page(s: Services, data: dict[str, Any], key: str, place: Place) -> ToolResult:
    """A page whose items do not fit even with their values cut is shortened, and its
    next_cursor points after the last item shown."""
    whole = _whole(s, data)
    if whole is not None:
        return whole
    limit = s.settings.max_answer_bytes
    shown = bound(data, limit, place, wire_size)
    while wire_size(shown) > limit and len(data[key]) > 1:
        items = data[key]
        keep = max(1, min(len(items) - 1, int(len(items) * limit / wire_size(shown) * 0.9)))
        data = {**data, key: items[:keep], "next_cursor": encode_cursor(items[keep - 1]["id"])}
        shown = bound(data, limit, place, wire_size)
    return tool_result(shown)


def reply_lists(s: Services, data: dict[str, Any]) -> ToolResult:
    """An answer made of lists (no stored values to page): the longest list is shortened until
    the answer fits, and `omitted` says how many items each list left out."""
    whole = _whole(s, data)
    return whole if whole is not None else _shortened(s, data)


def _shortened(s: Services, data: dict[str, Any]) -> ToolResult:
    return tool_result(shorten_lists(data, s.settings.max_answer_bytes, wire_size))


def page_value(s: Services, value: Any, offset: int, length: int | None, next_call: Any) -> Any:
    """One slice of a stored value, as large as the answer budget allows (or `length`);
    `next_call(offset)` is the call that reads on."""
    limit = s.settings.max_answer_bytes
    room = (limit - 1024) // 2
    while True:
        part = slice_of(value, offset, length or limit, room)
        done = part.end >= part.chars
        shown = {
            "format": part.format, "chars": part.chars, "offset": part.offset,
            "text": part.text, "more": None if done else next_call(part.end),
        }  # fmt: skip
        if wire_size({"value": shown}) <= limit or room < 256:
            return shown
        room = int(room * limit / wire_size({"value": shown}) * 0.9)
