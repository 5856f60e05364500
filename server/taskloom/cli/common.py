"""What every command shares: the settings, the services for one command, and errors worded
for a command line (one line, exit 1 or 2, commands instead of MCP tool names)."""

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from taskloom.cli.output import fail
from taskloom.errors import InvalidInputs, NotFound, TaskloomError

T = TypeVar("T")

JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON (shapes: README, Command line)")]

# Where a command-line user finds the ids a NotFound is about.
IDS_SHOWN_BY = {"task": "taskloom tasks list", "run": "taskloom runs list"}
# The MCP tool names the domain's messages mention, as the commands that do the same.
MCP_TO_CLI: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), command)
    for pattern, command in (
        (r"update_task\(task_id='([^']+)', \.\.\.\)", r"`taskloom tasks update \1 -f FILE`"),
        (r"\brun_task\b", "`taskloom run`"),
        (r"\blist_tasks\b", "`taskloom tasks list`"),
        (r"\bget_task\b", "`taskloom tasks show`"),
        (r"\bcreate_task\b", "`taskloom tasks create`"),
        (r"\bupdate_task\b", "`taskloom tasks update`"),
        (r"\bpause_task\b", "`taskloom tasks pause`"),
        (r"\bresume_task\b", "`taskloom tasks resume`"),
        (r"\bdelete_task\b", "`taskloom tasks delete`"),
        (r"\btask_history\b", "`taskloom runs list`"),
        (r"\bget_run\b", "`taskloom runs show`"),
    )
)


def cli_message(exc: TaskloomError) -> str:
    """The error as one line, in the command line's words."""
    if isinstance(exc, NotFound) and exc.kind in IDS_SHOWN_BY:
        return f"no {exc.kind} with id {exc.ident}; `{IDS_SHOWN_BY[exc.kind]}` shows the ids"
    if isinstance(exc, InvalidInputs):
        head = "1 problem" if len(exc.problems) == 1 else f"{len(exc.problems)} problems"
        text = f"{head}: " + "; ".join(p.message for p in exc.problems)
    else:
        text = exc.message
    for pattern, command in MCP_TO_CLI:
        text = pattern.sub(command, text)
    return " ".join(text.split())


def exit_code(exc: TaskloomError) -> int:
    from taskloom.settings import BadSetting

    return 2 if isinstance(exc, BadSetting) else 1


def settings() -> Any:
    """The settings, checked against the machine; a bad one is one line on stderr, exit 2."""
    from taskloom import preflight
    from taskloom.settings import BadSetting, load_settings

    try:
        loaded = load_settings()
        preflight.check(loaded)
    except BadSetting as exc:
        raise fail(exc.message, 2) from None
    return loaded


def run(make: Callable[[Any], Awaitable[T]]) -> T:
    """Open the services (no scheduler), run one coroutine, close; domain errors exit 1."""
    loaded = settings()  # first: a bad setting is reported before the slow imports
    from taskloom import logging as tl_logging
    from taskloom.services import build_services

    tl_logging.configure(os.environ.get("TASKLOOM_LOG_LEVEL", "warning"), loaded.log_format)
    services = build_services(loaded, role="cli")

    async def body() -> T:
        await services.start(schedule=False)
        try:
            return await make(services)
        finally:
            await services.stop()

    return guarded(lambda: asyncio.run(body()))


def guarded(call: Callable[[], T]) -> T:
    """`call()`, its domain and validation errors as one line and exit 1 (2: a bad setting)."""
    try:
        return call()
    except TaskloomError as exc:
        raise fail(cli_message(exc), exit_code(exc)) from None
    except ValidationError as exc:
        from taskloom.tasks.suggest import format_validation_error

        raise fail(cli_message(format_validation_error(exc)), 1) from None
