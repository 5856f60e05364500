"""`extract`: pick a value out of JSON data with a JMESPath expression."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from taskloom_tools.base import StepTool, StepToolError, ToolArgs, ToolContext, typed_run

DESCRIPTION = """\
Select part of a JSON value with a JMESPath expression (https://jmespath.org) and return it.

Output: the selected value itself (object, list, string, number, boolean or null); null when the
expression matches nothing.

Example: {"data": "{{ steps.fetch.output.json }}", "expression": "items[?price < `20`].name"}
returns ["lamp", "mug"]. Other useful forms: "items[0]", "length(items)",
"items[*].{name: name, cost: price}", "max_by(items, &price).name"."""


# Far above any real expression; a longer one is refused before it is parsed.
MAX_EXPRESSION_CHARS = 2000


class ExtractArgs(ToolArgs):
    data: Any = Field(description="the JSON value to search, usually an earlier step's output")
    expression: str = Field(
        min_length=1,
        max_length=MAX_EXPRESSION_CHARS,
        description="a JMESPath expression, e.g. items[0].name",
    )


async def extract(args: ExtractArgs, ctx: ToolContext) -> Any:
    # In-process, for direct callers; the runner calls `compute` in a limited worker instead.
    return compute(args, ctx.template_context)


def compute(args: BaseModel, template_context: Mapping[str, Any]) -> Any:
    """The tool's pure computation: `args.expression` applied to `args.data`."""
    import jmespath
    from jmespath.exceptions import JMESPathError

    if not isinstance(args, ExtractArgs):
        raise TypeError(f"expected ExtractArgs, got {type(args).__name__}")

    try:
        compiled = jmespath.compile(args.expression)
    except JMESPathError as exc:
        raise StepToolError(
            f"The JMESPath expression {args.expression!r} is not valid: {_first_line(exc)}. "
            "Fix its syntax (see https://jmespath.org/specification.html)."
        ) from exc
    try:
        return compiled.search(args.data)
    except JMESPathError as exc:
        raise StepToolError(
            f"The JMESPath expression {args.expression!r} failed on this data: "
            f"{_first_line(exc)}. Check that the data has the shape the expression expects."
        ) from exc


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


TOOL = StepTool(
    name="extract",
    description=DESCRIPTION,
    args_model=ExtractArgs,
    run=typed_run(ExtractArgs, extract),
    read_only=True,
    open_world=False,
    compute=compute,
)
