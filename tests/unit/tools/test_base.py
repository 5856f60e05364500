"""The StepTool contract: argument validation and the typed run adapter."""

import pytest
from pydantic import BaseModel

from taskloom_tools.base import StepToolError, ToolContext
from taskloom_tools.catalog import builtin_tools


class Other(BaseModel):
    seconds: float = 1


async def test_invalid_arguments_are_listed_in_one_error(strict_ctx: ToolContext) -> None:
    """Every problem with the arguments is named in one message with the tool's name."""
    tool = builtin_tools()["http_request"]
    with pytest.raises(StepToolError) as caught:
        await tool.invoke({"method": "FETCH", "colour": "red"}, strict_ctx)
    message = str(caught.value)
    assert message.startswith("http_request arguments are invalid: url: Field required; method:")
    assert "colour: Extra inputs are not permitted" in message


async def test_run_refuses_another_tools_arguments(strict_ctx: ToolContext) -> None:
    """Passing a different model to run is a programming error, not a step failure."""
    tool = builtin_tools()["wait"]
    with pytest.raises(TypeError, match="expected WaitArgs, got Other"):
        await tool.run(Other(), strict_ctx)


async def test_run_accepts_parsed_arguments(strict_ctx: ToolContext) -> None:
    """parse_args gives the model run expects."""
    tool = builtin_tools()["wait"]
    out = await tool.run(tool.parse_args({"seconds": 0}), strict_ctx)
    assert out == {"waited_s": pytest.approx(0.0, abs=0.5)}  # a loaded machine takes a few ms
