"""extract: JMESPath selections."""

from typing import Any

import pytest

from taskloom_tools.base import StepToolError, ToolContext
from taskloom_tools.extract import TOOL

DATA = {"items": [{"name": "lamp", "price": 19.9}, {"name": "mug", "price": 7.5}]}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("items[0].name", "lamp"),
        ("items[?price < `10`].name", ["mug"]),
        ("length(items)", 2),
        ("max_by(items, &price).name", "lamp"),
        ("items[*].{n: name}", [{"n": "lamp"}, {"n": "mug"}]),
    ],
)
async def test_returns_the_selected_value(
    strict_ctx: ToolContext, expression: str, expected: Any
) -> None:
    """The expression's result is the output, with its JSON type."""
    assert await TOOL.invoke({"data": DATA, "expression": expression}, strict_ctx) == expected


async def test_no_match_returns_null(strict_ctx: ToolContext) -> None:
    """An expression that matches nothing returns None."""
    assert await TOOL.invoke({"data": DATA, "expression": "missing.field"}, strict_ctx) is None


async def test_an_invalid_expression_names_the_expression(strict_ctx: ToolContext) -> None:
    """A syntax error is reported with the expression that caused it."""
    with pytest.raises(StepToolError, match=r"expression 'items\[0' is not valid"):
        await TOOL.invoke({"data": DATA, "expression": "items[0"}, strict_ctx)


async def test_a_type_error_on_the_data_is_reported(strict_ctx: ToolContext) -> None:
    """A function applied to the wrong type fails with the expression and a hint."""
    with pytest.raises(StepToolError, match=r"'length\(items\[0\].price\)' failed on this data"):
        await TOOL.invoke({"data": DATA, "expression": "length(items[0].price)"}, strict_ctx)


async def test_data_is_required(strict_ctx: ToolContext) -> None:
    """Leaving out data is an argument error naming the field."""
    with pytest.raises(StepToolError, match="data: Field required"):
        await TOOL.invoke({"expression": "a"}, strict_ctx)


async def test_an_overlong_expression_is_refused(strict_ctx: ToolContext) -> None:
    """An expression over the length bound is refused before it is parsed."""
    with pytest.raises(StepToolError, match="expression: String should have at most 2000"):
        await TOOL.invoke({"data": [], "expression": "@" * 2001}, strict_ctx)
