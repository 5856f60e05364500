"""Agent steps end to end: a scripted tool-use conversation with the Anthropic API faked at the
HTTP transport, tool calls made through the chain's own call path and recorded as sub-steps."""

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.anthropic import message_json, tool_use_json
from tests.fixtures.api_server import ApiServer
from tests.mcp.conftest import Loom, LoomFactory, eventually

UPSTREAM = Path(__file__).resolve().parent.parent / "fixtures" / "upstream_server.py"


def agent_step(instruction: str, tools: list[str], **more: Any) -> dict[str, Any]:
    return {
        "id": "think",
        "tool": "agent",
        "args": {"instruction": instruction, "tools": tools, **more},
    }


def tool_results(loom: Loom, request: int) -> list[dict[str, Any]]:
    """The tool_result blocks the model was sent in request number `request`."""
    content = loom.llm.body(request)["messages"][-1]["content"]
    return [block for block in content if block["type"] == "tool_result"]


@pytest.fixture
async def uloom(open_loom: LoomFactory, tmp_path: Path) -> AsyncIterator[Loom]:
    server = {"command": sys.executable, "args": [str(UPSTREAM)]}
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"test": server}}), encoding="utf-8")
    async with open_loom(mcp_config=config) as opened:
        yield opened


@pytest.mark.slow
async def test_an_agent_calls_an_upstream_tool_and_http_request(
    uloom: Loom, api: ApiServer
) -> None:
    """The model's calls of an upstream tool and http_request run, feed it back and are recorded."""
    uloom.llm.script = [
        tool_use_json(("test__add", {"a": 2, "b": 3})),
        tool_use_json(("http_request", {"url": api.url("/items")})),
        message_json("2+3=5 and the API has items."),
    ]
    step = agent_step("Add 2 and 3, then read the items.", ["test/add", "http_request"])
    run = await uloom.run(await uloom.create([step]))
    assert run["status"] == "succeeded", run
    assert run["output"]["text"] == "2+3=5 and the API has items."
    assert (run["output"]["turns"], run["output"]["tool_calls"]) == (3, 2)
    calls = (await uloom.get_run(run["id"]))["steps"][0]["calls"]
    assert [(c["tool"], c["status"], c["turn"]) for c in calls] == [
        ("test/add", "succeeded", 1),
        ("http_request", "succeeded", 2),
    ]
    assert (calls[0]["args"], calls[0]["output"]) == ({"a": 2, "b": 3}, 5)
    assert calls[1]["output"]["status"] == 200
    assert all(c["duration_ms"] >= 0 for c in calls)
    assert tool_results(uloom, 1)[0]["content"] == "5"
    declared = {t["name"] for t in uloom.llm.body(0)["tools"]}
    assert declared == {"test__add", "http_request"}


async def test_a_tool_the_agent_was_not_given_is_refused(loom: Loom) -> None:
    """A call of a tool outside the step's tools is refused to the model and recorded."""
    loom.llm.script = [
        tool_use_json(("http_request", {"url": "https://example.org"})),
        message_json("I could not fetch it."),
    ]
    run = await loom.run(await loom.create([agent_step("Fetch example.org.", ["wait"])]))
    assert run["status"] == "succeeded", run
    refusal = tool_results(loom, 1)[0]
    assert refusal["is_error"] is True
    assert "'http_request' is not one of this agent's tools (wait)" in refusal["content"]
    calls = (await loom.get_run(run["id"]))["steps"][0]["calls"]
    assert [(c["tool"], c["status"]) for c in calls] == [("http_request", "refused")]
    assert calls[0]["args"] == {"url": "https://example.org"}


async def test_an_agent_that_keeps_calling_tools_stops_at_max_turns(loom: Loom) -> None:
    """A model still asking for tools after max_turns fails the step, naming the limit."""
    loom.llm.script = [tool_use_json(("wait", {"seconds": 0})) for _ in range(5)]
    step = agent_step("Wait forever.", ["wait"], max_turns=3)
    run = await loom.run(await loom.create([step]))
    assert run["status"] == "failed"
    assert "max_turns=3" in run["steps"][0]["error"]
    assert len(loom.llm.requests) == 3
    calls = (await loom.get_run(run["id"]))["steps"][0]["calls"]
    assert [c["turn"] for c in calls] == [1, 2]


async def test_the_address_guard_refuses_a_private_address_inside_an_agent(
    open_loom: LoomFactory, api: ApiServer
) -> None:
    """An agent's http_request to a loopback address fails as a chain step's would, recorded."""
    async with open_loom(http_allow_hosts="") as loom:
        loom.llm.script = [
            tool_use_json(("http_request", {"url": api.url("/items")})),
            message_json("The address was refused."),
        ]
        run = await loom.run(await loom.create([agent_step("Read the items.", ["http_request"])]))
    assert run["status"] == "succeeded", run
    result = tool_results(loom, 1)[0]
    assert result["is_error"] is True
    assert "TASKLOOM_HTTP_ALLOW_HOSTS" in result["content"]
    call = run["steps"][0]["calls"][0]
    assert (call["tool"], call["status"]) == ("http_request", "failed")
    assert "TASKLOOM_HTTP_ALLOW_HOSTS" in call["error"]


async def test_an_agent_without_an_api_key_fails_clearly(open_loom: LoomFactory) -> None:
    """Without ANTHROPIC_API_KEY the step fails saying which setting to set."""
    async with open_loom(ANTHROPIC_API_KEY=None) as loom:
        run = await loom.run(await loom.create([agent_step("Anything.", [])]))
    assert run["status"] == "failed"
    assert "agent needs an Anthropic API key: set ANTHROPIC_API_KEY" in run["steps"][0]["error"]


async def test_an_unknown_agent_tool_is_refused_at_create_naming_the_field(loom: Loom) -> None:
    """create_task names the tools entry that is not a step tool."""
    step = agent_step("Fetch it.", ["wait", "http_requst"])
    error = await loom.error("create_task", {"name": "Bad agent", "steps": [step]})
    assert "steps[0].args.tools[1]" in error
    assert "Did you mean 'http_request'?" in error


async def test_a_task_may_be_just_an_instruction(loom: Loom) -> None:
    """create_task with instruction and tools and no steps makes one agent step."""
    loom.llm.text = "Nothing needs an answer."
    answer = await loom.call(
        "create_task",
        {"name": "Inbox digest", "instruction": "Digest my inbox.", "tools": ["wait"]},
    )
    steps = answer["task"]["steps"]
    assert [(s["id"], s["tool"]) for s in steps] == [("agent", "agent")]
    assert steps[0]["args"] == {"instruction": "Digest my inbox.", "tools": ["wait"]}
    run = await loom.run(answer["task"]["id"])
    assert run["output"]["text"] == "Nothing needs an answer."
    assert loom.llm.body()["messages"][0]["content"] == "Digest my inbox."


async def test_structured_output_is_parsed_and_checked(loom: Loom) -> None:
    """With output_schema the answer is parsed as JSON and a mismatch is sent back once."""
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
    loom.llm.script = [message_json('{"count": "two"}'), message_json('{"count": 2}')]
    run = await loom.run(await loom.create([agent_step("Count.", [], output_schema=schema)]))
    assert run["status"] == "succeeded", run
    assert run["output"]["json"] == {"count": 2}
    retry = loom.llm.body(1)["messages"][-1]["content"]
    assert "does not match the JSON schema: at count: 'two' is not of type 'integer'" in retry


async def test_a_cancelled_agent_step_keeps_the_calls_it_made(loom: Loom, api: ApiServer) -> None:
    """Cancelling a run while its agent waits on a tool keeps the calls already made."""
    loom.llm.script = [
        tool_use_json(("http_request", {"url": api.url("/items")})),
        tool_use_json(("wait", {"seconds": 60})),
        message_json("never reached"),
    ]
    step = agent_step("Read the items, then wait.", ["http_request", "wait"])
    started = await loom.run(await loom.create([step]), wait=False)

    async def waiting() -> bool:
        return len(loom.llm.requests) >= 2  # the first call's result went back to the model

    await eventually(waiting)
    run = (await loom.call("cancel_run", {"run_id": started["id"]}))["run"]
    assert run["status"] == "cancelled"
    calls = (await loom.get_run(run["id"]))["steps"][0]["calls"]
    assert [(c["tool"], c["status"]) for c in calls] == [("http_request", "succeeded")]
