"""wait: pausing a chain."""

import pytest

from taskloom_tools.base import StepToolError, ToolContext
from taskloom_tools.wait import TOOL


@pytest.mark.slow
async def test_waits_and_reports_the_time_waited(strict_ctx: ToolContext) -> None:
    """The output is the time actually waited, at least the time asked for."""
    out = await TOOL.invoke({"seconds": 0.05}, strict_ctx)
    assert 0.04 <= out["waited_s"] < 1


@pytest.mark.parametrize("seconds", [-1, 3600.5])
async def test_seconds_outside_0_to_3600_are_rejected(
    strict_ctx: ToolContext, seconds: float
) -> None:
    """A negative wait or one over an hour is an argument error."""
    with pytest.raises(StepToolError, match="seconds: Input should be"):
        await TOOL.invoke({"seconds": seconds}, strict_ctx)
