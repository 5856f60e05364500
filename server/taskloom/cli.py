"""The `taskloom` command: serve MCP, manage tasks and the database from a terminal."""

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from taskloom import __version__
from taskloom.errors import TaskloomError

T = TypeVar("T")

# The CLI acts as the operator: owner=None reaches every owner's tasks.
app = typer.Typer(
    name="taskloom",
    help="Taskloom: an MCP server that runs chains of tool calls on a schedule.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
tasks_app = typer.Typer(help="Inspect and manage tasks in the database.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
runs_app = typer.Typer(help="Inspect runs (history).", no_args_is_help=True)
service_app = typer.Typer(help="Run Taskloom as a user service.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(db_app, name="db")
app.add_typer(runs_app, name="runs")
app.add_typer(service_app, name="service")

out = Console()
err = Console(stderr=True)

ENV_HELP = """
[b]Settings[/b] (environment variables, or keys in the TOML file named by TASKLOOM_CONFIG_FILE):

  TASKLOOM_DATABASE_URL      SQLAlchemy URL; default: a SQLite file in TASKLOOM_DATA_DIR.
                             PostgreSQL: postgresql://user@host:5432/db
  TASKLOOM_DATA_DIR          where the default SQLite file lives
  TASKLOOM_TIMEZONE          default IANA timezone for triggers (default UTC)
  TASKLOOM_MCP_CONFIG        upstream MCP servers: a file in Claude Desktop's 'mcpServers' format
  TASKLOOM_LOG_LEVEL         debug | info | warning | error (logs go to stderr)
  TASKLOOM_LOG_FORMAT        auto | console | json
  TASKLOOM_HTTP_TOKENS       name=token pairs, comma-separated: bearer auth for HTTP transports
  TASKLOOM_HTTP_ALLOW_HOSTS  hosts/CIDRs http_request may reach although private or loopback
  TASKLOOM_SECRETS_FILE      file of NAME=value lines (mode 0600) for {{ secrets.NAME }}
  ANTHROPIC_API_KEY          for llm_prompt steps and run summaries (ANTHROPIC_BASE_URL too)
  TASKLOOM_LLM_MODEL         default model of llm_prompt steps
  TASKLOOM_SUMMARY_MODEL     model of run summaries
  TASKLOOM_SCHEDULER         true | false: fire schedules in this process (default true)
  TASKLOOM_MCP_TASKS         true | false: run_task answers tasks-extension clients with a
                             task handle (default false; adds ~0.3 s to start-up)
  TASKLOOM_LEASE_S           run lease in seconds, renewed every third of it (default 30)
  TASKLOOM_SHUTDOWN_GRACE_S  seconds in-flight runs may finish at shutdown (default 60)
  TASKLOOM_STEP_TIMEOUT_S    default timeout of one step in seconds (default 300)
  TASKLOOM_MAX_OUTPUT_BYTES  stored output (and arguments) per step (default 65536)
  TASKLOOM_MAX_ANSWER_BYTES  most bytes one tool answer or resource read sends; longer values
                             come as a head and the call that pages the rest (default 32000)
  TASKLOOM_SANDBOX_WORKERS   processes that run templates, render and extract (default 2)
  TASKLOOM_SANDBOX_MEMORY_MB memory of one such worker in MB (default 512)
  TASKLOOM_SANDBOX_CPU_S     CPU seconds per step evaluation (default 2)
  TASKLOOM_SANDBOX_WALL_S    seconds per step evaluation before the worker is killed (default 10)
  TASKLOOM_SANDBOX_VALUE_BYTES  largest value a step evaluation hands back (default 16 MiB)
  TASKLOOM_MAX_TASKS_PER_OWNER  tasks one owner may have (default 1000)
  TASKLOOM_MAX_FOREACH_ITEMS  items one foreach step may run over (default 100)
  TASKLOOM_AGENT_MAX_TOTAL_TOKENS  tokens one agent step may use in all (default 200000)
  TASKLOOM_MAX_REVISIONS_PER_TASK  revisions kept per task, the oldest go (default 100)
  TASKLOOM_EVENT_STORE_MAX_EVENTS  Streamable HTTP: messages kept for clients that reconnect
                             with Last-Event-ID (default 2000; also
                             TASKLOOM_EVENT_STORE_MAX_EVENTS_PER_STREAM 500,
                             TASKLOOM_EVENT_STORE_TTL_S 900)
  TASKLOOM_OWNER             owner of tasks created without HTTP auth (default local)
  TASKLOOM_MAX_CONCURRENT_RUNS  runs one principal may have running at once (default 50)
  TASKLOOM_MAX_RUNS_PER_MINUTE  runs one principal may start per minute (default 300)
  TASKLOOM_MAX_QUEUED_RUNS   runs one principal may have queued (default 200)
  TASKLOOM_MAX_EVENT_PAYLOAD_BYTES  largest event payload in bytes (default 1048576)
  TASKLOOM_SECRET_GRANTS     with several HTTP tokens: NAME=principal,principal;NAME2=...
                             (a secret nobody is granted is usable by nobody)
  TASKLOOM_OPERATORS         principals that see processes, hosts and pids (comma-separated)
  TASKLOOM_MOUNT_SERVER      module:attribute of a FastMCP server served beside Taskloom's
                             own tools (tests mount the conformance fixtures this way)
"""


class Transport(StrEnum):
    stdio = "stdio"
    http = "http"
    sse = "sse"


def _version(value: bool) -> None:
    if value:
        out.print(f"taskloom {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Taskloom: an MCP server that runs chains of tool calls on a schedule."""


def _fail(message: str, code: int) -> typer.Exit:
    """Print `message` to stderr as it is (one line stays one line), return the exit to raise."""
    err.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _settings() -> Any:
    """The settings, checked against the machine; a bad one is one line on stderr, exit 2."""
    from taskloom import preflight
    from taskloom.settings import BadSetting, load_settings

    try:
        settings = load_settings()
        preflight.check(settings)
    except BadSetting as exc:
        raise _fail(exc.message, 2) from None
    return settings


def _exit_code(exc: TaskloomError, default: int) -> int:
    from taskloom.settings import BadSetting

    return 2 if isinstance(exc, BadSetting) else default


def _run(make: Callable[[Any], Awaitable[T]]) -> T:
    """Open the services (no scheduler), run one coroutine, close; domain errors exit 1."""
    settings = _settings()  # first: a bad setting is reported before the slow imports
    from taskloom import logging as tl_logging
    from taskloom.app import build_services

    tl_logging.configure(os.environ.get("TASKLOOM_LOG_LEVEL", "warning"), settings.log_format)
    services = build_services(settings, role="cli")

    async def body() -> T:
        await services.start(schedule=False)
        try:
            return await make(services)
        finally:
            await services.stop()

    try:
        return asyncio.run(body())
    except TaskloomError as exc:
        raise _fail(exc.message, _exit_code(exc, 1)) from exc


@tasks_app.command("revisions")
def tasks_revisions(task_id: str, limit: Annotated[int, typer.Option(min=1, max=100)] = 20) -> None:
    """List a task's changes, newest first: revision, action, principal, time, changed fields."""
    page = _run(lambda s: s.audit.list(task_id, owner=None, limit=limit, before=None))
    for rev in page.revisions:
        fields = ", ".join(rev.diff) or "-"
        out.print(f"{rev.revision:>4}  {rev.action:<8} {rev.principal:<16} {rev.at}  {fields}")


@tasks_app.command("restore")
def tasks_restore(task_id: str, revision: int) -> None:
    """Make a task as one of its revisions defined it (a deleted task is created again)."""
    answer = _run(lambda s: s.audit.restore(task_id, revision, owner=None))
    out.print(f"{answer.task.id}: restored revision {revision}. {answer.message or ''}".strip())


@app.command(epilog=ENV_HELP)
def serve(
    transport: Annotated[Transport, typer.Option(help="stdio, http (Streamable HTTP) or sse")] = (
        Transport.stdio
    ),
    host: Annotated[str, typer.Option(help="HTTP bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8765,
) -> None:
    """Serve MCP to a client. stdio by default (what Claude Desktop launches)."""
    from taskloom.serve import serve as run_server

    settings = _settings()
    try:
        run_server(settings, transport=transport.value, host=host, port=port)
    except TaskloomError as exc:
        raise _fail(exc.message, 2) from exc


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (also done automatically at start)."""

    async def go(s: Any) -> str:
        return str(await s.store.schema_revision())

    revision = _run(go)
    out.print(f"Database schema at revision {revision}.")


def _table(*columns: str, title: str) -> Table:
    """Id columns never wrap or truncate: people copy them into the next command."""
    table = Table(title=title)
    for name in columns:
        is_id = name in ("id", "run", "task", "process")
        table.add_column(name, no_wrap=is_id, min_width=30 if is_id else None)
    return table


def _when(value: datetime | None, tz: str) -> str:
    if value is None:
        return "-"
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


@tasks_app.command("list")
def tasks_list(
    status: Annotated[str | None, typer.Option(help="active, paused or finished")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """List tasks."""

    async def go(s: Any) -> Any:
        return await s.store.list_tasks(owner=None, status=status, limit=limit)

    page = _run(go)
    table = _table("id", "name", "status", "trigger", "next fire", "last run", title="Tasks")
    for t in page.items:
        trig = t.trigger.model_dump(exclude_none=True) if t.trigger else "manual"
        table.add_row(
            t.id, t.name, t.status.value, str(trig), _when(t.next_fire_at, t.timezone),
            t.last_run_status or "-",
        )  # fmt: skip
    out.print(table if page.items else "No tasks yet.")


@tasks_app.command("show")
def tasks_show(task_id: str) -> None:
    """Show one task in full (JSON)."""
    answer = _run(lambda s: s.task_details(task_id, owner=None))
    out.print_json(answer.model_dump_json())


@tasks_app.command("pause")
def tasks_pause(task_id: str) -> None:
    """Stop a task from firing."""
    answer = _run(lambda s: s.tasks.set_enabled(task_id, False, owner=None))
    out.print(f"{task_id}: {answer.message}")


@tasks_app.command("resume")
def tasks_resume(task_id: str) -> None:
    """Let a paused task fire again."""
    answer = _run(lambda s: s.tasks.set_enabled(task_id, True, owner=None))
    out.print(f"{task_id}: {answer.message}")


@tasks_app.command("delete")
def tasks_delete(
    task_id: str,
    delete_runs: Annotated[bool, typer.Option(help="also remove its run history")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a task (its runs are kept unless --delete-runs)."""
    if not yes and sys.stdin.isatty():
        typer.confirm(f"Delete task {task_id}?", abort=True)
    removed = _run(lambda s: s.tasks.delete(task_id, owner=None, delete_runs=delete_runs))
    out.print(f"Deleted {task_id} ({removed} runs removed).")


@app.command(epilog=ENV_HELP)
def worker() -> None:
    """Schedule and run tasks without serving MCP (for a user service; see `service install`).
    Stops gracefully on SIGTERM/SIGINT: in-flight runs get TASKLOOM_SHUTDOWN_GRACE_S to finish."""
    from taskloom import logging as tl_logging
    from taskloom.worker import run_worker

    settings = _settings()
    tl_logging.configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(run_worker(settings))
    except TaskloomError as exc:
        raise _fail(exc.message, _exit_code(exc, 1)) from exc


@app.command()
def status() -> None:
    """Processes alive, runs in flight, queue, next fires and per-task health."""
    st = _run(lambda s: s.status(owner=None))
    procs = _table("process", "role", "pid", "last heartbeat", title="Taskloom processes")
    for p in st.processes:
        procs.add_row(p.id, p.role, str(p.pid), _when(p.last_heartbeat, st.server_timezone))
    out.print(procs if st.processes else "[yellow]No Taskloom process is scheduling.[/yellow]")
    out.print(f"Runs in flight: {len(st.runs_in_flight)}   queued: {st.queue_depth} "
              f"({st.queue_due} due)   tasks: {st.tasks_by_status}")  # fmt: skip
    fires = _table("next fire", "task", "name", title="Next fires")
    for f in st.next_fires:
        fires.add_row(f.at.local, f.task_id, f.name)
    out.print(fires)
    health = _table("task", "name", "runs", "success", "mean ms", title="Per task")
    for h in st.per_task:
        mean = f"{h.mean_duration_ms:.0f}" if h.mean_duration_ms is not None else "-"
        health.add_row(h.task_id, h.name, str(h.runs), f"{h.success_rate:.0%}", mean)
    out.print(health)


@runs_app.command("list")
def runs_list(
    task: Annotated[str | None, typer.Option(help="only this task's runs")] = None,
    status: Annotated[list[str] | None, typer.Option(help="only these statuses")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
) -> None:
    """Runs, newest first."""
    from taskloom.domain.runs import RunStatus

    statuses = [RunStatus(s) for s in status or []]

    async def go(s: Any) -> Any:
        return await s.runs.history(
            owner=None, task_id=task, statuses=statuses, limit=limit, cursor=None
        )

    page = _run(go)
    # One id column fits an 80-column terminal; the task's id only when runs of several tasks mix.
    columns = ["run", "status", "trigger", "fire time", "ms", "error"]
    table = _table(*(columns if task else ["run", "task_id", *columns[1:]]), title="Runs")
    for r in page.items:
        cells = [r.status.value, r.trigger.value, _when(r.fire_time, "UTC"),
                 str(r.duration_ms or "-"), (r.error or "")[:60]]  # fmt: skip
        table.add_row(r.id, *([] if task else [r.task_id]), *cells)
    out.print(table if page.items else "No runs yet.")


@runs_app.command("show")
def runs_show(run_id: str) -> None:
    """One run with its step results (JSON)."""
    run = _run(lambda s: s.runs.get(run_id, owner=None))
    out.print_json(run.model_dump_json())


@app.command("run")
def run_now(task_id: str) -> None:
    """Run a task now in this process, showing each step as it goes."""
    from rich.progress import Progress

    async def go(s: Any) -> Any:
        task, run = await s.runs.admit_manual(task_id, owner=None)
        if run.status.value == "queued":
            return run
        with Progress(console=err, transient=True) as bar:
            line = bar.add_task(task.name, total=len(task.steps))

            async def progress(done: int, total: int, message: str) -> None:
                bar.update(line, completed=done, description=message)

            return await s.runs.execute(task, run, progress=progress)

    run = _run(go)
    if run.status.value == "queued":
        out.print(f"{run.id}: queued behind the run in progress (the task's overlap is 'queue').")
        return
    colour = "green" if run.status.value == "succeeded" else "red"
    out.print(f"[{colour}]{run.id}: {run.status.value}[/{colour}] in {run.duration_ms} ms")
    for step in run.steps:
        out.print(f"  {step.id} ({step.tool}): {step.status.value} {step.error or ''}")
    if run.status.value != "succeeded":
        raise typer.Exit(1)


@service_app.command("install")
def service_install(
    kind: Annotated[str | None, typer.Option(help="systemd or launchd (default: this OS's)")] = (
        None
    ),
) -> None:
    """Write a user-service file that keeps `taskloom worker` running while no client is open."""
    from taskloom import service_install as si

    if kind not in (None, "systemd", "launchd"):
        err.print(f"[red]--kind {kind!r}: use systemd or launchd.[/red]")
        raise typer.Exit(2)
    try:
        path, next_step = si.install(kind)  # type: ignore[arg-type]
    except TaskloomError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    out.print(f"Wrote {path}\nStart it with:")
    out.print(f"  {next_step}", soft_wrap=True)


@app.command()
def demo(
    fires: Annotated[int, typer.Option(min=1, max=20, help="scheduled runs to wait for")] = 3,
) -> None:
    """Show the main job end to end on the embedded SQLite database, no API key needed: a local
    JSON API, a task that fetches, extracts, renders and notifies every 2 s, its run history."""
    from taskloom.demo import run_demo

    run_demo(_settings(), fires=fires, console=out)


def main() -> None:
    app()
