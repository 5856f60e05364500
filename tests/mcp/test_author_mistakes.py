"""Author mistakes caught at create, update and dry run, as the calling model sees them: refused
with the field, the bad value and the fix, or accepted with a warning saying what to set up."""

from dataclasses import dataclass, field
from typing import Any

import pytest
from fastmcp import Client

from taskloom.domain.tasks import Task, TaskSpec
from taskloom.services import Services
from tests.mcp.conftest import WAIT_STEP

REFUSED, WARNED = "refused", "accepted with a warning"
EXISTING = "Existing digest"


def step(step_id: str, tool: str, **args: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": tool, "args": args}


def task(**fields: Any) -> dict[str, Any]:
    return {"name": "New digest", "steps": [WAIT_STEP], **fields}


@dataclass
class Mistake:
    label: str
    args: dict[str, Any]
    expected: list[str]  # the field, the bad value and the fix, as the model reads them
    verdict: str = REFUSED
    tool: str = "create_task"
    warned_field: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


EVENT_ECHO = step("tell", "notify", message="{{ event.sha }}")
MISTAKES = [
    Mistake(
        "at in the past",
        task(trigger={"at": "2020-01-01T09:00:00+00:00"}),
        ["trigger.at", "2020-01-01T09:00:00+00:00", "in the past", "run_task"],
    ),
    Mistake(
        "end_at in the past",
        task(trigger={"every": "1h"}, end_at="2020-01-01T00:00:00Z"),
        ["end_at", "2020-01-01", "in the past", "clear it"],
    ),
    Mistake(
        "end_at before the first fire",
        task(trigger={"at": "2099-01-02T09:00:00Z"}, end_at="2099-01-01T00:00:00Z"),
        ["end_at", "2099-01-01", "first fire is 2099-01-02", "Move end_at later"],
    ),
    Mistake(
        "EST is a fixed offset",
        task(trigger={"cron": "0 9 * * *", "timezone": "EST"}),
        ["trigger.timezone", "'EST'", "America/New_York"],
    ),
    Mistake(
        "a definition over 256 KiB",
        task(steps=[step(f"tell{n}", "notify", message="x" * 7000) for n in range(40)]),
        ["task", "bytes>", "at most 262144 bytes", "move large data into a step that fetches it"],
    ),
    Mistake(
        "PST is an abbreviation",
        task(trigger={"cron": "0 9 * * *", "timezone": "PST"}),
        ["trigger.cron.timezone", "'PST'", "America/Los_Angeles"],
    ),
    Mistake(
        "CET is an abbreviation",
        task(trigger={"every": "1h", "timezone": "CET"}),
        ["trigger.timezone", "'CET'", "Europe/Berlin"],
    ),
    Mistake(
        "IST is ambiguous",
        task(trigger={"cron": "0 9 * * *", "timezone": "IST"}),
        ["trigger.cron.timezone", "'IST'", "Asia/Kolkata", "Europe/Dublin"],
    ),
    Mistake(
        "Etc/GMT+5 is a fixed offset",
        task(trigger={"cron": "0 9 * * *", "timezone": "Etc/GMT+5"}),
        ["trigger.timezone", "Etc/GMT+5", "fixed offset", "America/New_York"],
    ),
    Mistake(
        "schedule instead of trigger",
        task(schedule={"cron": "0 9 * * *"}),
        ["schedule", "Unknown field", "Did you mean 'trigger'?"],
    ),
    Mistake(
        "arguments instead of args",
        task(steps=[{"id": "a", "tool": "wait", "arguments": {"seconds": 1}}]),
        ["steps.0.arguments", "Did you mean 'args'?"],
    ),
    Mistake(
        "tz instead of timezone",
        task(trigger={"cron": "0 9 * * *", "tz": "Europe/Berlin"}),
        ["trigger.cron.tz", "'Europe/Berlin'", "Did you mean 'timezone'?"],
    ),
    Mistake(
        "JMESPath syntax error",
        task(steps=[step("pick", "extract", data={"a": 1}, expression="items[?price <")]),
        ["steps[0].args.expression", "'items[?price <'", "not valid JMESPath", "Fix its syntax"],
    ),
    Mistake(
        "duplicate name",
        task(name=EXISTING.upper()),
        ["name", EXISTING.upper(), "already have a task", "update_task"],
    ),
    Mistake(
        "every: true",
        task(trigger={"every": True}),
        ["trigger.every", "True", "duration such as '30m'", "not true"],
    ),
    Mistake("max_runs: true", task(max_runs=True), ["max_runs", "True", "Give a number"]),
    Mistake(
        "retry.attempts: true",
        task(retry={"attempts": True}),
        ["retry.attempts", "True", "Give a number"],
    ),
    Mistake(
        "every below the minimum",
        task(trigger={"every": "500ms"}),
        ["trigger.every", "'500ms'", "shorter than 1 second"],
    ),
    Mistake(
        "cron that never fires",
        task(trigger={"cron": "0 9 30 2 *"}),
        ["trigger.cron", "'0 9 30 2 *'", "never fires", "e.g. '0 9 * * 1-5'"],
    ),
    Mistake("max_runs: 0", task(max_runs=0), ["max_runs", "0", "greater than or equal to 1"]),
    Mistake(
        "a reference to a later step",
        task(steps=[step("a", "notify", message="{{ steps.b.output }}"), WAIT_STEP | {"id": "b"}]),
        ["steps[0].args", "steps.b", "runs later"],
    ),
    Mistake(
        "step instead of steps",
        task(steps=[WAIT_STEP, step("tell", "notify", message="{{ step.pause.output }}")]),
        ["steps[1].args.message", "'step'", "Did you mean 'steps'?"],
    ),
    Mistake(
        "a misspelt step result key",
        task(steps=[WAIT_STEP, step("tell", "notify", message="{{ steps.pause.outptu }}")]),
        ["steps[1].args.message", "steps.pause.outptu", "Did you mean 'output'?"],
    ),
    Mistake(
        "a misspelt run key",
        task(steps=[step("tell", "notify", message="{{ run.fire_at }}")]),
        ["steps[0].args.message", "run.fire_at", "Did you mean 'fire_time'?"],
    ),
    Mistake(
        "an unknown step tool",
        task(steps=[step("fetch", "http_get", url="https://example.org")]),
        ["steps[0].tool", "'http_get'", "Did you mean 'http_request'?"],
    ),
    Mistake(
        "an unknown step argument",
        task(steps=[step("pause", "wait", secs=1)]),
        ["steps[0].args.secs", "Did you mean 'seconds'?"],
    ),
    Mistake(
        "a step timeout longer than the task's",
        task(steps=[WAIT_STEP | {"timeout_s": 600}], timeout_s=60),
        ["steps[0].timeout_s", "600", "task's timeout_s (60 s)"],
    ),
    Mistake(
        "both json and body",
        task(steps=[step("post", "http_request", url="https://x.org", json={}, body="b")]),
        ["steps[0].args", "either json or body"],
    ),
    Mistake(
        "update: at in the past",
        {"trigger": {"at": "2021-06-01T08:00:00+02:00"}},
        ["trigger.at", "2021-06-01", "in the past"],
        tool="update_task",
    ),
    Mistake(
        "update: rename onto another task",
        {"name": "Other digest"},
        ["name", "'Other digest'", "already have a task"],
        tool="update_task",
        extra={"other": "Other digest"},
    ),
    Mistake(
        "dry run: an unknown template variable",
        {"steps": [step("tell", "notify", message="{{ evnt.sha }}")]},
        ["steps[0].args.message", "'evnt'", "Did you mean 'event'?"],
        tool="dry_run",
    ),
    Mistake(
        "llm_prompt without an API key",
        task(steps=[step("ask", "llm_prompt", prompt="Say hi")]),
        ["ANTHROPIC_API_KEY", "restart"],
        WARNED,
        warned_field="steps[0].tool",
    ),
    Mistake(
        "summary without an API key",
        task(summary={"enabled": True}),
        ["Anthropic API key", "ANTHROPIC_API_KEY"],
        WARNED,
        warned_field="summary.enabled",
    ),
    Mistake(
        "a missing secret",
        task(steps=[step("tell", "notify", message="{{ secrets.API_TOKEN }}")]),
        ["'API_TOKEN'", "TASKLOOM_SECRET_API_TOKEN", "secrets file"],
        WARNED,
        warned_field="steps[0].args",
    ),
    Mistake(
        "a private address",
        task(steps=[step("fetch", "http_request", url="http://10.1.2.3/status")]),
        ["10.1.2.3", "a private address", "TASKLOOM_HTTP_ALLOW_HOSTS"],
        WARNED,
        warned_field="steps[0].args.url",
    ),
    Mistake(
        "a name that resolves to loopback",
        task(steps=[step("fetch", "http_request", url="http://localhost:9/{{ run.id }}")]),
        ["localhost", "loopback", "TASKLOOM_HTTP_ALLOW_HOSTS"],
        WARNED,
        warned_field="steps[0].args.url",
    ),
    Mistake(
        "a loopback notify webhook",
        task(notify={"on": "failure", "webhook_url": "http://127.0.0.1:9/hook"}),
        ["127.0.0.1", "loopback", "TASKLOOM_HTTP_ALLOW_HOSTS"],
        WARNED,
        warned_field="notify.webhook_url",
    ),
    Mistake(
        "event used without an event trigger",
        task(steps=[EVENT_ECHO], trigger={"every": "1h"}),
        ["{{ event }}", "null unless an event trigger"],
        WARNED,
        warned_field="steps[0].args",
    ),
    Mistake(
        "notify.on always with nowhere to send",
        task(notify={"on": "always"}),
        ["'always'", "no webhook_url", "only the server log"],
        WARNED,
        warned_field="notify.on",
    ),
    Mistake(
        "dry run with a missing secret",
        {"steps": [step("tell", "notify", message="{{ secrets.NOT_SET }}")]},
        ["'NOT_SET'", "TASKLOOM_SECRET_NOT_SET"],
        WARNED,
        tool="dry_run",
        warned_field="steps[0].args",
    ),
]


async def names(client: Client[Any]) -> list[str]:
    listed = (await client.call_tool("list_tasks", {})).structured_content
    assert listed is not None
    return sorted(t["name"] for t in listed["tasks"])


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.label for m in MISTAKES])
async def test_author_mistake_is_caught(client: Client[Any], mistake: Mistake) -> None:
    """Each mistake is refused naming field, value and fix, or accepted with a warning."""
    existing = await client.call_tool("create_task", task(name=EXISTING))
    assert existing.structured_content is not None
    if "other" in mistake.extra:
        await client.call_tool("create_task", task(name=mistake.extra["other"]))
    before = await names(client)
    existing_id = existing.structured_content["task"]["id"]
    args = dict(mistake.args)
    if mistake.tool == "update_task":
        args["task_id"] = existing_id
    result = await client.call_tool(mistake.tool, args, raise_on_error=False)
    if mistake.verdict == REFUSED:
        assert result.is_error, result
        message = "\n".join(getattr(c, "text", "") for c in result.content)
        assert "is not valid" in message
        for fragment in mistake.expected:
            assert fragment in message, message
        assert await names(client) == before  # nothing was stored or changed
        kept = await client.call_tool("get_task", {"task_id": existing_id})
        assert kept.structured_content["task"]["revision"] == 1  # type: ignore[index]
        return
    assert not result.is_error, result
    answer = result.structured_content
    assert answer is not None
    warned = [w for w in answer["warnings"] if w["field"] == mistake.warned_field]
    assert warned, answer["warnings"]
    for fragment in mistake.expected:
        assert fragment in warned[0]["message"], warned[0]


def test_the_table_covers_at_least_25_mistakes() -> None:
    """The table holds at least 25 distinct mistakes, both refused and warned ones."""
    assert len({m.label for m in MISTAKES}) >= 25
    assert {m.verdict for m in MISTAKES} == {REFUSED, WARNED}


async def test_a_clean_task_has_no_warnings(client: Client[Any]) -> None:
    """A task with nothing to set up is created without warnings (the compact answer omits an
    empty list)."""
    answer = (await client.call_tool("create_task", task())).structured_content
    assert answer is not None
    assert answer["task"]["id"].startswith("tsk_")
    assert "warnings" not in answer


async def test_an_unchanged_schedule_is_not_checked_again(
    client: Client[Any], services: Services
) -> None:
    """A stored task whose `at` has passed, in a legacy zone, can still be renamed."""
    now = services.clock.now()
    old = Task(
        **TaskSpec.model_validate(
            task(trigger={"at": "2020-01-01T09:00:00", "timezone": "EST"})
        ).fields(),
        id="tsk_old",
        owner=services.settings.owner,
        timezone="EST",
        created_at=now,
        updated_at=now,
    )
    await services.store.add_task(old, max_per_owner=10)
    renamed = await client.call_tool("update_task", {"task_id": "tsk_old", "name": "Renamed"})
    assert renamed.structured_content["task"]["name"] == "Renamed"  # type: ignore[index]


async def test_a_taken_name_is_listed_with_the_other_mistakes(client: Client[Any]) -> None:
    """A create whose name is taken and which has other mistakes is refused once, listing all of
    them: the name is looked up whenever something else is wrong (a create that is otherwise
    right learns of a taken name from the store's unique key, with the same message)."""
    await client.call_tool("create_task", task(name=EXISTING))
    steps = [step("a", "no_such_tool"), step("a", "wait", seconds=1)]
    wrong = task(name=EXISTING.lower(), steps=steps)
    result = await client.call_tool("create_task", wrong, raise_on_error=False)
    assert result.is_error
    message = "\n".join(getattr(c, "text", "") for c in result.content)
    assert "3 problems in the request" in message, message
    for fragment in ("steps[0].tool", "steps[1].id", f"name: '{EXISTING.lower()}'"):
        assert fragment in message, message
    assert await names(client) == [EXISTING]
