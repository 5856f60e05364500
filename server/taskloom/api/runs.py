"""The run tools: run now, dry-run, history, cancel, events, scheduler status."""

import asyncio
from typing import Annotated, Any

from fastmcp import Context, FastMCP
from fastmcp.utilities.tasks import TaskConfig
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
    owner,
    owner_of,
)
from taskloom.runs.model import Run, RunStatus
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
    ) -> RunAnswer:
        """Execute a chain once without saving a task, to test it before create_task. Real
        requests are made (and notifications sent). Returns every step's result."""
        progress = _progress(ctx)
        run = await answer(s.runs.dry_run(steps, owner=owner_of(s), progress=progress))
        return RunAnswer(run=run, message=f"Dry run {run.status.value}; nothing was saved.")

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
        """Health of the scheduler for your tasks: runs in flight and their leases, queue depth,
        the next fires, and per-task success rate and mean duration; operators also see the
        Taskloom processes alive on this database. Use it when the user asks whether their
        tasks are running."""
        operator = s.runs.access.is_operator(owner())
        return await answer(s.status(owner=owner_of(s), operator=operator))


def _progress(ctx: Context) -> Any:
    async def report(done: int, total: int, message: str) -> None:
        try:
            await ctx.report_progress(done, total, message)
        except Exception:
            return

    return report


async def _run_now(
    s: Services, ctx: Context, task_id: str, wait: bool, wait_timeout_s: float
) -> RunAnswer:
    task, run = await s.runs.admit_manual(task_id, owner=owner_of(s))
    if run.status == RunStatus.QUEUED:
        return RunAnswer(run=run, message="Queued behind the run in progress (overlap 'queue').")
    job = s.runs.launch(task, run, progress=_progress(ctx) if wait else None)
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
