"""What templates see when a chain runs, end to end through a real MCP client: mapping keys
before methods, values JSON cannot hold, a dry run's event and fire time, and `prev`."""

from typing import Any

from tests.fixtures.api_server import ApiServer
from tests.mcp.conftest import Loom


def render(step_id: str, template: str) -> dict[str, Any]:
    return {"id": step_id, "tool": "render", "args": {"template": template}}


async def test_output_json_items_is_the_key(loom: Loom, api: ApiServer) -> None:
    """The render tool's documented `{{ steps.fetch.output.json.items }}` gives the key."""
    fetch = {"id": "fetch", "tool": "http_request", "args": {"url": api.url("/items")}}
    names = {
        "id": "names",
        "tool": "extract",
        "args": {"data": "{{ steps.fetch.output.json.items }}", "expression": "[].name"},
    }
    run = await loom.run(await loom.create([fetch, names]))
    assert (run["status"], run["output"]) == ("succeeded", ["lamp", "mug"])


# A string's method: nothing at create time can tell that `output` will be a string.
PICK_A_METHOD = [
    render("word", "abc"),
    {
        "id": "pick",
        "tool": "extract",
        "args": {"data": {"wanted": "{{ steps.word.output.upper }}"}, "expression": "wanted"},
    },
]


async def test_a_value_json_cannot_hold_fails_its_step_and_the_run_ends(loom: Loom) -> None:
    """A template that resolves to a method fails its step by name and path; the run ends."""
    run = await loom.run(await loom.create(PICK_A_METHOD))
    assert run["status"] == "failed"
    step = run["steps"][1]
    assert step["status"] == "failed"
    assert "Step 'pick': args.data.wanted is a builtin_function_or_method" in step["error"]
    assert "cannot be stored as JSON" in step["error"]
    assert step["args"]["data"]["wanted"] == "<builtin_function_or_method: not JSON>"
    stored = await loom.get_run(run["id"])
    assert stored["status"] == "failed"
    assert stored["finished_at"] is not None
    assert stored["lease_expires_at"] is None


async def test_a_dry_run_of_such_a_value_answers_a_failed_run(loom: Loom) -> None:
    """dry_run reports the same step failure instead of failing to serialise its answer."""
    answer = await loom.call("dry_run", {"steps": PICK_A_METHOD})
    assert answer["run"]["status"] == "failed"
    assert "args.data.wanted" in answer["run"]["steps"][1]["error"]


async def test_dry_run_takes_an_event_payload_and_a_fire_time(loom: Loom) -> None:
    """Templates in a dry run see the given event and fire time, and the run says how it fired."""
    step = render("say", "{{ event.sha }} at {{ run.fire_time }} ({{ run.trigger }})")
    answer = await loom.call(
        "dry_run",
        {"steps": [step], "event": {"sha": "abc123"}, "fire_time": "2026-12-01T09:00:00+01:00"},
    )
    run = answer["run"]
    assert run["output"] == "abc123 at 2026-12-01T08:00:00+00:00 (event)"
    assert run["event"] == {"sha": "abc123"}


async def test_dry_run_reads_a_naive_fire_time_in_the_server_timezone(loom: Loom) -> None:
    """A fire time without an offset is the server's wall clock (UTC here)."""
    step = render("say", "{{ run.fire_time }} {{ run.trigger }}")
    answer = await loom.call("dry_run", {"steps": [step], "fire_time": "2026-12-01T09:00:00"})
    assert answer["run"]["output"] == "2026-12-01T09:00:00+00:00 schedule"


PREV = "{% if prev %}{{ prev.status }}:{{ prev.output }}{% else %}first{% endif %}"


async def test_prev_is_the_previous_finished_run(loom: Loom) -> None:
    """The first run sees prev as null; each later run sees the one before it."""
    task_id = await loom.create([render("say", PREV)])
    outputs = [(await loom.run(task_id))["output"] for _ in range(3)]
    assert outputs == ["first", "succeeded:first", "succeeded:succeeded:first"]


async def test_only_if_changed_compares_with_prev_output(loom: Loom) -> None:
    """A chain can tell whether its result differs from the previous run's output."""
    check = render("same", "{{ prev is not none and 'steady' == prev.output }}")
    task_id = await loom.create([render("value", "steady"), check])
    first = await loom.run(task_id)
    assert first["steps"][1]["output"] == "False"
    task_id_2 = await loom.create([render("value", "steady")])
    await loom.run(task_id_2)
    dry = await loom.call(
        "dry_run",
        {
            "steps": [
                render("value", "steady"),
                render("same", "{{ steps.value.output == prev.output }}"),
            ],
            "task_id": task_id_2,
        },
    )
    assert dry["run"]["steps"][1]["output"] == "True"


async def test_dry_run_without_a_task_sees_no_prev(loom: Loom) -> None:
    """Without task_id a dry run has no previous run."""
    answer = await loom.call("dry_run", {"steps": [render("say", PREV)]})
    assert answer["run"]["output"] == "first"


async def test_dry_run_of_an_unknown_task_is_explained(loom: Loom) -> None:
    """A task_id that does not exist names the id and how to find one."""
    message = await loom.error("dry_run", {"steps": [render("say", "x")], "task_id": "tsk_no"})
    assert "tsk_no" in message
    assert "list_tasks" in message
