"""The MCP surface: tools, resources and prompts. Thin: one service call each.

Domain errors become `ToolError` in `_answer` and nowhere else; anything unexpected is masked by
FastMCP (`mask_error_details=True`) and logged.
"""

import asyncio
import json
import re
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.exceptions import ValidationError as ArgumentError
from fastmcp.server.auth import AuthProvider
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.middleware import Middleware, MiddlewareContext
from fastmcp.utilities.tasks import TaskConfig
from pydantic import Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taskloom.answers import (
    Deleted,
    EventAnswer,
    RunAnswer,
    RunList,
    SchedulePreview,
    SchedulerStatus,
    StepToolList,
    TaskAnswer,
    TaskList,
)
from taskloom.errors import InvalidInput, InvalidInputs, TaskloomError
from taskloom.runs.model import Run, RunStatus, RunTrigger
from taskloom.runs.service import check_runnable
from taskloom.services import Services
from taskloom.tasks.model import (
    EVENT_NAME_PATTERN,
    CatchupPolicy,
    ClearableField,
    NotifyPolicy,
    OverlapPolicy,
    RetryPolicy,
    Step,
    SummaryPolicy,
    TaskPatch,
    TaskSpec,
    Trigger,
)

T = TypeVar("T")

READ = {
    "readOnlyHint": True,
    "destructiveHint": False,
    "idempotentHint": True,
    "openWorldHint": False,
}
WRITE = {
    "readOnlyHint": False,
    "destructiveHint": False,
    "idempotentHint": False,
    "openWorldHint": False,
}
IDEMPOTENT = {**WRITE, "idempotentHint": True}
DESTRUCTIVE = {**WRITE, "destructiveHint": True, "idempotentHint": True}

TaskId = Annotated[
    str, Field(description="the task's id (tsk_...), from create_task or list_tasks")
]
Limit = Annotated[int, Field(ge=1, le=200, description="page size")]
Cursor = Annotated[
    str | None, Field(description="next_cursor from the previous page; omit at first")
]


def format_validation_error(exc: ValidationError, prefix: str = "") -> InvalidInputs:
    problems = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = str(err["msg"]).removeprefix("Value error, ")
        problems.append(InvalidInput(f"{prefix}{path}" or "arguments", err.get("input"), msg + "."))
    return InvalidInputs(problems)


async def _answer(call: Awaitable[T]) -> T:
    try:
        return await call
    except TaskloomError as exc:
        raise ToolError(exc.message) from exc
    except ValidationError as exc:
        raise ToolError(format_validation_error(exc).message) from exc


class ArgumentErrors(Middleware):
    """Rewrites FastMCP's argument validation errors in our voice: field, value, fix."""

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        try:
            return await call_next(context)
        except ArgumentError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                raise ToolError(format_validation_error(cause).message) from exc
            raise


def owner() -> str | None:
    """The authenticated principal over HTTP with auth; None means the local single user."""
    token = get_access_token()
    if token is None:
        return None
    return str(token.claims.get("sub") or token.client_id)


def register(mcp: FastMCP, services: Services) -> None:
    _register_task_tools(mcp, services)
    _register_schedule_tools(mcp, services)
    _register_run_tools(mcp, services)
    _register_resources(mcp, services)
    _register_prompts(mcp, services)


def _owner(services: Services) -> str:
    return owner() or services.settings.owner


def _register_task_tools(mcp: FastMCP, s: Services) -> None:
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
        catchup_window_s: Annotated[int | None, Field(ge=1)] = None,
        overlap: OverlapPolicy = "skip",
        retry: RetryPolicy | None = None,
        timeout_s: Annotated[float | None, Field(gt=0, le=86400)] = None,
        notify: NotifyPolicy | None = None,
        summary: SummaryPolicy | None = None,
        end_at: datetime | None = None,
        max_runs: Annotated[int | None, Field(ge=1)] = None,
        pause_on_failure: Annotated[int | None, Field(ge=1)] = None,
    ) -> TaskAnswer:
        """Create a scheduled (or manual) task: a chain of step tool calls.

        Each step is {"id", "tool", "args"}; `tool` is a name from list_step_tools; string args are
        Jinja2 templates that can use earlier steps' outputs, e.g.
        "{{ steps.fetch.output.json.price }}" (a value that is one expression keeps its JSON type),
        plus {{ task.name }}, {{ run.fire_time }}, {{ secrets.NAME }}, {{ event }}.
        Triggers: {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"}, {"every": "30m"},
        {"at": "2026-12-01T09:00:00+01:00"}, {"event": "deploy_finished"}; omit for manual only.
        Check a schedule first with preview_schedule; test a chain with dry_run. Returns the task
        and its next fire times in its timezone.
        """
        spec = dict(
            name=name, steps=steps, trigger=trigger, description=description, enabled=enabled,
            catchup=catchup, catchup_window_s=catchup_window_s, overlap=overlap, retry=retry,
            timeout_s=timeout_s, notify=notify, summary=summary, end_at=end_at,
            max_runs=max_runs, pause_on_failure=pause_on_failure,
        )  # fmt: skip
        given = {k: v for k, v in spec.items() if v is not None}
        return await _answer(_create(s, given))

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
        return await _answer(
            s.tasks.list_page(
                owner=_owner(s), status=status, query=query, limit=limit, cursor=cursor
            )
        )

    @mcp.tool(annotations=READ)
    async def get_task(task_id: TaskId) -> TaskAnswer:
        """One task in full: steps, trigger, policies, next fire times and its latest runs."""
        return await _answer(s.task_details(task_id, owner=_owner(s)))

    @mcp.tool(annotations=IDEMPOTENT)
    async def update_task(
        task_id: TaskId,
        name: str | None = None,
        description: str | None = None,
        steps: list[Step] | None = None,
        trigger: Trigger | None = None,
        enabled: bool | None = None,
        catchup: CatchupPolicy | None = None,
        catchup_window_s: Annotated[int | None, Field(ge=1)] = None,
        overlap: OverlapPolicy | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: Annotated[float | None, Field(gt=0, le=86400)] = None,
        notify: NotifyPolicy | None = None,
        summary: SummaryPolicy | None = None,
        end_at: datetime | None = None,
        max_runs: Annotated[int | None, Field(ge=1)] = None,
        pause_on_failure: Annotated[int | None, Field(ge=1)] = None,
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
        return await _answer(_update(s, task_id, given))

    @mcp.tool(annotations=DESTRUCTIVE)
    async def delete_task(
        task_id: TaskId,
        delete_runs: Annotated[
            bool, Field(description="also remove its run history (default: keep it)")
        ] = False,
    ) -> Deleted:
        """Delete a task for good. Its run history is kept unless delete_runs is true.
        To stop it temporarily, use pause_task instead."""
        removed = await _answer(s.tasks.delete(task_id, owner=_owner(s), delete_runs=delete_runs))
        return Deleted(id=task_id, deleted=True, runs_deleted=removed)

    @mcp.tool(annotations=IDEMPOTENT)
    async def pause_task(task_id: TaskId) -> TaskAnswer:
        """Stop a task from firing; its schedule and history are kept. Undo with resume_task."""
        return await _answer(s.tasks.set_enabled(task_id, False, owner=_owner(s)))

    @mcp.tool(annotations=IDEMPOTENT)
    async def resume_task(task_id: TaskId) -> TaskAnswer:
        """Let a paused task fire again from its next scheduled time (missed fires while paused
        are not run)."""
        return await _answer(s.tasks.set_enabled(task_id, True, owner=_owner(s)))


async def _create(s: Services, given: dict[str, Any]) -> TaskAnswer:
    return await s.tasks.create(TaskSpec.model_validate(given), owner=_owner(s))


async def _update(s: Services, task_id: str, given: dict[str, Any]) -> TaskAnswer:
    return await s.tasks.update(task_id, TaskPatch.model_validate(given), owner=_owner(s))


def _register_schedule_tools(mcp: FastMCP, s: Services) -> None:
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
        return await _answer(_preview(s, trigger, count, after))

    @mcp.tool(annotations=READ)
    async def list_step_tools(
        include_upstream: Annotated[
            bool, Field(description="include tools of the upstream MCP servers")
        ] = True,
    ) -> StepToolList:
        """List the step tools a task's steps can call, with their input schemas. Built-in tools
        have plain names; tools of upstream MCP servers are named '<server>/<tool>'."""
        tools = await _answer(s.catalog.list(include_upstream=include_upstream))
        return StepToolList(tools=tools, count=len(tools))


async def _preview(
    s: Services, trigger: Trigger, count: int, after: datetime | None
) -> SchedulePreview:
    return s.tasks.preview(trigger, count, after)


def _register_resources(mcp: FastMCP, s: Services) -> None:
    @mcp.resource("taskloom://tasks", mime_type="application/json")
    async def tasks_resource() -> str:
        """All tasks (first 200) with status and next fire time."""
        page = await _answer(
            s.tasks.list_page(owner=_owner(s), status=None, query=None, limit=200, cursor=None)
        )
        return page.model_dump_json(indent=2)

    @mcp.resource("taskloom://tasks/{task_id}", mime_type="application/json")
    async def task_resource(task_id: str) -> str:
        """One task in full, with its next fire times."""
        answer = await _answer(s.task_details(task_id, owner=_owner(s)))
        return answer.model_dump_json(indent=2)

    @mcp.resource("taskloom://tasks/{task_id}/output", mime_type="text/markdown")
    async def task_output(task_id: str) -> str:
        """The latest successful run's output as a document."""
        return await _answer(_latest_output(s, task_id))

    @mcp.resource("taskloom://runs/{run_id}", mime_type="application/json")
    async def run_resource(run_id: str) -> str:
        """One run with its step results."""
        run = await _answer(s.runs.get(run_id, owner=_owner(s)))
        return run.model_dump_json(indent=2)


async def _latest_output(s: Services, task_id: str) -> str:
    task = await s.tasks.get(task_id, owner=_owner(s))
    page = await s.runs.history(
        owner=_owner(s), task_id=task_id, statuses=[RunStatus.SUCCEEDED], limit=1, cursor=None
    )
    if not page.items:
        return f"# {task.name}\n\nNo successful run yet. Call run_task to run it now."
    run = page.items[0]
    body = run.output if isinstance(run.output, str) else json.dumps(run.output, indent=2)
    when = run.finished_at.isoformat() if run.finished_at else "?"
    summary = f"\n\n> {run.summary}" if run.summary else ""
    return f"# {task.name}\n\nRun {run.id} finished {when}.{summary}\n\n{body}\n"


RunId = Annotated[str, Field(description="the run's id (run_...), from run_task or task_history")]


def _register_run_tools(mcp: FastMCP, s: Services) -> None:
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
        return await _answer(_run_now(s, ctx, task_id, wait, wait_timeout_s))

    @mcp.tool(annotations=READ)
    async def get_run(run_id: RunId) -> RunAnswer:
        """One run with each step's resolved arguments (secrets redacted), output, status,
        timing and error."""
        run = await _answer(s.runs.get(run_id, owner=_owner(s)))
        return RunAnswer(run=run)

    @mcp.tool(annotations=IDEMPOTENT)
    async def cancel_run(run_id: RunId) -> RunAnswer:
        """Cancel a queued or running run; its finished steps are kept and the rest marked
        cancelled."""
        run = await _answer(s.runs.cancel(run_id, owner=_owner(s)))
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
        page = await _answer(
            s.runs.history(
                owner=_owner(s), task_id=task_id, statuses=status or [], limit=limit,
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
        run = await _answer(s.runs.dry_run(steps, owner=_owner(s), progress=progress))
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
        runs = await _answer(s.runs.emit(name, payload or {}, owner=_owner(s)))
        return EventAnswer(event=name, runs=runs, message=_event_note(name, runs))

    @mcp.tool(annotations=READ)
    async def scheduler_status() -> SchedulerStatus:
        """Health of the scheduler: Taskloom processes alive on this database, runs in flight
        and their leases, queue depth, the next fires, and per-task success rate and mean
        duration. Use it when the user asks whether their tasks are running."""
        return await _answer(s.status(owner=_owner(s)))


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
    task = await s.tasks.get(task_id, owner=_owner(s))
    check_runnable(task)
    run = s.runs.new_run(task, RunTrigger.MANUAL)
    await s.store.start_run(run, owner=task.owner)
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


AUTHOR_PROMPT = """You are setting up a Taskloom task for this goal:

{goal}

Available step tools (name: description):
{tools}

Do this:
1. Pick the fewest steps that reach the goal. Each step is {{"id", "tool", "args"}}; args may use
   earlier outputs as Jinja2, e.g. "{{{{ steps.fetch.output.json }}}}" (one expression keeps its
   JSON type; use `| tojson` to embed objects in text). Secrets: "{{{{ secrets.NAME }}}}".
2. Choose a trigger ({schedule_hint}); timezone defaults to {timezone}. Check it with
   preview_schedule.
3. Test the chain with dry_run and fix what fails.
4. Call create_task, then tell the user the next fire times and how to see results
   (task_history, get_run, or the resource taskloom://tasks/<id>/output)."""


def _register_prompts(mcp: FastMCP, s: Services) -> None:
    @mcp.prompt
    async def author_task(
        goal: Annotated[str, Field(description="what the user wants done, and when")],
    ) -> str:
        """Guide for turning a goal into a Taskloom task with the available step tools."""
        tools = await s.catalog.list()
        listing = "\n".join(f"- {t.name}: {t.description.splitlines()[0]}" for t in tools)
        return AUTHOR_PROMPT.format(
            goal=goal,
            tools=listing,
            schedule_hint='cron + timezone, {"every": "30m"}, {"at": ...}, {"event": ...}',
            timezone=s.settings.timezone,
        )


# -- plain HTTP routes beside /mcp (http and sse transports) ----------------------------------


def register_http_routes(mcp: FastMCP, services: Services, auth: AuthProvider | None) -> None:
    """`POST /events/{name}` emits an event, as `emit_event` does, for webhooks and scripts.

    FastMCP guards only its MCP endpoint with `auth`; custom routes are not, so the bearer token
    is verified here through the same provider, and its name owns the runs."""

    @mcp.custom_route("/events/{name}", methods=["POST"], name="post_event")
    async def post_event(request: Request) -> Response:
        return await _post_event(request, services, auth)


def _http_error(status: int, error: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


async def _http_principal(request: Request, auth: AuthProvider | None, default: str) -> str | None:
    """The owner a request acts for: the token's name, or `default` when no auth is set up."""
    if auth is None:
        return default
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    access = await auth.verify_token(token.strip())
    if access is None or not set(auth.required_scopes or []) <= set(access.scopes):
        return None
    return str(access.claims.get("sub") or access.client_id)


async def _event_payload(request: Request) -> dict[str, Any] | str:
    """The body as the event payload (empty means {}), or a message saying what is wrong."""
    body = await request.body()
    if not body.strip():
        return {}
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"The body is not valid JSON ({exc}); send a JSON object or nothing."
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        return f"The body is a JSON {kind}; send a JSON object (the event payload) or nothing."
    return payload


async def _post_event(request: Request, s: Services, auth: AuthProvider | None) -> Response:
    principal = await _http_principal(request, auth, s.settings.owner)
    if principal is None:
        return _http_error(401, "unauthorized", "Send 'Authorization: Bearer <token>'.")
    name = request.path_params["name"]
    if not re.fullmatch(EVENT_NAME_PATTERN, name):
        return _http_error(
            400, "invalid_event_name",
            f"Event name {name!r} must be 1-100 letters, digits or _ . : - characters.",
        )  # fmt: skip
    payload = await _event_payload(request)
    if isinstance(payload, str):
        return _http_error(400, "invalid_payload", payload)
    try:
        runs = await s.runs.emit(name, payload, owner=principal)
    except TaskloomError as exc:
        return _http_error(400, "rejected", exc.message)
    return JSONResponse(
        {"event": name, "runs": [run.id for run in runs], "message": _event_note(name, runs)}
    )


def _event_note(name: str, runs: list[Run]) -> str:
    if runs:
        return f"{len(runs)} task(s) listen to {name!r}."
    return f"No active task listens to {name!r}; create one with trigger {{'event': {name!r}}}."
