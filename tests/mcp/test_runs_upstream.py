"""Upstream steps ('<server>/<tool>') against a real FastMCP server started as a stdio child."""

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.mcp.conftest import Loom, LoomFactory

pytestmark = pytest.mark.slow

UPSTREAM = Path(__file__).resolve().parent.parent / "fixtures" / "upstream_server.py"


def write_config(path: Path, servers: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


@pytest.fixture
def mcp_config(tmp_path: Path) -> Path:
    server = {"command": sys.executable, "args": [str(UPSTREAM)]}
    missing = {"command": str(tmp_path / "no-such-server")}
    return write_config(tmp_path / "mcp.json", {"test": server, "dead": missing})


@pytest.fixture
async def uloom(open_loom: LoomFactory, mcp_config: Path) -> AsyncIterator[Loom]:
    async with open_loom(mcp_config=mcp_config) as opened:
        yield opened


def up(step_id: str, tool: str, **args: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": f"test/{tool}", "args": args}


async def test_list_step_tools_includes_upstream_tools(uloom: Loom) -> None:
    """The reachable upstream server's tools are listed as '<server>/<tool>' with schemas."""
    answer = await uloom.call("list_step_tools", {})
    tools = {t["name"]: t for t in answer["tools"]}
    assert tools["test/add"]["source"] == "test"
    assert set(tools["test/add"]["input_schema"]["properties"]) == {"a", "b"}
    assert "http_request" in tools
    assert not any(name.startswith("dead/") for name in tools)


async def test_an_upstream_chain_passes_outputs_along(uloom: Loom) -> None:
    """An upstream tool's plain result is unwrapped and feeds the next upstream step."""
    task_id = await uloom.create(
        [up("sum", "add", a=2, b=3), up("say", "echo", text="sum={{ steps.sum.output }}")]
    )
    run = await uloom.run(task_id)
    assert run["status"] == "succeeded"
    assert run["steps"][0]["output"] == 5
    assert run["output"] == {"text": "sum=5"}


async def test_an_upstream_tool_error_fails_the_step(uloom: Loom) -> None:
    """A tool error from the upstream server fails the step with its message."""
    run = await uloom.run(await uloom.create([up("boom", "fail")]))
    assert run["status"] == "failed"
    assert (
        run["steps"][0]["error"] == "Upstream tool test/fail failed: the upstream refused: kaboom"
    )


async def test_a_slow_upstream_tool_fails_at_the_step_timeout(uloom: Loom) -> None:
    """An upstream call slower than the step's timeout_s fails the step naming the limit."""
    step = up("nap", "slow", seconds=10) | {"timeout_s": 0.3}
    run = await uloom.run(await uloom.create([step]))
    assert run["status"] == "failed"
    assert "0.3" in run["steps"][0]["error"]


async def test_a_crashed_upstream_fails_the_step_not_the_server(uloom: Loom) -> None:
    """An upstream that dies mid-call fails that step clearly; the next run reconnects."""
    crash = await uloom.create([up("die", "crash")])
    run = await uloom.run(crash)
    assert run["status"] == "failed"
    assert "Lost the connection to upstream MCP server 'test'" in run["steps"][0]["error"]
    again = await uloom.run(await uloom.create([up("sum", "add", a=1, b=1)]))
    assert (again["status"], again["output"]) == ("succeeded", 2)


async def test_an_unreachable_upstream_tool_is_refused_at_creation(uloom: Loom) -> None:
    """A step naming a tool of a server that cannot start is refused with a clear fix."""
    message = await uloom.error(
        "create_task", {"name": "x", "steps": [{"id": "a", "tool": "dead/anything"}]}
    )
    assert "steps[0].tool" in message
    assert "list_step_tools" in message
