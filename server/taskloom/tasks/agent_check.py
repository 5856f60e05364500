"""Checks of an `agent` step beyond its argument schema: each tool it names is in the step-tool
catalogue (built-in or '<server>/<tool>'), named by its field, with the known names."""

from typing import Any

from taskloom.domain.tasks import Step
from taskloom.errors import InvalidInput
from taskloom.step_tools import StepCatalog
from taskloom.tasks.suggest import did_you_mean
from taskloom_tools.agent import NAME, REFUSED_TOOLS


async def check_agent_tools(where: str, step: Step, catalog: StepCatalog) -> list[InvalidInput]:
    """Problems with an agent step's `tools` (none for other steps)."""
    if step.tool != NAME:
        return []
    names: Any = step.args.get("tools", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        fix = "Give tools as a literal list of step tool names, e.g. ['http_request']."
        return [InvalidInput(f"{where}.args.tools", names, fix)]
    problems = []
    for i, name in enumerate(names):
        if name in REFUSED_TOOLS:
            fix = f"Leave it out: {REFUSED_TOOLS[name]}."
            problems.append(InvalidInput(f"{where}.args.tools[{i}]", name, fix))
        elif await catalog.find(name) is None:
            known = [t.name for t in await catalog.list(include_upstream="/" in name)]
            allowed = sorted(n for n in known if n not in REFUSED_TOOLS)
            fix = (
                f"Name a step tool from list_step_tools.{did_you_mean(name, allowed)} "
                f"Available: {', '.join(allowed)}."
            )
            problems.append(InvalidInput(f"{where}.args.tools[{i}]", name, fix))
    return problems
