"""Tool schemas as small as they can be while they say the same thing.

Every chat pays for `tools/list` before it says a word. Pydantic writes an optional field as
`{"anyOf": [{...}, {"type": "null"}], "default": null}`; `{..., "type": [..., "null"]}` accepts
exactly the same values. Input validation never reads these schemas (FastMCP validates against
the function's signature), so rewriting them changes what the client reads, not what we accept.

`takes` gives a tool the signature of a domain model's fields, so the schema and the validation
of a tool that takes a model (create_task, update_task) both come from the model's definition.
"""

import inspect
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

import mcp_types as mt
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import Tool
from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])

# Keywords that only constrain a value of one JSON type, so they let null through unchanged.
_TYPED = frozenset(
    {
        "type", "format", "pattern", "minLength", "maxLength", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "properties", "required", "items",
        "additionalProperties", "minItems", "maxItems", "enum", "description", "examples",
        "default", "title",
    }
)  # fmt: skip


def compact(schema: Any, *, docs: bool = True) -> Any:
    """The same schema, shorter: nullable unions folded into type lists, titles, null defaults
    and `additionalProperties: true` dropped, wrapped docstrings joined into one line. (Only
    values of the right type are touched, so a property named e.g. "title" is kept.)"""
    if isinstance(schema, list):
        return [compact(item, docs=docs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: compact(value, docs=docs) for key, value in schema.items()}
    if not docs:
        _leave_to_create_task(out)
    if out.get("default", ...) is None:
        del out["default"]
    if isinstance(out.get("title"), str):  # the property's name says it already
        del out["title"]
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
    if isinstance(out.get("description"), str):
        out["description"] = " ".join(out["description"].split())
    return _fold_nullable(out)


def _leave_to_create_task(out: dict[str, Any]) -> None:
    """What a brief tool's nested model leaves to create_task's schema: its docs, its examples
    (create_task's description shows them) and that it takes no other keys (the server checks
    that for every tool alike, from the function's signature, whatever the schema shows)."""
    if isinstance(out.get("examples"), list):
        del out["examples"]
    if isinstance(out.get("description"), str):
        del out["description"]
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]


def _fold_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    variants = schema.get("anyOf")
    if not isinstance(variants, list) or {"type": "null"} not in variants or len(variants) != 2:
        return schema
    other = next(v for v in variants if v != {"type": "null"})
    kind = other.get("type")
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    if set(other) == {"oneOf"}:  # a union or null: null becomes one more alternative
        return {**rest, "oneOf": [*other["oneOf"], {"type": "null"}]}
    if not isinstance(kind, str) or not set(other) <= _TYPED or set(rest) & set(other):
        return schema
    folded = {**other, **rest, "type": [kind, "null"]}
    if "enum" in other:  # the enum must admit null too
        folded["enum"] = [*other["enum"], None]
    return folded


def _once(schema: Any, seen: set[str]) -> None:
    """Drops a description already given earlier in the same schema (e.g. a model used twice)."""
    if isinstance(schema, list):
        for item in schema:
            _once(item, seen)
    if not isinstance(schema, dict):
        return
    text = schema.get("description")
    if isinstance(text, str) and len(text) > 40:
        if text in seen:
            del schema["description"]
        seen.add(text)
    for value in schema.values():
        _once(value, seen)


def takes(model: type[BaseModel], *leading: inspect.Parameter) -> Callable[[F], F]:
    """A tool whose arguments are `leading` and then the fields of `model`, each with its type,
    constraints, default and description: FastMCP builds the tool's schema and validates its
    arguments from this signature, so both come from the model's one definition. The tool
    function takes them as keywords (`**fields`)."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    fields = [
        inspect.Parameter(name, keyword, annotation=Annotated[info.annotation, info])
        for name, info in model.model_fields.items()
    ]

    def bind(fn: F) -> F:
        returns = inspect.signature(fn).return_annotation
        signature = inspect.Signature([*leading, *fields], return_annotation=returns)
        fn.__signature__ = signature  # type: ignore[attr-defined]
        fn.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        fn.__annotations__["return"] = returns
        return fn

    return bind


def compact_parameters(
    parameters: dict[str, Any], *, brief: bool = False, known: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A tool's input schema as clients see it. `brief`: nested models without their docs, and
    no argument description another tool already gives (`known`, e.g. create_task's)."""
    parameters = compact(parameters)
    if brief:
        parameters["properties"] = {
            name: {**compact(prop, docs=False), **_own_doc(prop, known)}
            for name, prop in parameters["properties"].items()
        }
    _once(parameters, set())
    return parameters


def descriptions(schema: Any) -> frozenset[str]:
    """Every description text in a (compacted) schema."""
    if isinstance(schema, list):
        return frozenset().union(*(descriptions(item) for item in schema))
    if not isinstance(schema, dict):
        return frozenset()
    own = schema.get("description")
    found = frozenset({own}) if isinstance(own, str) else frozenset()
    return found.union(*(descriptions(value) for value in schema.values()))


def compact_tool(
    tool: Tool, *, brief: frozenset[str] = frozenset(), known: frozenset[str] = frozenset()
) -> Tool:
    """`brief` tools leave the nested models' docs to create_task (they take the same ones)."""
    parameters = compact_parameters(tool.parameters, brief=tool.name in brief, known=known)
    update: dict[str, Any] = {"parameters": parameters}
    if tool.output_schema is not None:
        update["output_schema"] = compact(tool.output_schema)
    if tool.description:
        update["description"] = tool.description.strip()
    return _without_empty_meta(tool.model_copy(update=update))


def _without_empty_meta(tool: Tool) -> Tool:
    """FastMCP sends `"_meta": {"fastmcp": {"tags": []}}` with every tool; a tool without tags
    or meta of its own says nothing with it (31 bytes a tool on every tools/list). FastMCP
    offers no switch for it, so this copy's `get_meta` leaves the empty one out."""
    meta = tool.get_meta()
    if meta != {"fastmcp": {"tags": []}}:
        return tool
    object.__setattr__(tool, "get_meta", lambda: None)  # this copy only; see the docstring
    return tool


def _own_doc(prop: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    text = prop.get("description")
    if not isinstance(text, str) or " ".join(text.split()) in known:
        return {}
    return {"description": " ".join(text.split())}


class CompactSchemas(Middleware):
    """Sends every tool's schemas compacted; `brief` names the tools whose nested models are
    documented in create_task's schema, not again in theirs, nor the arguments the other tools
    describe."""

    def __init__(self, brief: frozenset[str] = frozenset()) -> None:
        self.brief = brief

    async def on_list_tools(
        self,
        context: MiddlewareContext[mt.ListToolsRequest],
        call_next: CallNext[mt.ListToolsRequest, Sequence[Tool]],
    ) -> Sequence[Tool]:
        tools = list(await call_next(context))
        full = {t.name: compact_tool(t) for t in tools if t.name not in self.brief}
        known = descriptions([tool.parameters for tool in full.values()])
        return [full.get(t.name) or compact_tool(t, brief=self.brief, known=known) for t in tools]
