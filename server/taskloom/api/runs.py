"""The run tools: run now, dry-run, history, cancel, events, scheduler status."""

import asyncio
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastmcp import Context, FastMCP
from fastmcp.tools import ToolResult
from fastmcp.utilities.tasks import TaskConfig
from mcp_types import LoggingLevel
from pydantic import Field

from taskloom.answers import (
    EventAnswer,
    RunAnswer,
    RunList,
    SchedulerStatus,
    brief_run,
    run_view,
)
from taskloom.api.bounded import FRAME, Place, Shape, Stored, call_text, select
from taskloom.api.common import (
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
    owner,
    owner_of,
    page_value,
    reply,
    reply_lists,
    reply_page,
    schema_of,
)
from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.tasks import EVENT_NAME_PATTERN, Step, Task
from taskloom.errors import InvalidInput, NotFound
from taskloom.services import Services

if TYPE_CHECKING:
    from taskloom.runs.service import Trial

RunId = Annotated[str, Field(description="run_... (task_history)")]
RUN_SCHEMA = schema_of(RunAnswer)
# Dry runs are not stored; the last few are kept in memory so get_run can page their values.
KEPT_DRY_RUNS = 8


def register_run_tools(mcp: FastMCP, s: Services) -> None:
    # With TASKLOOM_MCP_TASKS, clients that declare the MCP tasks extension get a task handle.
    as_task = TaskConfig(mode="optional") if s.settings.mcp_tasks else None

    dry_runs: OrderedDict[str, tuple[str, Run]] = OrderedDict()

    @mcp.tool(annotations={**WRITE, "openWorldHint": True}, task=as_task, output_schema=None)
    async def run_task(
        task_id: TaskId,
        ctx: Context,
        wait: Annotated[
            bool, Field(description="wait for the result (default) or return the run id at once")
        ] = True,
        wait_timeout_s: Annotated[
            float, Field(gt=0, le=3600, description="stop waiting after this; the run goes on")
        ] = 300,
    ) -> ToolResult:
        """Run a task now, outside its schedule. By default waits and reports progress per step,
        then answers like get_run; with wait=false answers the run id at once (poll get_run).
        The run keeps going if you stop waiting."""
        return run_reply(s, await answer(_run_now(s, ctx, task_id, wait, wait_timeout_s)))

    @mcp.tool(annotations=READ, output_schema=RUN_SCHEMA)
    async def get_run(
        run_id: RunId,
        step: Annotated[str | None, Field(description="a step's id")] = None,
        path: ValuePath = None,
        offset: Offset = 0,
        length: PageLength = None,
        view: Annotated[
            Literal["compact", "full"],
            Field(description="full: with leases and nulls"),
        ] = "compact",
    ) -> ToolResult:
        """One run: status, timing, output, and each step's resolved args (secrets redacted),
        output and error. A long value comes as {"truncated": true, "head", "more"}: call what
        `more` says to read on, until `more` is null (offset/length count characters of the
        value's text, compact JSON for non-strings)."""
        run = await answer(_find_run(s, dry_runs, run_id))
        if step is None and path is None:
            return reply(s, {"run": run_view(run, full=view == "full")}, answer_place(run))
        return await answer(_page_run(s, run, step, path, offset, length))

    @mcp.tool(annotations=IDEMPOTENT, output_schema=None)
    async def cancel_run(run_id: RunId) -> ToolResult:
        """Cancel a queued or running run; its finished steps are kept, the rest marked
        cancelled. Answers like get_run."""
        run = await answer(s.runs.cancel(run_id, owner=owner_of(s)))
        return run_reply(s, RunAnswer(run=run, message=f"Run is now {run.status.value}."))

    @mcp.tool(annotations=READ, output_schema=schema_of(RunList))
    async def task_history(
        task_id: Annotated[str | None, Field(description="one task's runs; omit for all")] = None,
        status: Annotated[
            list[RunStatus] | None, Field(description="only runs with these statuses")
        ] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> ToolResult:
        """Runs, newest first, without steps (get_run has them). Paged: pass next_cursor back
        as cursor."""
        page = await answer(
            s.runs.history(
                owner=owner_of(s), task_id=task_id, statuses=status or [], limit=limit,
                cursor=cursor,
            )
        )  # fmt: skip
        data = {"runs": [brief_run(run) for run in page.items], "next_cursor": page.next_cursor}
        listed = runs_place(page.items)
        return reply_page(s, data, "runs", Shape(lambda key: listed if key == "runs" else FRAME))

    @mcp.tool(annotations={**WRITE, "openWorldHint": True}, output_schema=None)
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
    ) -> ToolResult:
        """Run a chain once without saving it, to test it before create_task (requests and
        notifications are real). `event` and `fire_time` test templates that use them; `task_id`
        shows that task's last run as {{ prev }}. Answers like get_run (which pages the last dry
        runs' values), with warnings of what would fail when scheduled."""
        trial = await answer(_trial(s, ctx, event, fire_time, task_id))
        result = await answer(s.runs.dry_run(steps, trial))
        _keep_dry_run(dry_runs, trial.owner, result.run)
        return run_reply(s, result)

    @mcp.tool(annotations={**WRITE, "openWorldHint": True}, output_schema=schema_of(EventAnswer))
    async def emit_event(
        name: Annotated[str, Field(pattern=EVENT_NAME_PATTERN, description="the event's name")],
        payload: Annotated[
            dict[str, Any] | None, Field(description="data the tasks see as {{ event }}")
        ] = None,
    ) -> ToolResult:
        """Fire every active task whose trigger is {"event": name}. Returns the runs started
        (poll get_run for results). Over HTTP the same works as POST /events/{name}."""
        runs = await answer(s.runs.emit(name, payload or {}, owner=owner_of(s)))
        data = {
            "event": name, "runs": [brief_run(run) for run in runs],
            "message": event_note(name, runs),
        }  # fmt: skip
        return reply(s, data, Shape(lambda key: runs_place(runs) if key == "runs" else FRAME))

    @mcp.tool(annotations=READ, output_schema=schema_of(SchedulerStatus))
    async def scheduler_status() -> ToolResult:
        """Scheduler health for your tasks: runs in flight with their leases, queue depth, next
        fires, per-task success rate and mean duration (operators also see the live Taskloom
        processes). For "are my tasks running?"."""
        operator = s.runs.access.is_operator(owner())
        status = await answer(s.status(owner=owner_of(s), operator=operator))
        return reply_lists(s, status.model_dump(mode="json"))


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
) -> "Trial":
    from taskloom.runs.service import Trial  # the run machinery: imported at its first use

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
    def watch(task: Task, run: Run) -> Any:
        return _progress(ctx, run_id=run.id, task_id=task.id) if wait else None

    started = await s.runs.start_manual(task_id, owner=owner_of(s), watch=watch)
    run, job = started.run, started.job
    if job is None:
        return RunAnswer(run=run, message="Queued behind the run in progress (overlap 'queue').")
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


# -- bounded run answers -------------------------------------------------------------------------


def run_reply(s: Services, ans: RunAnswer) -> ToolResult:
    data: dict[str, Any] = {"message": ans.message} if ans.message else {}
    if ans.run is not None:
        data["run"] = run_view(ans.run)
    if ans.warnings:
        data["warnings"] = [w.model_dump(mode="json") for w in ans.warnings]
    return reply(s, data, answer_place(ans.run))


def run_place(run: Run) -> Place:
    """Where a run view's values are stored: run fields and each step's, paged by get_run."""
    ids = (("run_id", run.id),)
    steps = [Stored("get_run", (*ids, ("step", step.id))) for step in run.steps]

    def step_place(index: Any) -> Place:
        return Shape(steps[index].child) if isinstance(index, int) else FRAME

    return Shape(
        lambda key: Shape(step_place) if key == "steps" else Stored("get_run", ids).child(key)
    )


def answer_place(run: Run | None) -> Place:
    inner = run_place(run) if run is not None else FRAME
    return Shape(lambda key: inner if key == "run" else FRAME)


def runs_place(runs: list[Run]) -> Place:
    """Each run's place is made when an answer is cut (rarely), not for every run listed."""
    return Shape(lambda index: run_place(runs[index]) if isinstance(index, int) else FRAME)


def _keep_dry_run(kept: "OrderedDict[str, tuple[str, Run]]", owner: str, run: Run | None) -> None:
    """Dry runs are not stored: the last few stay in memory so get_run can page their values."""
    if run is not None:
        kept[run.id] = (owner, run)
    while len(kept) > KEPT_DRY_RUNS:
        kept.popitem(last=False)


async def _find_run(s: Services, dry_runs: "OrderedDict[str, tuple[str, Run]]", run_id: str) -> Run:
    try:
        return await s.runs.get(run_id, owner=owner_of(s))
    except NotFound:
        owner, run = dry_runs.get(run_id, (None, None))
        if run is None or owner != owner_of(s):
            raise
        return run


async def _page_run(
    s: Services, run: Run, step: str | None, path: str | None, offset: int, length: int | None
) -> ToolResult:
    """One slice of a stored value of the run (or of one of its steps)."""
    record: dict[str, Any] = run.model_dump(mode="json")
    if step is not None:
        found = next((r for r in record["steps"] if r["id"] == step), None)
        if found is None:
            ids = ", ".join(repr(r["id"]) for r in record["steps"]) or "none"
            raise InvalidInput("step", step, f"This run has no such step; its steps: {ids}.")
        record = found
    value = select(record, path)
    given = [("run_id", run.id), ("step", step), ("path", path)]
    args = [(name, v) for name, v in given if v is not None]

    def next_call(at: int) -> str:
        return call_text("get_run", *args, ("offset", at))

    return reply(s, {"value": page_value(s, value, offset, length, next_call)})
