"""The chain engine end to end through a real MCP client: run_task, get_run, cancel_run,
task_history, dry_run, emit_event, the run resources, and how a run moves its task."""

import json
from typing import Any

from tests.fixtures.api_server import ApiServer
from tests.mcp.conftest import Loom, LoomFactory, eventually


def wait_step(step_id: str = "pause", seconds: float = 0, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": "wait", "args": {"seconds": seconds}, **extra}


def render_step(step_id: str, template: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": "render", "args": {"template": template}, **extra}


def fetch_step(api: ApiServer, path: str, step_id: str = "fetch", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": "http_request", "args": {"url": api.url(path)}, **extra}


async def test_run_task_waits_and_returns_every_step(loom: Loom, api: ApiServer) -> None:
    """run_task returns the finished run with each step's resolved args, output and timing."""
    task_id = await loom.create(
        [
            fetch_step(api, "/items"),
            {
                "id": "names",
                "tool": "extract",
                "args": {"data": "{{ steps.fetch.output.json }}", "expression": "items[].name"},
            },
        ]
    )
    run = await loom.run(task_id)
    assert run["id"].startswith("run_")
    assert (run["status"], run["trigger"], run["attempt"]) == ("succeeded", "manual", 1)
    assert run["output"] == ["lamp", "mug"]
    assert run["started_at"].endswith(("Z", "+00:00"))
    assert run["finished_at"] >= run["started_at"]
    assert run["duration_ms"] >= 0
    fetch, names = run["steps"]
    assert (fetch["status"], fetch["attempts"]) == ("succeeded", 1)
    assert fetch["output"]["json"]["items"][0]["name"] == "lamp"
    assert names["args"]["data"] == {
        "items": [{"name": "lamp", "price": 19.9}, {"name": "mug", "price": 7.5}]
    }
    assert names["duration_ms"] >= 0


async def test_run_task_reports_progress_per_step(loom: Loom) -> None:
    """The client's progress handler hears one notification per step and one at the end."""
    task_id = await loom.create([wait_step("first"), wait_step("second")])
    await loom.run(task_id)
    assert [(done, total) for done, total, _ in loom.progress] == [(0, 2), (1, 2), (2, 2)]
    messages = [message for _, _, message in loom.progress]
    assert messages[0] == "step 1/2: first (wait)"
    assert messages[-1] == "finished: succeeded"


async def test_run_task_without_waiting_returns_the_run_id_at_once(loom: Loom) -> None:
    """wait=false answers while the run is still going; get_run later shows its result."""
    task_id = await loom.create([wait_step(seconds=0.3)])
    started = await loom.run(task_id, wait=False)
    assert started["status"] == "running"
    finished = await loom.wait_run(started["id"])
    assert finished["status"] == "succeeded"
    assert finished["output"]["waited_s"] >= 0.3


async def test_run_task_stops_waiting_after_wait_timeout(loom: Loom) -> None:
    """A run longer than wait_timeout_s is answered as still running and keeps going."""
    task_id = await loom.create([wait_step(seconds=0.5)])
    answer = await loom.call("run_task", {"task_id": task_id, "wait_timeout_s": 0.05})
    assert answer["run"]["status"] == "running"
    assert "get_run" in answer["message"]
    assert (await loom.wait_run(answer["run"]["id"]))["status"] == "succeeded"


async def test_a_failing_step_fails_the_run_and_skips_the_rest(loom: Loom, api: ApiServer) -> None:
    """A step that fails marks the run failed, names the step and skips later steps."""
    task_id = await loom.create([fetch_step(api, "/fail"), wait_step()])
    run = await loom.run(task_id)
    assert run["status"] == "failed"
    assert run["error"] == "Step 'fetch' failed: see steps[0].error"
    assert [s["status"] for s in run["steps"]] == ["failed", "skipped"]
    assert "answered 500: 'boom: database down'" in run["steps"][0]["error"]


async def test_on_error_continue_runs_the_later_steps(loom: Loom, api: ApiServer) -> None:
    """A failing step with on_error=continue lets later steps run; the run says what failed."""
    task_id = await loom.create(
        [fetch_step(api, "/fail", on_error="continue"), render_step("after", "ran")]
    )
    run = await loom.run(task_id)
    assert [s["status"] for s in run["steps"]] == ["failed", "succeeded"]
    assert run["status"] == "succeeded"
    assert run["output"] == "ran"
    assert "on_error=continue" in run["error"]


async def test_a_step_timeout_fails_the_step(loom: Loom) -> None:
    """A step slower than its timeout_s fails with the timeout named."""
    task_id = await loom.create([wait_step(seconds=5, timeout_s=0.1)])
    run = await loom.run(task_id)
    assert run["status"] == "failed"
    assert "timed out after 0.1 s" in run["steps"][0]["error"]


async def test_a_step_retry_succeeds_after_transient_failures(loom: Loom, api: ApiServer) -> None:
    """A step retried with backoff succeeds on its third attempt and records three attempts."""
    retry = {"attempts": 3, "backoff_s": 0.01, "max_backoff_s": 0.05}
    task_id = await loom.create([fetch_step(api, "/flaky/step-retry?fail=2", retry=retry)])
    run = await loom.run(task_id)
    step = run["steps"][0]
    assert (run["status"], step["status"], step["attempts"]) == ("succeeded", "succeeded", 3)
    assert step["output"]["json"] == {"ok": True, "calls": 3}


async def test_a_step_retry_gives_up_after_its_attempts(loom: Loom, api: ApiServer) -> None:
    """A step that keeps failing is tried `attempts` times and then fails the run."""
    retry = {"attempts": 2, "backoff_s": 0, "max_backoff_s": 0}
    task_id = await loom.create([fetch_step(api, "/flaky/step-give-up?fail=9", retry=retry)])
    run = await loom.run(task_id)
    assert (run["status"], run["steps"][0]["attempts"]) == ("failed", 2)
    assert api.calls["step-give-up"] == 2


async def test_a_run_timeout_fails_the_run(loom: Loom) -> None:
    """A run longer than the task's timeout_s fails; the step it was in is marked failed."""
    task_id = await loom.create([wait_step("slow", seconds=5), wait_step("next")], timeout_s=0.2)
    run = await loom.run(task_id)
    assert run["status"] == "failed"
    assert run["error"] == "The run timed out after 0.2 s (the task's timeout_s)."
    assert [s["status"] for s in run["steps"]] == ["failed", "skipped"]
    assert "timed out" in run["steps"][0]["error"]


async def test_a_template_error_names_the_step_and_expression(loom: Loom, api: ApiServer) -> None:
    """A template that reads a missing key fails its step naming step, expression and keys."""
    task_id = await loom.create(
        [
            fetch_step(api, "/items"),
            {
                "id": "use",
                "tool": "render",
                "args": {"template": "x", "data": {"price": "{{ steps.fetch.output.jsn }}"}},
            },
        ]
    )
    run = await loom.run(task_id)
    error = run["steps"][1]["error"]
    assert run["status"] == "failed"
    assert "step 'use'" in error
    assert "{{ steps.fetch.output.jsn }}" in error
    assert "'jsn'" in error
    assert "available:" in error


async def test_one_expression_keeps_its_json_type(loom: Loom, api: ApiServer) -> None:
    """An argument that is one expression passes a number, not text; mixed text renders text."""
    task_id = await loom.create(
        [
            fetch_step(api, "/items"),
            {
                "id": "pick",
                "tool": "extract",
                "args": {
                    "data": {
                        "price": "{{ steps.fetch.output.json['items'][0].price }}",
                        "label": "{{ steps.fetch.output.json['items'][0].name }}!",
                    },
                    "expression": "@",
                },
            },
        ]
    )
    run = await loom.run(task_id)
    assert run["output"] == {"price": 19.9, "label": "lamp!"}


async def test_templates_see_task_and_run(loom: Loom) -> None:
    """Templates read the task's name and the run's trigger and attempt."""
    template = "{{ task.name }} / {{ run.trigger }} / {{ run.attempt }} / {{ run.id[:4] }}"
    task_id = await loom.create([render_step("say", template)], name="Digest")
    run = await loom.run(task_id)
    assert run["output"] == "Digest / manual / 1 / run_"


async def test_large_outputs_are_stored_truncated(open_loom: LoomFactory, api: ApiServer) -> None:
    """An output over max_output_bytes is stored as a marked preview with its original size,
    while later steps still see the whole value."""
    async with open_loom(max_output_bytes=1024) as loom:
        task_id = await loom.create(
            [
                fetch_step(api, "/huge"),
                render_step("size", "{{ steps.fetch.output.text | length }}"),
            ]
        )
        run = await loom.run(task_id)
    stored = run["steps"][0]["output"]
    assert stored["truncated"] is True
    assert stored["original_bytes"] > 10_000
    assert len(stored["preview"].encode()) <= 1024
    assert run["output"] == "10000"


async def test_cancel_run_keeps_finished_steps(loom: Loom) -> None:
    """Cancelling a run in a slow step keeps the finished step and cancels the rest."""
    task_id = await loom.create(
        [render_step("first", "done"), wait_step("slow", seconds=30), wait_step("last")]
    )
    started = await loom.run(task_id, wait=False)

    async def in_slow_step() -> bool:
        steps = (await loom.get_run(started["id"]))["steps"]
        return [s["status"] for s in steps] == ["succeeded", "running", "pending"]

    await eventually(in_slow_step)
    answer = await loom.call("cancel_run", {"run_id": started["id"]})
    run = answer["run"]
    assert answer["message"] == "Run is now cancelled."
    assert run["status"] == "cancelled"
    assert [s["status"] for s in run["steps"]] == ["succeeded", "cancelled", "cancelled"]
    assert run["steps"][0]["output"] == "done"
    assert run["finished_at"] is not None


async def test_cancel_run_of_a_finished_run_is_explained(loom: Loom) -> None:
    """Cancelling a run that already ended answers an error naming its status."""
    task_id = await loom.create([wait_step()])
    run = await loom.run(task_id)
    message = await loom.error("cancel_run", {"run_id": run["id"]})
    assert run["id"] in message
    assert "'succeeded'" in message


async def test_get_run_of_an_unknown_id_is_explained(loom: Loom) -> None:
    """Asking for a run that does not exist names the id and task_history."""
    message = await loom.error("get_run", {"run_id": "run_missing"})
    assert "run_missing" in message
    assert "task_history" in message


async def test_task_history_is_newest_first_and_filters(loom: Loom, api: ApiServer) -> None:
    """task_history lists a task's runs newest first and filters them by status."""
    good = await loom.create([wait_step()])
    bad = await loom.create([fetch_step(api, "/fail")])
    ids = [(await loom.run(task))["id"] for task in (good, bad, good)]
    everything = await loom.call("task_history", {})
    assert [r["id"] for r in everything["runs"]] == ids[::-1]
    assert "steps" not in everything["runs"][0]
    failed = await loom.call("task_history", {"status": ["failed"]})
    assert [r["id"] for r in failed["runs"]] == [ids[1]]
    of_good = await loom.call("task_history", {"task_id": good})
    assert [r["id"] for r in of_good["runs"]] == [ids[2], ids[0]]


async def test_task_history_pages_with_a_cursor(loom: Loom) -> None:
    """Pages of task_history visit every run once, newest first."""
    task_id = await loom.create([wait_step()])
    ids = [(await loom.run(task_id))["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = await loom.call(
            "task_history", {"limit": 2} | ({"cursor": cursor} if cursor else {})
        )
        seen += [r["id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids[::-1]


async def test_dry_run_executes_and_saves_nothing(loom: Loom, api: ApiServer) -> None:
    """dry_run returns every step's result and leaves no task and no run behind."""
    answer = await loom.call("dry_run", {"steps": [fetch_step(api, "/items")]})
    assert answer["run"]["status"] == "succeeded"
    assert answer["run"]["output"] == {"same_as": "steps[0].output"}
    assert answer["run"]["steps"][0]["output"]["json"]["items"][1]["name"] == "mug"
    assert answer["message"] == "Dry run succeeded; nothing was saved."
    assert (await loom.call("task_history", {}))["runs"] == []
    assert (await loom.call("list_tasks", {}))["tasks"] == []


async def test_dry_run_reports_an_invalid_chain(loom: Loom) -> None:
    """dry_run with an unknown tool answers an error naming the step and the known tools."""
    message = await loom.error("dry_run", {"steps": [{"id": "a", "tool": "teleport"}]})
    assert "steps[0].tool" in message
    assert "http_request" in message


async def test_emit_event_runs_the_listening_task(loom: Loom) -> None:
    """An event starts its task's run, which sees the payload as {{ event }}."""
    task_id = await loom.create(
        [render_step("say", "deployed {{ event.version }}")], trigger={"event": "deployed"}
    )
    answer = await loom.call("emit_event", {"name": "deployed", "payload": {"version": "1.2"}})
    assert [r["task_id"] for r in answer["runs"]] == [task_id]
    run = await loom.wait_run(answer["runs"][0]["id"])
    assert (run["trigger"], run["output"]) == ("event", "deployed 1.2")


async def test_run_resource_shows_the_run(loom: Loom) -> None:
    """taskloom://runs/{id} returns the run with its steps as JSON."""
    task_id = await loom.create([render_step("say", "hello")])
    run = await loom.run(task_id)
    contents = await loom.client.read_resource(f"taskloom://runs/{run['id']}")
    shown = json.loads(contents[0].text)  # type: ignore[union-attr]
    assert (shown["id"], shown["output"]) == (run["id"], "hello")
    assert shown["steps"][0]["output"] == "hello"


async def test_output_resource_shows_the_latest_success(loom: Loom) -> None:
    """taskloom://tasks/{id}/output is the latest successful output as a document."""
    task_id = await loom.create([render_step("say", "the report body")], name="Report")
    before = await loom.client.read_resource(f"taskloom://tasks/{task_id}/output")
    assert "No successful run yet" in before[0].text  # type: ignore[union-attr]
    run = await loom.run(task_id)
    after = (await loom.client.read_resource(f"taskloom://tasks/{task_id}/output"))[0]
    assert after.text.startswith("# Report")  # type: ignore[union-attr]
    assert run["id"] in after.text  # type: ignore[union-attr]
    assert "the report body" in after.text  # type: ignore[union-attr]


async def test_last_fields_follow_success_and_failure(loom: Loom, api: ApiServer) -> None:
    """last_run_at moves only on success, last_error only on failure and a success clears it."""
    task_id = await loom.create([fetch_step(api, "/items")])
    first = await loom.run(task_id)
    after_success = await loom.task(task_id)
    assert after_success["last_run_at"] == first["finished_at"]
    assert after_success["last_error"] is None
    await loom.call("update_task", {"task_id": task_id, "steps": [fetch_step(api, "/fail")]})
    failed = await loom.run(task_id)
    stored = (await loom.call("get_run", {"run_id": failed["id"], "view": "full"}))["run"]
    after_failure = await loom.task(task_id)
    assert after_failure["last_run_at"] == first["finished_at"]
    assert after_failure["last_error"] == stored["error"]
    assert after_failure["last_attempt_at"] == failed["started_at"]
    assert after_failure["last_run_status"] == "failed"
    await loom.call("update_task", {"task_id": task_id, "steps": [fetch_step(api, "/items")]})
    third = await loom.run(task_id)
    healed = await loom.listed(task_id)
    assert healed["last_error"] is None
    assert healed["last_run_at"] == third["finished_at"]
    assert healed["run_count"] == 3


async def test_pause_on_failure_pauses_after_n_failures(loom: Loom, api: ApiServer) -> None:
    """A task with pause_on_failure=2 is paused by its second consecutive failure."""
    task_id = await loom.create(
        [fetch_step(api, "/fail")], trigger={"every": "1h"}, pause_on_failure=2
    )
    await loom.run(task_id)
    assert (await loom.task(task_id))["status"] == "active"
    await loom.run(task_id)
    task = await loom.call("get_task", {"task_id": task_id})
    assert task["task"]["status"] == "paused"
    assert "enabled" not in task["task"]  # the state is kept once: as the status
    assert task["next_fires"] == []


async def test_task_retry_queues_a_retry_run(loom: Loom, api: ApiServer) -> None:
    """A failed run of a task with retry attempts queues attempt 2, which the scheduler runs."""
    retry = {"attempts": 2, "backoff_s": 0.01, "max_backoff_s": 0.01}
    task_id = await loom.create([fetch_step(api, "/flaky/task-retry?fail=1")], retry=retry)
    first = await loom.run(task_id)
    assert first["status"] == "failed"

    async def retried() -> dict[str, Any] | None:
        runs = (await loom.call("task_history", {"task_id": task_id}))["runs"]
        return runs[0] if len(runs) == 2 and runs[0]["status"] == "succeeded" else None

    again = await eventually(retried)
    assert (again["trigger"], again["attempt"]) == ("retry", 2)
    assert again["output"]["json"] == {"ok": True, "calls": 2}


async def test_a_task_retry_stops_after_its_attempts(loom: Loom, api: ApiServer) -> None:
    """A task that keeps failing gets exactly `attempts` runs, never more."""
    retry = {"attempts": 2, "backoff_s": 0, "max_backoff_s": 0}
    task_id = await loom.create([fetch_step(api, "/flaky/task-stops?fail=9")], retry=retry)
    await loom.run(task_id)

    async def both_failed() -> list[dict[str, Any]] | None:
        runs = (await loom.call("task_history", {"task_id": task_id}))["runs"]
        return runs if [r["status"] for r in runs] == ["failed", "failed"] else None

    runs = await eventually(both_failed)
    assert [r["attempt"] for r in runs] == [2, 1]
    assert (await loom.task(task_id))["run_count"] == 2
    assert api.calls["task-stops"] == 2


async def test_cancel_run_cancels_a_queued_retry(loom: Loom, api: ApiServer) -> None:
    """A retry run still waiting out its backoff is cancelled without ever starting."""
    retry = {"attempts": 2, "backoff_s": 3600, "max_backoff_s": 3600}
    task_id = await loom.create([fetch_step(api, "/fail")], retry=retry)
    await loom.run(task_id)

    async def queued() -> dict[str, Any] | None:
        runs = (await loom.call("task_history", {"status": ["queued"]}))["runs"]
        return runs[0] if runs else None

    waiting = await eventually(queued)
    assert (waiting["trigger"], waiting["attempt"]) == ("retry", 2)
    assert waiting["not_before"] > waiting["created_at"]
    run = (await loom.call("cancel_run", {"run_id": waiting["id"]}))["run"]
    assert (run["status"], run.get("started_at")) == ("cancelled", None)


async def test_a_finished_task_cannot_be_run(loom: Loom) -> None:
    """After max_runs the task is finished, and run_task says how to run it again."""
    task_id = await loom.create([wait_step()], max_runs=1)
    await loom.run(task_id)
    assert (await loom.task(task_id))["status"] == "finished"
    message = await loom.error("run_task", {"task_id": task_id})
    assert task_id in message
    assert "update it first" in message


async def test_author_task_prompt_lists_step_tools(loom: Loom) -> None:
    """The author_task prompt carries the goal and the available step tools."""
    prompt = await loom.client.get_prompt("author_task", {"goal": "watch lamp prices"})
    text = prompt.messages[0].content.text  # type: ignore[union-attr]
    assert "watch lamp prices" in text
    assert "### http_request\n" in text
    assert "dry_run" in text


async def test_pausing_a_task_cancels_its_queued_retry(loom: Loom, api: ApiServer) -> None:
    """A retry still queued when its task is paused is cancelled, not run, and says why."""
    retry = {"attempts": 2, "backoff_s": 0.3, "max_backoff_s": 0.3}
    task_id = await loom.create([fetch_step(api, "/fail")], retry=retry)
    await loom.run(task_id)
    await loom.call("pause_task", {"task_id": task_id})

    async def settled() -> dict[str, Any] | None:
        runs = (await loom.call("task_history", {"task_id": task_id}))["runs"]
        return runs[0] if len(runs) == 2 and runs[0]["status"] != "queued" else None

    retry_run = await eventually(settled)
    assert (retry_run["status"], retry_run["attempt"]) == ("cancelled", 2)
    assert "paused" in retry_run["error"]
