"""Summaries and llm_prompt steps, with the Anthropic API faked at the HTTP transport."""

from tests.fixtures.api_server import ApiServer
from tests.mcp.conftest import Loom

SAY = {"id": "say", "tool": "render", "args": {"template": "lamp costs 19.9"}}


async def test_a_summary_is_stored_on_the_run_and_listed(loom: Loom) -> None:
    """A task with summary enabled gets the model's summary on its run and in list_tasks."""
    loom.llm.text = "  The lamp still costs 19.9.  "
    task_id = await loom.create([SAY], summary={"enabled": True})
    run = await loom.run(task_id)
    assert run["summary"] == "The lamp still costs 19.9."
    listed = await loom.listed(task_id)
    assert listed["last_summary"] == "The lamp still costs 19.9."
    assert listed["last_run_status"] == "succeeded"


async def test_a_summary_uses_the_summary_model_and_the_output(loom: Loom) -> None:
    """The summary request names the settings' summary model, the token cap and the output."""
    await loom.run(await loom.create([SAY], name="Lamp watch", summary={"enabled": True}))
    body = loom.llm.body()
    assert body["model"] == loom.settings.summary_model
    assert body["max_tokens"] == 150
    prompt = body["messages"][0]["content"]
    assert "'Lamp watch'" in prompt
    assert '"lamp costs 19.9"' in prompt


async def test_a_task_may_pick_its_summary_model(loom: Loom) -> None:
    """summary.model and summary.max_tokens override the defaults."""
    summary = {"enabled": True, "model": "claude-opus-4-6", "max_tokens": 40}
    await loom.run(await loom.create([SAY], summary=summary))
    assert (loom.llm.body()["model"], loom.llm.body()["max_tokens"]) == ("claude-opus-4-6", 40)


async def test_a_failing_summary_leaves_the_run_succeeded(loom: Loom) -> None:
    """When the API refuses the summary the run still succeeds, without a summary."""
    loom.llm.status = 400
    run = await loom.run(await loom.create([SAY], summary={"enabled": True}))
    assert (run["status"], run.get("summary")) == ("succeeded", None)


async def test_a_failed_run_keeps_the_last_summary(loom: Loom, api: ApiServer) -> None:
    """A failed run asks for no summary, and list_tasks keeps showing the last good one."""
    task_id = await loom.create([SAY], summary={"enabled": True})
    await loom.run(task_id)
    failing = {"id": "fetch", "tool": "http_request", "args": {"url": api.url("/fail")}}
    await loom.call("update_task", {"task_id": task_id, "steps": [failing]})
    run = await loom.run(task_id)
    assert (run["status"], run.get("summary")) == ("failed", None)
    assert len(loom.llm.requests) == 1
    listed = await loom.listed(task_id)
    assert listed["last_summary"] == "Prices are steady."
    assert listed["last_error"] == f"Step 'fetch' failed: {run['steps'][0]['error']}"


async def test_an_llm_prompt_step_answers_from_earlier_output(loom: Loom) -> None:
    """An llm_prompt step sends the rendered prompt and returns the model's text."""
    loom.llm.text = "cheap"
    ask = {
        "id": "ask",
        "tool": "llm_prompt",
        "args": {"prompt": "Is this cheap? {{ steps.say.output }}", "max_tokens": 20},
    }
    run = await loom.run(await loom.create([SAY, ask]))
    assert run["output"]["text"] == "cheap"
    assert run["output"]["model"] == loom.settings.llm_model
    assert loom.llm.body()["messages"][0]["content"] == "Is this cheap? lamp costs 19.9"
