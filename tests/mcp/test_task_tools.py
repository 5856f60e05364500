"""The task tools end to end through a real MCP client, errors included as the model sees them."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from taskloom.app import build_server
from taskloom.domain.tasks import Task
from taskloom.services import build_services
from tests.conftest import make_settings
from tests.mcp.conftest import WAIT_STEP, task_args

PRODUCT_TOOLS = {
    "create_task", "list_tasks", "get_task", "update_task", "delete_task", "pause_task",
    "resume_task", "run_task", "cancel_run", "get_run", "task_history", "list_step_tools",
    "preview_schedule", "dry_run", "emit_event", "scheduler_status", "task_revisions",
    "restore_task",
}  # fmt: skip


async def create(client: Client[Any], **overrides: Any) -> dict[str, Any]:
    result = await client.call_tool("create_task", task_args(**overrides))
    assert result.structured_content is not None
    return result.structured_content


async def error_of(client: Client[Any], tool: str, args: dict[str, Any]) -> str:
    result = await client.call_tool(tool, args, raise_on_error=False)
    assert result.is_error, result
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def test_tools_carry_annotations_and_descriptions(client: Client[Any]) -> None:
    """Every tool has a description for the model and the four behaviour hints."""
    tools = await client.list_tools()
    for tool in tools:
        assert tool.description, tool.name
        hints = tool.annotations
        assert hints is not None, tool.name
        assert hints.read_only_hint is not None, tool.name
        assert hints.destructive_hint is not None, tool.name
        assert hints.idempotent_hint is not None, tool.name
        assert hints.open_world_hint is not None, tool.name


async def test_create_task_returns_next_fires_in_its_timezone(client: Client[Any]) -> None:
    """A created cron task answers with its id, its timezone and next fires with offsets."""
    answer = await create(client)
    assert answer["task"]["id"].startswith("tsk_")
    assert answer["timezone"] == "Europe/Berlin"
    first = answer["next_fires"][0]
    assert first["local"].endswith(("+01:00", "+02:00"))
    assert first["utc"].endswith("+00:00")
    assert len(answer["next_fires"]) == 5


async def test_default_timezone_is_echoed(client: Client[Any]) -> None:
    """A trigger without a timezone takes the server's and says so."""
    answer = await create(client, trigger={"cron": "*/5 * * * *"})
    assert answer["timezone"] == "UTC"
    assert answer["task"]["timezone"] == "UTC"


async def test_list_tasks_pages_with_a_cursor(client: Client[Any]) -> None:
    """list_tasks returns pages whose cursors visit every task once."""
    made = [(await create(client, name=f"t{i}"))["task"]["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        args: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.call_tool("list_tasks", args)).structured_content
        assert page is not None
        seen += [t["id"] for t in page["tasks"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == made


async def test_get_task_shows_policies_and_fires(client: Client[Any]) -> None:
    """get_task returns the whole task with its defaults filled in."""
    task_id = (await create(client))["task"]["id"]
    answer = (await client.call_tool("get_task", {"task_id": task_id})).structured_content
    assert answer is not None
    assert answer["task"]["catchup"] == "latest"
    assert answer["task"]["overlap"] == "skip"
    assert answer["recent_runs"] == []


async def test_update_task_changes_only_given_fields(client: Client[Any]) -> None:
    """update_task changes the named fields, keeps the rest and reschedules."""
    task_id = (await create(client))["task"]["id"]
    result = await client.call_tool(
        "update_task", {"task_id": task_id, "trigger": {"every": "30m"}, "name": "Renamed"}
    )
    task = result.structured_content["task"]  # type: ignore[index]
    assert task["name"] == "Renamed"
    assert task["steps"][0]["id"] == "pause"
    assert task["trigger"]["every"] == "30m"
    assert task["revision"] == 2


async def test_pause_and_resume_keep_the_schedule(client: Client[Any]) -> None:
    """Pausing clears the next fire; resuming restores it."""
    task_id = (await create(client))["task"]["id"]
    paused = (await client.call_tool("pause_task", {"task_id": task_id})).structured_content
    assert paused is not None
    assert paused["task"]["status"] == "paused"
    assert paused["next_fires"] == []
    resumed = (await client.call_tool("resume_task", {"task_id": task_id})).structured_content
    assert resumed is not None
    assert resumed["task"]["status"] == "active"
    assert resumed["next_fires"]


async def test_delete_task_removes_it(client: Client[Any]) -> None:
    """A deleted task is gone, and asking for it names the id and what to do."""
    task_id = (await create(client))["task"]["id"]
    await client.call_tool("delete_task", {"task_id": task_id})
    message = await error_of(client, "get_task", {"task_id": task_id})
    assert task_id in message
    assert "list_tasks" in message


async def test_preview_schedule_honours_fall_back(client: Client[Any]) -> None:
    """A daily 01:30 New York cron fires once on the night clocks fall back."""
    answer = (
        await client.call_tool(
            "preview_schedule",
            {
                "trigger": {"cron": "30 1 * * *", "timezone": "America/New_York"},
                "after": "2026-10-31T12:00:00+00:00",
                "count": 3,
            },
        )
    ).structured_content
    assert answer is not None
    assert [f["utc"] for f in answer["fires"]] == [
        "2026-11-01T05:30:00+00:00",
        "2026-11-02T06:30:00+00:00",
        "2026-11-03T06:30:00+00:00",
    ]
    assert answer["timezone"] == "America/New_York"


async def test_list_step_tools_shows_schemas(client: Client[Any]) -> None:
    """The built-in step tools are listed with their input schemas."""
    answer = (await client.call_tool("list_step_tools", {})).structured_content
    assert answer is not None
    names = {t["name"] for t in answer["tools"]}
    assert {"http_request", "extract", "render", "llm_prompt", "notify", "wait"} <= names
    http = next(t for t in answer["tools"] if t["name"] == "http_request")
    assert "url" in http["input_schema"]["properties"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"trigger": {"cron": "61 * * * *"}}, ["trigger.cron", "61"]),
        ({"trigger": {"cron": "0 9 * * *", "timezone": "Mars/Olympus"}}, ["Mars/Olympus", "IANA"]),
        ({"steps": [{"id": "a", "tool": "teleport"}]}, ["steps[0].tool", "teleport", "wait"]),
        ({"steps": [WAIT_STEP, WAIT_STEP]}, ["steps[1].id", "unique"]),
        (
            {
                "steps": [
                    {"id": "a", "tool": "render", "args": {"template": "{{ steps.b.output }}"}}
                ]
            },
            ["steps[0].args", "steps.b", "no step"],
        ),
        (
            {
                "steps": [
                    {"id": "a", "tool": "render", "args": {"template": "{{ steps.b.output }}"}},
                    {"id": "b", "tool": "wait", "args": {"seconds": 0}},
                ]
            },
            ["steps.b", "runs later"],
        ),
        ({"name": "   "}, ["name", "visible character"]),
        ({"colour": "blue"}, ["colour"]),
        ({"steps": [{"id": "a", "tool": "wait", "args": {"secs": 1}}]}, ["secs", "seconds"]),
        ({"name": "x" * 500}, ["name", "200"]),
        ({"trigger": {"every": "soon"}}, ["trigger.every", "soon"]),
        ({"trigger": {"hourly": True}}, ["trigger", "cron"]),
    ],
)
async def test_bad_input_is_explained_and_stores_nothing(
    client: Client[Any], overrides: dict[str, Any], expected: list[str]
) -> None:
    """Each mistake is answered with isError naming the field, the value and a fix."""
    message = await error_of(client, "create_task", task_args(**overrides))
    for fragment in expected:
        assert fragment in message, message
    listed = (await client.call_tool("list_tasks", {})).structured_content
    assert listed is not None
    assert listed["tasks"] == []


async def test_unknown_task_id_is_explained(client: Client[Any]) -> None:
    """Pausing a task that does not exist names the id and the next step."""
    message = await error_of(client, "pause_task", {"task_id": "tsk_missing"})
    assert "tsk_missing" in message
    assert "list_tasks" in message


async def test_resources_show_tasks(client: Client[Any]) -> None:
    """The tasks resources return the list and one task as JSON."""
    task_id = (await create(client))["task"]["id"]
    listing = await client.read_resource("taskloom://tasks")
    assert task_id in listing[0].text  # type: ignore[union-attr]
    one = await client.read_resource(f"taskloom://tasks/{task_id}")
    assert '"Morning digest"' in one[0].text  # type: ignore[union-attr]


async def test_a_task_survives_a_restart(settings: Any) -> None:
    """A task created through one server is there after a new server opens the same file."""
    from taskloom.app import build_server
    from taskloom.services import build_services

    async with Client(build_server(build_services(settings))) as first:
        task_id = (await create(first))["task"]["id"]
    async with Client(build_server(build_services(settings))) as second:
        answer = (await second.call_tool("get_task", {"task_id": task_id})).structured_content
    assert answer is not None
    assert answer["task"]["name"] == "Morning digest"


async def test_tool_names_are_the_product_contract(client: Client[Any]) -> None:
    """The server exposes exactly the tools the README names (their names are the contract)."""
    names = {t.name for t in await client.list_tools()}
    assert names == PRODUCT_TOOLS


async def test_update_task_clear_removes_the_trigger(client: Client[Any]) -> None:
    """Clearing the trigger makes a task manual-only, with no next fire."""
    task_id = (await create(client))["task"]["id"]
    result = await client.call_tool("update_task", {"task_id": task_id, "clear": ["trigger"]})
    answer = result.structured_content
    assert answer is not None
    assert answer["task"]["trigger"] is None
    assert answer["next_fires"] == []


async def test_task_tool_schemas_match_the_task_model(client: Client[Any]) -> None:
    """create_task and update_task take exactly the task model's fields, so they cannot drift."""
    from taskloom.domain.tasks import TaskPatch, TaskSpec

    tools = {t.name: t for t in await client.list_tools()}
    create_props = set(tools["create_task"].input_schema["properties"])
    update_props = set(tools["update_task"].input_schema["properties"])
    assert create_props == set(TaskSpec.model_fields)
    assert update_props == set(TaskPatch.model_fields) | {"task_id"}


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
async def test_racing_creates_of_one_name_make_one_task(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two create_task calls whose names differ only in case, both validated and at the store
    before either writes (the write is held until both arrived): the unique name key makes one
    task, the other call gets one clear error naming the field, the name and the task that won,
    and stores nothing."""
    services = build_services(make_settings(tmp_path, database_url=db_url, scheduler=False))
    arrived = 0
    both_arrived = asyncio.Event()
    add = services.store.add_task

    async def held(task: Task, **kw: Any) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both_arrived.set()
        async with asyncio.timeout(30):
            await both_arrived.wait()
        await add(task, **kw)

    monkeypatch.setattr(services.store, "add_task", held)
    async with Client(build_server(services)) as client:
        results = await asyncio.gather(
            client.call_tool("create_task", task_args(name="Ölpreis report"), raise_on_error=False),
            client.call_tool("create_task", task_args(name="ÖLPREIS REPORT"), raise_on_error=False),
        )
        monkeypatch.undo()
        made = [r.structured_content["task"] for r in results if not r.is_error]
        errors = [
            "\n".join(getattr(c, "text", "") for c in r.content) for r in results if r.is_error
        ]
        assert len(made) == 1
        assert len(errors) == 1
        assert "name: '" in errors[0]
        assert "already have a task with this name" in errors[0]
        assert made[0]["id"] in errors[0]
        listed = await client.call_tool("list_tasks", {})
        assert listed.structured_content is not None
        assert [t["id"] for t in listed.structured_content["tasks"]] == [made[0]["id"]]
