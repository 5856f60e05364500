"""The task tools: create, read, change, remove, and look at schedules and step tools."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastmcp import FastMCP
from pydantic import Field

from taskloom.answers import (
    Deleted,
    SchedulePreview,
    StepToolList,
    TaskAnswer,
    TaskList,
)
from taskloom.api.common import (
    DESTRUCTIVE,
    IDEMPOTENT,
    READ,
    WRITE,
    Cursor,
    Limit,
    TaskId,
    answer,
    owner_of,
)
from taskloom.services import Services
from taskloom.tasks.model import (
    CatchupPolicy,
    ClearableField,
    Count,
    NotifyPolicy,
    OverlapPolicy,
    RetryPolicy,
    Seconds,
    Step,
    SummaryPolicy,
    TaskPatch,
    TaskSpec,
    Trigger,
)


def register_task_tools(mcp: FastMCP, s: Services) -> None:
    @mcp.tool(annotations=WRITE)
    async def create_task(
        name: Annotated[str, Field(description="short human name, e.g. 'Morning BTC digest'")],
        steps: Annotated[list[Step], Field(description="the chain, run in order")],
        trigger: Annotated[
            Trigger | None,
            Field(description="when to run; omit for manual-only (run_task)"),
        ] = None,
        description: str = "",
        enabled: bool = True,
        catchup: CatchupPolicy = "latest",
        catchup_window_s: Annotated[Count | None, Field(ge=1)] = None,
        overlap: OverlapPolicy = "skip",
        retry: RetryPolicy | None = None,
        timeout_s: Annotated[Seconds | None, Field(gt=0, le=86400)] = None,
        notify: NotifyPolicy | None = None,
        summary: SummaryPolicy | None = None,
        end_at: datetime | None = None,
        max_runs: Annotated[Count | None, Field(ge=1)] = None,
        pause_on_failure: Annotated[Count | None, Field(ge=1)] = None,
    ) -> TaskAnswer:
        """Create a scheduled (or manual) task: a chain of step tool calls.

        Each step is {"id", "tool", "args"}; `tool` is a name from list_step_tools; string args are
        Jinja2 templates that can use earlier steps' outputs, e.g.
        "{{ steps.fetch.output.json.price }}" (a value that is one expression keeps its JSON type),
        plus {{ task.name }}, {{ run.fire_time }}, {{ secrets.NAME }}, {{ event }} and {{ prev }}
        (the previous finished run's output/status, null at first).
        Triggers: {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"}, {"every": "30m"},
        {"at": "2026-12-01T09:00:00+01:00"}, {"event": "deploy_finished"}; omit for manual only.
        Check a schedule first with preview_schedule; test a chain with dry_run. Returns the task
        and its next fire times in its timezone, with warnings of what will fail until the
        operator sets it up (a secret, the API key, a refused host).
        """
        spec = dict(
            name=name, steps=steps, trigger=trigger, description=description, enabled=enabled,
            catchup=catchup, catchup_window_s=catchup_window_s, overlap=overlap, retry=retry,
            timeout_s=timeout_s, notify=notify, summary=summary, end_at=end_at,
            max_runs=max_runs, pause_on_failure=pause_on_failure,
        )  # fmt: skip
        given = {k: v for k, v in spec.items() if v is not None}
        return await answer(_create(s, given))

    @mcp.tool(annotations=READ)
    async def list_tasks(
        status: Annotated[
            Literal["active", "paused", "finished"] | None, Field(description="filter")
        ] = None,
        query: Annotated[str | None, Field(description="case-insensitive name filter")] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> TaskList:
        """List tasks with their status, next fire time, and last run's status and summary.

        Paged: pass next_cursor back as cursor to get more. Use get_task for one task's details.
        """
        return await answer(
            s.tasks.list_page(
                owner=owner_of(s), status=status, query=query, limit=limit, cursor=cursor
            )
        )

    @mcp.tool(annotations=READ)
    async def get_task(task_id: TaskId) -> TaskAnswer:
        """One task in full: steps, trigger, policies, next fire times and its latest runs."""
        return await answer(s.task_details(task_id, owner=owner_of(s)))

    @mcp.tool(annotations=IDEMPOTENT)
    async def update_task(
        task_id: TaskId,
        name: str | None = None,
        description: str | None = None,
        steps: list[Step] | None = None,
        trigger: Trigger | None = None,
        enabled: bool | None = None,
        catchup: CatchupPolicy | None = None,
        catchup_window_s: Annotated[Count | None, Field(ge=1)] = None,
        overlap: OverlapPolicy | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: Annotated[Seconds | None, Field(gt=0, le=86400)] = None,
        notify: NotifyPolicy | None = None,
        summary: SummaryPolicy | None = None,
        end_at: datetime | None = None,
        max_runs: Annotated[Count | None, Field(ge=1)] = None,
        pause_on_failure: Annotated[Count | None, Field(ge=1)] = None,
        clear: Annotated[
            list[ClearableField] | None,
            Field(description="optional fields to remove, e.g. ['trigger'] for manual-only"),
        ] = None,
    ) -> TaskAnswer:
        """Change some fields of a task; fields you omit stay as they are. Steps are replaced as
        a whole; `clear` removes optional fields. The schedule is recomputed and the answer shows
        the next fire times."""
        patch = dict(
            name=name, description=description, steps=steps, trigger=trigger, enabled=enabled,
            catchup=catchup, catchup_window_s=catchup_window_s, overlap=overlap, retry=retry,
            timeout_s=timeout_s, notify=notify, summary=summary, end_at=end_at,
            max_runs=max_runs, pause_on_failure=pause_on_failure, clear=clear,
        )  # fmt: skip
        given = {k: v for k, v in patch.items() if v is not None}
        return await answer(_update(s, task_id, given))

    @mcp.tool(annotations=DESTRUCTIVE)
    async def delete_task(
        task_id: TaskId,
        delete_runs: Annotated[
            bool, Field(description="also remove its run history (default: keep it)")
        ] = False,
    ) -> Deleted:
        """Delete a task for good. Its run history is kept unless delete_runs is true.
        To stop it temporarily, use pause_task instead."""
        removed = await answer(s.tasks.delete(task_id, owner=owner_of(s), delete_runs=delete_runs))
        return Deleted(id=task_id, deleted=True, runs_deleted=removed)

    @mcp.tool(annotations=IDEMPOTENT)
    async def pause_task(task_id: TaskId) -> TaskAnswer:
        """Stop a task from firing; its schedule and history are kept. Undo with resume_task."""
        return await answer(s.tasks.set_enabled(task_id, False, owner=owner_of(s)))

    @mcp.tool(annotations=IDEMPOTENT)
    async def resume_task(task_id: TaskId) -> TaskAnswer:
        """Let a paused task fire again from its next scheduled time (missed fires while paused
        are not run)."""
        return await answer(s.tasks.set_enabled(task_id, True, owner=owner_of(s)))


async def _create(s: Services, given: dict[str, Any]) -> TaskAnswer:
    return await s.tasks.create(TaskSpec.model_validate(given), owner=owner_of(s))


async def _update(s: Services, task_id: str, given: dict[str, Any]) -> TaskAnswer:
    return await s.tasks.update(task_id, TaskPatch.model_validate(given), owner=owner_of(s))


def register_schedule_tools(mcp: FastMCP, s: Services) -> None:
    @mcp.tool(annotations=READ)
    async def preview_schedule(
        trigger: Annotated[Trigger, Field(description="a trigger as create_task takes it")],
        count: Annotated[int, Field(ge=1, le=100)] = 5,
        after: Annotated[
            datetime | None,
            Field(description="look from this instant (ISO 8601); default now"),
        ] = None,
    ) -> SchedulePreview:
        """Show a trigger's next fire times in its timezone and in UTC, without creating anything.

        Use it to check a cron expression or timezone before create_task; pass `after` to look
        at any date (e.g. a DST change). Invalid triggers are explained."""
        return await answer(_preview(s, trigger, count, after))

    @mcp.tool(annotations=READ)
    async def list_step_tools(
        include_upstream: Annotated[
            bool, Field(description="include tools of the upstream MCP servers")
        ] = True,
    ) -> StepToolList:
        """List the step tools a task's steps can call, with their input schemas. Built-in tools
        have plain names; tools of upstream MCP servers are named '<server>/<tool>'."""
        tools = await answer(s.catalog.list(include_upstream=include_upstream))
        return StepToolList(tools=tools, count=len(tools))


async def _preview(
    s: Services, trigger: Trigger, count: int, after: datetime | None
) -> SchedulePreview:
    return s.tasks.preview(trigger, count, after)
