"""`wait`: pause the chain for a while."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from taskloom_tools.base import StepTool, ToolArgs, ToolContext, typed_run

DESCRIPTION = """\
Pause the chain for a number of seconds (0 to 3600), e.g. to let a job started by an earlier step
finish before polling it.

Output: {"waited_s": <seconds actually waited, rounded to milliseconds>}.

Example: {"seconds": 30}. For longer gaps, split the work into two tasks with their own triggers."""


class WaitArgs(ToolArgs):
    seconds: float = Field(ge=0, le=3600, description="how long to wait, in seconds")


async def wait(args: WaitArgs, ctx: ToolContext) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.sleep(args.seconds)
    return {"waited_s": round(loop.time() - started, 3)}


TOOL = StepTool(
    name="wait",
    description=DESCRIPTION,
    args_model=WaitArgs,
    run=typed_run(WaitArgs, wait),
    read_only=True,
    open_world=False,
)
