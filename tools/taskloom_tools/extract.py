"""`extract`: pick a value out of JSON data with a JMESPath expression."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from taskloom_tools.base import StepTool, StepToolError, ToolArgs, ToolContext, typed_run

DESCRIPTION = """\
Select part of a JSON value with a JMESPath expression (https://jmespath.org) and return it.

Output: the selected value itself (object, list, string, number, boolean or null); null when the
expression matches nothing.

Example: {"data": "{{ steps.fetch.output.json }}", "expression": "items[?price < `20`].name"}
returns ["lamp", "mug"]. Other useful forms: "items[0]", "length(items)",
"items[*].{name: name, cost: price}", "max_by(items, &price).name"."""


class ExtractArgs(ToolArgs):
    data: Any = Field(description="the JSON value to search, usually an earlier step's output")
    expression: str = Field(min_length=1, description="a JMESPath expression, e.g. items[0].name")


async def extract(args: ExtractArgs, ctx: ToolContext) -> Any:
    import jmespath
    from jmespath.exceptions import JMESPathError

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
)
