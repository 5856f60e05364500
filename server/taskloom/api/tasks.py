"""The task tools: create, read, change, remove, and look at schedules and step tools."""

import inspect
from datetime import datetime
from typing import Annotated, Any, Literal

from fastmcp import FastMCP
from fastmcp.tools import ToolResult
from pydantic import Field

from taskloom.answers import (
    Deleted,
    SchedulePreview,
    StepToolList,
    TaskAnswer,
    TaskList,
    brief_run,
)
from taskloom.api.bounded import FRAME, Place, Shape, Stored, call_text, select
from taskloom.api.common import (
    DESTRUCTIVE,
    IDEMPOTENT,
    READ,
    WRITE,
    Cursor,
    Limit,
    Offset,
    PageLength,
    TaskId,
    ValuePath,
    answer,
    owner_of,
    page_value,
    reply,
    reply_lists,
    reply_page,
    schema_of,
)
from taskloom.api.runs import runs_place
from taskloom.api.schemas import takes
from taskloom.domain.tasks import Task, TaskPatch, TaskSpec, Trigger
from taskloom.services import Services

TASK_SCHEMA = schema_of(TaskAnswer)
# get_task(path=...) answers only `value`: no field of the task answer is required.
PAGED_TASK_SCHEMA = {k: v for k, v in TASK_SCHEMA.items() if k != "required"}
TASK_ID = inspect.Parameter("task_id", inspect.Parameter.KEYWORD_ONLY, annotation=TaskId)


def register_task_tools(mcp: FastMCP, s: Services) -> None:
    @mcp.tool(annotations=WRITE, output_schema=TASK_SCHEMA)
    @takes(TaskSpec)
    async def create_task(**fields: Any) -> ToolResult:
        """Create a task: a chain of step tool calls run on a trigger (or only by run_task).

        Steps: [{"id": "fetch", "tool": "http_request", "args": {...}}], tools from
        list_step_tools. String args are Jinja2: "{{ steps.fetch.output.json.price }}" (one
        expression keeps its JSON type), {{ task.name }}, {{ run.fire_time }}, {{ event }},
        {{ secrets.NAME }}, {{ prev }} (the previous finished run: output, status; null at
        first). Or instruction+tools for one agent step.
        catchup, for fires missed while Taskloom was down: latest (default: run once for the
        latest), all (each, within catchup_window_s) or skip. overlap, for a fire while the last
        run still runs: skip (default), queue (run after it) or allow. notify.on: failure
        (default), always, never, or change: only when the output differs from the previous
        successful run's; sent to webhook_url, to Apprise URLs in urls (ntfy://topic,
        tgram://TOKEN/CHAT, mailtos://...) and/or the desktop. retry.attempts counts the
        first try. summary.enabled: an LLM line per successful run. end_at or max_runs finish
        the task; pause_on_failure pauses it after that many failures in a row.
        Try preview_schedule and dry_run first. Answers the task, next fire times and
        warnings (e.g. a secret or the API key not set up).
        """
        return task_reply(s, await answer(_create(s, fields)))

    @mcp.tool(annotations=READ, output_schema=schema_of(TaskList))
    async def list_tasks(
        status: Annotated[
            Literal["active", "paused", "finished"] | None, Field(description="filter")
        ] = None,
        query: Annotated[str | None, Field(description="case-insensitive name filter")] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> ToolResult:
        """Tasks with status, next fire, and last run's status and summary. Paged: pass
        next_cursor back as cursor. get_task shows one in full."""
        page = await answer(
            s.tasks.list_page(
                owner=owner_of(s), status=status, query=query, limit=limit, cursor=cursor
            )
        )
        return reply_page(s, page.model_dump(mode="json"), "tasks", tasks_place(page))

    @mcp.tool(annotations=READ, output_schema=PAGED_TASK_SCHEMA)
    async def get_task(
        task_id: TaskId, path: ValuePath = None, offset: Offset = 0, length: PageLength = None
    ) -> ToolResult:
        """One task in full: steps, trigger, policies, next fire times, latest runs. With path
        (from a truncation marker's `more`): one slice of that value."""
        if path is None:
            return task_reply(s, await answer(s.task_details(task_id, owner=owner_of(s))))
        task = await answer(s.tasks.get(task_id, owner=owner_of(s)))
        return await answer(_page_task(s, task, path, offset, length))

    @mcp.tool(annotations=IDEMPOTENT, output_schema=None)
    @takes(TaskPatch, TASK_ID)
    async def update_task(task_id: str, **fields: Any) -> ToolResult:
        """Change some fields of a task (as create_task takes them); omitted fields stay. Steps
        are replaced whole; `clear` removes optional fields. Answers like create_task."""
        # Every argument arrives (defaults filled in): the ones left at None (or `clear` left
        # empty) were not given.
        given = {k: v for k, v in fields.items() if v is not None and v != []}
        return task_reply(s, await answer(_update(s, task_id, given)))

    @mcp.tool(annotations=DESTRUCTIVE, output_schema=schema_of(Deleted))
    async def delete_task(
        task_id: TaskId,
        delete_runs: Annotated[bool, Field(description="also remove its runs")] = False,
    ) -> Deleted:
        """Delete a task for good (its runs stay unless delete_runs). To stop it for a while,
        use pause_task."""
        removed = await answer(s.tasks.delete(task_id, owner=owner_of(s), delete_runs=delete_runs))
        return Deleted(id=task_id, deleted=True, runs_deleted=removed)

    @mcp.tool(annotations=IDEMPOTENT, output_schema=None)
    async def pause_task(task_id: TaskId) -> ToolResult:
        """Stop a task from firing; its schedule and history are kept. Undo with resume_task.
        Answers like get_task."""
        return task_reply(s, await answer(s.tasks.set_enabled(task_id, False, owner=owner_of(s))))

    @mcp.tool(annotations=IDEMPOTENT, output_schema=None)
    async def resume_task(task_id: TaskId) -> ToolResult:
        """Let a paused task fire again from its next scheduled time (fires missed while paused
        are not run). Answers like get_task."""
        return task_reply(s, await answer(s.tasks.set_enabled(task_id, True, owner=owner_of(s))))


async def _create(s: Services, given: dict[str, Any]) -> TaskAnswer:
    return await s.tasks.create(TaskSpec.model_validate(given), owner=owner_of(s))


async def _update(s: Services, task_id: str, given: dict[str, Any]) -> TaskAnswer:
    return await s.tasks.update(task_id, TaskPatch.model_validate(given), owner=owner_of(s))


# -- bounded task answers ------------------------------------------------------------------------


def task_view(ans: TaskAnswer) -> dict[str, Any]:
    """The task whole (nulls included: they say what is unset), the rest without nulls."""
    data = ans.model_dump(mode="json", exclude_none=True, exclude={"task", "recent_runs"})
    data["task"] = ans.task.model_dump(mode="json")
    if not ans.warnings:
        data.pop("warnings", None)
    if ans.recent_runs is not None:
        data["recent_runs"] = [brief_run(run) for run in ans.recent_runs]
    return data


def task_place(task_id: str) -> Place:
    return Shape(Stored("get_task", (("task_id", task_id),)).child)


def task_place_of(ans: TaskAnswer) -> Place:
    """Where a task answer's values are stored: the task's, and its recent runs'."""
    inner = {"task": task_place(ans.task.id), "recent_runs": runs_place(ans.recent_runs or [])}
    return Shape(lambda key: inner.get(str(key), FRAME))


def task_reply(s: Services, ans: TaskAnswer) -> ToolResult:
    return reply(s, task_view(ans), task_place_of(ans))


def tasks_place(page: TaskList) -> Place:
    tasks = page.tasks  # each task's place is made when an answer is cut (rarely)
    listed = Shape(lambda index: task_place(tasks[index].id) if isinstance(index, int) else FRAME)
    return Shape(lambda key: listed if key == "tasks" else FRAME)


async def _page_task(
    s: Services, task: Task, path: str, offset: int, length: int | None
) -> ToolResult:
    value = select(task.model_dump(mode="json"), path)

    def next_call(at: int) -> str:
        return call_text("get_task", ("task_id", task.id), ("path", path), ("offset", at))

    return reply(s, {"value": page_value(s, value, offset, length, next_call)})


def register_schedule_tools(mcp: FastMCP, s: Services) -> None:
    @mcp.tool(annotations=READ, output_schema=schema_of(SchedulePreview))
    async def preview_schedule(
        trigger: Annotated[Trigger, Field(description="a trigger as create_task takes it")],
        count: Annotated[int, Field(ge=1, le=100)] = 5,
        after: Annotated[
            datetime | None,
            Field(description="look from this instant (ISO 8601); default now"),
        ] = None,
    ) -> SchedulePreview:
        """A trigger's next fire times in its timezone and UTC, creating nothing. Check a cron
        or timezone before create_task; `after` looks at any date (e.g. a DST change)."""
        return await answer(_preview(s, trigger, count, after))

    @mcp.tool(annotations=READ, output_schema=schema_of(StepToolList))
    async def list_step_tools(
        include_upstream: Annotated[
            bool, Field(description="include tools of the upstream MCP servers")
        ] = True,
    ) -> ToolResult:
        """The step tools a task's steps can call, with their input schemas. Upstream MCP
        servers' tools are named '<server>/<tool>'."""
        tools = await answer(s.catalog.list(include_upstream=include_upstream))
        return reply_lists(s, StepToolList(tools=tools, count=len(tools)).model_dump(mode="json"))


async def _preview(
    s: Services, trigger: Trigger, count: int, after: datetime | None
) -> SchedulePreview:
    return s.tasks.preview(trigger, count, after)
