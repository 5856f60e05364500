"""The run tools: run now, dry-run, history, cancel, events, scheduler status."""

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastmcp import Context, FastMCP
from fastmcp.utilities.tasks import TaskConfig
from mcp_types import LoggingLevel
from pydantic import Field

from taskloom.answers import (
    EventAnswer,
    RunAnswer,
    RunList,
    SchedulerStatus,
)
from taskloom.api.common import (
    IDEMPOTENT,
    READ,
    WRITE,
    Cursor,
    Limit,
    TaskId,
    answer,
    owner_of,
)
from taskloom.runs.model import Run, RunStatus, RunTrigger
from taskloom.runs.service import Trial, check_runnable
from taskloom.services import Services
from taskloom.tasks.model import (
    EVENT_NAME_PATTERN,
    Step,
)

RunId = Annotated[str, Field(description="the run's id (run_...), from run_task or task_history")]


def register_run_tools(mcp: FastMCP, s: Services) -> None:
    # With TASKLOOM_MCP_TASKS, clients that declare the MCP tasks extension get a task handle.
    as_task = TaskConfig(mode="optional") if s.settings.mcp_tasks else None

    @mcp.tool(annotations={**WRITE, "openWorldHint": True}, task=as_task)
    async def run_task(
        task_id: TaskId,
        ctx: Context,
        wait: Annotated[
            bool, Field(description="wait for the result (default) or return the run id at once")
        ] = True,
        wait_timeout_s: Annotated[
            float, Field(gt=0, le=3600, description="stop waiting after this; the run goes on")
        ] = 300,
    ) -> RunAnswer:
        """Run a task now, outside its schedule. By default waits and reports progress per step,
        then returns the run with every step's result; with wait=false returns the run id at once
        (poll get_run). The run keeps going even if you stop waiting."""
        return await answer(_run_now(s, ctx, task_id, wait, wait_timeout_s))

    @mcp.tool(annotations=READ)
    async def get_run(run_id: RunId) -> RunAnswer:
        """One run with each step's resolved arguments (secrets redacted), output, status,
        timing and error."""
        run = await answer(s.runs.get(run_id, owner=owner_of(s)))
        return RunAnswer(run=run)

    @mcp.tool(annotations=IDEMPOTENT)
    async def cancel_run(run_id: RunId) -> RunAnswer:
        """Cancel a queued or running run; its finished steps are kept and the rest marked
        cancelled."""
        run = await answer(s.runs.cancel(run_id, owner=owner_of(s)))
        return RunAnswer(run=run, message=f"Run is now {run.status.value}.")

    @mcp.tool(annotations=READ)
    async def task_history(
        task_id: Annotated[str | None, Field(description="one task's runs; omit for all")] = None,
        status: Annotated[
            list[RunStatus] | None, Field(description="only runs with these statuses")
        ] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> RunList:
        """Past and current runs, newest first, without step details (use get_run for those).
        Paged: pass next_cursor back as cursor."""
        page = await answer(
            s.runs.history(
                owner=owner_of(s), task_id=task_id, statuses=status or [], limit=limit,
                cursor=cursor,
            )
        )  # fmt: skip
        return RunList(runs=page.items, next_cursor=page.next_cursor)

    @mcp.tool(annotations={**WRITE, "openWorldHint": True})
    async def dry_run(
        steps: Annotated[list[Step], Field(description="a chain, as create_task takes it")],
        ctx: Context,
        event: Annotated[
            dict[str, Any] | None,
            Field(description="run as if this event payload fired it: templates see {{ event }}"),
        ] = None,
        fire_time: Annotated[
            datetime | None,
            Field(description="run as if scheduled at this instant: {{ run.fire_time }}"),
        ] = None,
        task_id: Annotated[
            str | None,
            Field(description="a stored task whose last finished run templates see as prev"),
        ] = None,
    ) -> RunAnswer:
        """Execute a chain once without saving a task, to test it before create_task. Real
        requests are made (and notifications sent). Pass `event` and/or `fire_time` to test
        templates that use them, and `task_id` to see that task's last run as {{ prev }}.
        Returns every step's result, and warnings of what would fail when scheduled."""
        trial = await answer(_trial(s, ctx, event, fire_time, task_id))
        return await answer(s.runs.dry_run(steps, trial))

    @mcp.tool(annotations={**WRITE, "openWorldHint": True})
    async def emit_event(
        name: Annotated[str, Field(pattern=EVENT_NAME_PATTERN, description="the event's name")],
        payload: Annotated[
            dict[str, Any] | None, Field(description="data the tasks see as {{ event }}")
        ] = None,
    ) -> EventAnswer:
        """Fire every active task whose trigger is {"event": name}. Returns the runs started
        (poll get_run for results). Over HTTP the same works as POST /events/{name}."""
        runs = await answer(s.runs.emit(name, payload or {}, owner=owner_of(s)))
        return EventAnswer(event=name, runs=runs, message=event_note(name, runs))

    @mcp.tool(annotations=READ)
    async def scheduler_status() -> SchedulerStatus:
        """Health of the scheduler: Taskloom processes alive on this database, runs in flight
        and their leases, queue depth, the next fires, and per-task success rate and mean
        duration. Use it when the user asks whether their tasks are running."""
        return await answer(s.status(owner=owner_of(s)))


def _progress(ctx: Context, **ids: str) -> Any:
    """Each step's start and the run's end, as a progress notification and as a log message
    (notifications/message), which the client filters by the level it asked for (logging/setLevel,
    or the request's log level in the 2026-07-28 era). A client that went away loses neither."""

    async def report(done: int, total: int, message: str) -> None:
        failed = done == total and not message.endswith("succeeded")
        level: LoggingLevel = "warning" if failed else "info"
        extra = {**ids, "done": done, "total": total}
        try:
            await ctx.report_progress(done, total, message)
            await ctx.log(message, level=level, logger_name="taskloom.run", extra=extra)
        except Exception:
            return

    return report


async def _trial(
    s: Services,
    ctx: Context,
    event: dict[str, Any] | None,
    fire_time: datetime | None,
    task_id: str | None,
) -> Trial:
    owner = owner_of(s)
    task = await s.tasks.get(task_id, owner=owner) if task_id else None
    if fire_time is not None and fire_time.tzinfo is None:  # naive: the task's wall clock
        fire_time = fire_time.replace(
            tzinfo=ZoneInfo(task.timezone if task else s.settings.timezone)
        )
    at = fire_time.astimezone(UTC) if fire_time else None
    return Trial(owner=owner, event=event, fire_time=at, task=task, progress=_progress(ctx))


async def _run_now(
    s: Services, ctx: Context, task_id: str, wait: bool, wait_timeout_s: float
) -> RunAnswer:
    task = await s.tasks.get(task_id, owner=owner_of(s))
    check_runnable(task)
    run = s.runs.new_run(task, RunTrigger.MANUAL)
    await s.store.start_run(run, owner=task.owner)
    progress = _progress(ctx, run_id=run.id, task_id=task.id) if wait else None
    job = s.runs.launch(task, run, progress=progress)
    if not wait:
        return RunAnswer(run=run, message="Started; call get_run with this id for the result.")
    try:
        done, _ = await asyncio.wait([job], timeout=wait_timeout_s)
    except asyncio.CancelledError:
        if ctx.is_background_task:  # tasks/cancel on the handle cancels the run itself
            await asyncio.shield(s.runs.cancel(run.id, owner=None))
        raise
    if not done:
        current = await s.runs.get(run.id, owner=None)
        return RunAnswer(run=current, message="Still running; call get_run later.")
    return RunAnswer(run=job.result(), message=f"Run {job.result().status.value}.")


def event_note(name: str, runs: list[Run]) -> str:
    if runs:
        return f"{len(runs)} task(s) listen to {name!r}."
    return f"No active task listens to {name!r}; create one with trigger {{'event': {name!r}}}."
