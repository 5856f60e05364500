"""The `taskloom` command: serve MCP, manage tasks and the database from a terminal.

This module holds the app and the server-side commands; `tasks.py`, `runs.py` and `files.py` add
theirs, `output.py` says how anything is shown and `common.py` how errors read."""

import asyncio
import os
import sys
import traceback
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from taskloom import __version__
from taskloom.cli.common import JsonFlag, cli_message, exit_code, run, settings
from taskloom.cli.output import emit_json, fail, line, out, table, when
from taskloom.errors import TaskloomError

try:  # typer 0.2x runs its own copy of click; earlier versions run click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors  # type: ignore[no-redef]

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
  TASKLOOM_RETENTION_DAYS    finished runs older than this are pruned (default 90; 0: keep
                             forever); TASKLOOM_RETENTION_FAILED_DAYS (180; 0: forever),
                             TASKLOOM_RETENTION_KEEP_LAST (20 newest per task always kept),
                             TASKLOOM_RETENTION_BATCH (500), TASKLOOM_RETENTION_INTERVAL_S (600)
  TASKLOOM_METRICS_MAX_TASKS task ids labelled one by one in /metrics; later ones are
                             labelled 'other' (default 50)
  TASKLOOM_DASHBOARD_SESSION_S  how long a dashboard sign-in lasts (default 28800)
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

    loaded = settings()
    try:
        run_server(loaded, transport=transport.value, host=host, port=port)
    except TaskloomError as exc:
        raise fail(cli_message(exc), 2) from exc


@app.command(epilog=ENV_HELP)
def dashboard(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8780,
) -> None:
    """Serve the web dashboard and /metrics on the same database (open it beside Claude
    Desktop: http://127.0.0.1:8780/dashboard/). Sign-in with a token when TASKLOOM_HTTP_TOKENS
    is set; on loopback without tokens the local user is signed in."""
    from taskloom.dashboard.serving import serve_dashboard
    from taskloom.serve import is_loopback

    loaded = settings()
    try:
        serve_dashboard(loaded, host=host, port=port, loopback=is_loopback(host))
    except TaskloomError as exc:
        raise fail(cli_message(exc), 2) from exc


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (also done automatically at start)."""

    async def go(s: Any) -> str:
        return str(await s.store.schema_revision())

    revision = run(go)
    line(f"Database schema at revision {revision}.")


@app.command(epilog=ENV_HELP)
def worker(
    metrics_port: Annotated[
        int | None, typer.Option(help="serve Prometheus metrics at /metrics on this port")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="bind address of --metrics-port")] = (
        "127.0.0.1"
    ),
) -> None:
    """Schedule and run tasks without serving MCP (for a user service; see `service install`).
    Stops gracefully on SIGTERM/SIGINT: in-flight runs get TASKLOOM_SHUTDOWN_GRACE_S to finish."""
    from taskloom import logging as tl_logging
    from taskloom.worker import run_worker

    loaded = settings()
    tl_logging.configure(loaded.log_level, loaded.log_format)
    try:
        at = (metrics_host, metrics_port) if metrics_port is not None else None
        asyncio.run(run_worker(loaded, metrics_at=at))
    except TaskloomError as exc:
        raise fail(cli_message(exc), exit_code(exc)) from exc


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """Processes alive, runs in flight, queue, next fires and per-task health."""
    from taskloom.cli.retention import storage_json, storage_lines

    async def go(s: Any) -> Any:
        return await s.status(owner=None), await s.retention.footprint()

    st, footprint = run(go)
    if as_json:
        emit_json({**st.model_dump(mode="json"), "storage": storage_json(footprint)})
        return
    tz = st.server_timezone
    if st.processes:
        rows = [[p.id, p.role, str(p.pid), when(p.last_heartbeat, tz)] for p in st.processes]
        table(["process", "role", "pid", "last heartbeat"], rows, title="Taskloom processes")
    else:
        line("No Taskloom process is scheduling.", style="yellow")
    counts = ", ".join(f"{n} {word}" for word, n in sorted(st.tasks_by_status.items())) or "none"
    line(f"Runs in flight: {len(st.runs_in_flight)}   queued: {st.queue_depth} "
         f"({st.queue_due} due)   tasks: {counts}")  # fmt: skip
    if st.next_fires:
        rows = [[when(datetime.fromisoformat(f.at.utc), tz), f.task_id, f.name]
                for f in st.next_fires]  # fmt: skip
        table(["next fire", "task", "name"], rows, title="Next fires")
    if st.per_task:
        table(["task", "name", "runs", "success", "mean ms"], [_health(h) for h in st.per_task],
              title="Per task")  # fmt: skip
    for text in storage_lines(footprint):
        line(text)


def _health(h: Any) -> list[str]:
    mean = f"{h.mean_duration_ms:.0f}" if h.mean_duration_ms is not None else "-"
    return [h.task_id, h.name, str(h.runs), f"{h.success_rate:.0%}", mean]


@service_app.command("install")
def service_install(
    kind: Annotated[str | None, typer.Option(help="systemd or launchd (default: this OS's)")] = (
        None
    ),
) -> None:
    """Write a user-service file that keeps `taskloom worker` running while no client is open."""
    from taskloom import service_install as si

    if kind not in (None, "systemd", "launchd"):
        raise fail(f"--kind {kind!r}: use systemd or launchd.", 2)
    try:
        path, next_step = si.install(kind)  # type: ignore[arg-type]
    except TaskloomError as exc:
        raise fail(cli_message(exc), 1) from exc
    out.print(f"Wrote {path}\nStart it with:")
    out.print(f"  {next_step}", soft_wrap=True)


@app.command()
def demo(
    fires: Annotated[int, typer.Option(min=1, max=20, help="scheduled runs to wait for")] = 3,
) -> None:
    """Show the main job end to end on the embedded SQLite database, no API key needed: a local
    JSON API, a task that fetches, extracts, renders and notifies every 2 s, its run history."""
    from taskloom.demo import run_demo

    run_demo(settings(), fires=fires, console=out)


# The commands of the other modules register on the apps above when imported.
from taskloom.cli import files, retention, revisions, runs, tasks  # noqa: E402

__all__ = ["app", "files", "main", "retention", "revisions", "runs", "tasks"]


def main() -> None:
    """The console script: every failure is one line on stderr and exit 1 or 2, never a
    traceback (TASKLOOM_LOG_LEVEL=debug logs one for an unexpected error)."""
    code = _command()
    serving = sys.modules.get("taskloom.serve")
    if serving is not None and serving.holds_stdin():
        serving.leave(code)  # a stdio server that failed: its stdin reader would hold the exit
    sys.exit(code)


def _command() -> int:
    command = typer.main.get_command(app)
    try:
        result = command.main(prog_name="taskloom", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        out.print(exc.ctx.get_help() if exc.ctx else "", markup=False)
        result = 0
    except click_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "taskloom"
        reason = exc.format_message().replace("Value error, ", "")
        usage = f"{where}: {reason} (see `{where} --help`)"
        return _one_line(usage, 2)
    except click_errors.ClickException as exc:
        return _one_line(exc.format_message(), exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        return _one_line("Aborted.", 1)
    except Exception as exc:
        if os.environ.get("TASKLOOM_LOG_LEVEL", "").lower() == "debug":
            traceback.print_exc()
        text = f"unexpected error: {type(exc).__name__}: {exc} (TASKLOOM_LOG_LEVEL=debug: where)"
        return _one_line(text, 1)
    return result if isinstance(result, int) else 0


def _one_line(message: str, code: int) -> int:
    fail(message, code)
    return code
