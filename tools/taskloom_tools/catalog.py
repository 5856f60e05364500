"""The built-in step tools, by name.

Importing this is cheap (pydantic only): each tool imports its heavy libraries when it runs.
"""

from taskloom_tools import agent, extract, http_request, llm_prompt, notify, render, wait
from taskloom_tools.base import StepTool


def builtin_tools() -> dict[str, StepTool]:
    """Every built-in step tool, keyed by the name a step's `tool` field uses."""
    tools = (
        http_request.TOOL,
        extract.TOOL,
        render.TOOL,
        llm_prompt.TOOL,
        notify.TOOL,
        wait.TOOL,
        agent.TOOL,
    )
    return {tool.name: tool for tool in tools}
