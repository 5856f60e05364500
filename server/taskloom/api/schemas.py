"""Tool schemas as small as they can be while they say the same thing.

Every chat pays for `tools/list` before it says a word. Pydantic writes an optional field as
`{"anyOf": [{...}, {"type": "null"}], "default": null}`; `{..., "type": [..., "null"]}` accepts
exactly the same values. Input validation never reads these schemas (FastMCP validates against
the function's signature), so rewriting them changes what the client reads, not what we accept.
"""

from collections.abc import Sequence
from typing import Any

import mcp_types as mt
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import Tool

# Keywords that only constrain a value of one JSON type, so they let null through unchanged.
_TYPED = frozenset(
    {
        "type", "format", "pattern", "minLength", "maxLength", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "properties", "required", "items",
        "additionalProperties", "minItems", "maxItems", "enum", "description", "examples",
        "default", "title",
    }
)  # fmt: skip


def compact(schema: Any) -> Any:
    """The same schema, shorter: nullable unions folded into type lists, null defaults and
    `additionalProperties: true` dropped, wrapped docstrings joined into one line."""
    if isinstance(schema, list):
        return [compact(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: compact(value) for key, value in schema.items()}
    if out.get("default", ...) is None:
        del out["default"]
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
    if isinstance(out.get("description"), str):
        out["description"] = " ".join(out["description"].split())
    return _fold_nullable(out)


def _fold_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    variants = schema.get("anyOf")
    if not isinstance(variants, list) or {"type": "null"} not in variants or len(variants) != 2:
        return schema
    other = next(v for v in variants if v != {"type": "null"})
    kind = other.get("type")
    if not isinstance(kind, str) or not set(other) <= _TYPED or "enum" in other:
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    if set(rest) & set(other):
        return schema
    return {**other, **rest, "type": [kind, "null"]}


def compact_tool(tool: Tool) -> Tool:
    update: dict[str, Any] = {"parameters": compact(tool.parameters)}
    if tool.output_schema is not None:
        update["output_schema"] = compact(tool.output_schema)
    if tool.description:
        update["description"] = tool.description.strip()
    return tool.model_copy(update=update)


class CompactSchemas(Middleware):
    """Sends every tool's schemas compacted."""

    async def on_list_tools(
        self,
        context: MiddlewareContext[mt.ListToolsRequest],
        call_next: CallNext[mt.ListToolsRequest, Sequence[Tool]],
    ) -> Sequence[Tool]:
        return [compact_tool(tool) for tool in await call_next(context)]
