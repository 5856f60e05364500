"""Flow control end to end: `when` skips a step with its reason, `foreach` runs a step per item
(bounded by TASKLOOM_MAX_FOREACH_ITEMS), and both read earlier outputs and `prev`."""

from typing import Any

from tests.mcp.conftest import Loom, LoomFactory

LETTERS = {"id": "letters", "tool": "extract", "args": {"data": ["a", "b", "c"], "expression": "@"}}


def render(step_id: str, template: str, **flow: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": "render", "args": {"template": template}, **flow}


def each(**flow: Any) -> dict[str, Any]:
    args = {"data": {"at": "{{ index }}", "letter": "{{ item }}"}, "expression": "@"}
    return {"id": "each", "tool": "extract", "args": args, **flow}


async def test_a_false_when_skips_the_step_with_its_reason(loom: Loom) -> None:
    """A step whose condition is false is recorded skipped, saying why, and the run goes on."""
    when = "{{ steps.letters.output | length > 5 }}"
    steps = [LETTERS, render("long", "many", when=when), render("after", "{{ steps.long.status }}")]
    run = await loom.run(await loom.create(steps))
    assert run["status"] == "succeeded", run
    skipped = run["steps"][1]
    assert (skipped["status"], skipped["reason"]) == ("skipped", f"when was false: {when}")
    assert run["output"] == "skipped"


async def test_a_true_when_runs_the_step(loom: Loom) -> None:
    """A step whose condition is true runs as any step does."""
    steps = [LETTERS, render("short", "few", when="{{ steps.letters.output | length == 3 }}")]
    run = await loom.run(await loom.create(steps))
    assert (run["steps"][1]["status"], run["output"]) == ("succeeded", "few")


async def test_when_reads_prev_to_act_only_on_a_change(loom: Loom) -> None:
    """`prev` lets a step run only when the output differs from the previous run's."""
    changed = "{{ prev is none or prev.output != steps.value.output }}"
    steps = [render("value", "steady"), render("tell", "{{ steps.value.output }}", when=changed)]
    task_id = await loom.create(steps)
    first, second = await loom.run(task_id), await loom.run(task_id)
    assert first["steps"][1]["status"] == "succeeded"
    assert (first["output"], second["steps"][1]["status"]) == ("steady", "skipped")


async def test_foreach_runs_the_step_per_item_with_item_and_index(loom: Loom) -> None:
    """A foreach step's output is the list of its items' outputs; templates see item and index."""
    run = await loom.run(await loom.create([LETTERS, each(foreach="{{ steps.letters.output }}")]))
    assert run["status"] == "succeeded", run
    assert run["output"] == [
        {"at": 0, "letter": "a"},
        {"at": 1, "letter": "b"},
        {"at": 2, "letter": "c"},
    ]


async def test_foreach_over_too_many_items_fails_naming_the_setting(
    open_loom: LoomFactory,
) -> None:
    """A list longer than TASKLOOM_MAX_FOREACH_ITEMS fails the step before any item runs."""
    async with open_loom(max_foreach_items=2) as loom:
        steps = [LETTERS, each(foreach="{{ steps.letters.output }}")]
        run = await loom.run(await loom.create(steps))
    assert run["status"] == "failed"
    error = run["steps"][1]["error"]
    assert "foreach gave 3 items, over the limit of 2 (TASKLOOM_MAX_FOREACH_ITEMS)" in error


async def test_foreach_of_a_non_list_fails_saying_so(loom: Loom) -> None:
    """A foreach template that gives no list fails the step, naming what it gave."""
    run = await loom.run(await loom.create([each(foreach="{{ 'abc' }}")]))
    assert run["status"] == "failed"
    assert "foreach must resolve to a list, not str" in run["steps"][0]["error"]


async def test_flow_templates_are_checked_at_create(loom: Loom) -> None:
    """A when reading a later step, or a foreach reading a secret, is refused naming the field."""
    steps = [render("first", "x", when="{{ steps.second.output }}"), render("second", "y")]
    error = await loom.error("create_task", {"name": "Bad when", "steps": steps})
    assert "steps[0].when" in error
    secret = [each(foreach="{{ secrets.TOKEN }}")]
    error = await loom.error("create_task", {"name": "Bad foreach", "steps": secret})
    assert "steps[0].foreach" in error
    assert "may not read secrets" in error
