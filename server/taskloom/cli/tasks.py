"""`taskloom tasks ...`: list, show, create and update from a file, pause, resume, delete."""

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from taskloom.cli import tasks_app
from taskloom.cli.common import JsonFlag, run
from taskloom.cli.output import emit_json, line, pairs, table, when
from taskloom.domain.tasks import TaskStatus

FileOption = Annotated[
    Path, typer.Option("--file", "-f", help="a task file (.yaml, .yml or .json)", dir_okay=False)
]
OwnerOption = Annotated[
    str | None, typer.Option(help="whose task (default: TASKLOOM_OWNER)", show_default=False)
]


def trigger_words(trigger: Any, tz: str) -> str:
    from taskloom.domain.triggers import describe_trigger

    return describe_trigger(trigger, tz)


@tasks_app.command("list")
def tasks_list(
    status: Annotated[TaskStatus | None, typer.Option(help="only tasks with this status")] = None,
    query: Annotated[str | None, typer.Option(help="only names containing this")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tasks (every owner's)."""

    async def go(s: Any) -> Any:
        page = await s.store.list_tasks(
            owner=None, status=status, name_contains=query, limit=limit, cursor=cursor
        )
        summaries = [s.tasks.summary(t).model_dump(mode="json") for t in page.items]
        data = {"tasks": summaries, "next_cursor": page.next_cursor}
        return page.items, data | {"server_timezone": s.settings.timezone}

    tasks, data = run(go)
    if as_json:
        emit_json(data)
    elif not tasks:
        line("No tasks yet.")
    else:
        rows = [
            [t.id, t.name, t.status.value, trigger_words(t.trigger, t.timezone),
             when(t.next_fire_at, t.timezone), t.last_run_status or "-"]
            for t in tasks
        ]  # fmt: skip
        table(["id", "name", "status", "trigger", "next fire", "last run"], rows)


@tasks_app.command("show")
def tasks_show(task_id: str, as_json: JsonFlag = False) -> None:
    """Show one task: its state, its definition as a task file, its latest runs."""
    answer = run(lambda s: s.task_details(task_id, owner=None))
    if as_json:
        emit_json(answer.model_dump(mode="json"))
        return
    from taskloom.tasks.files import task_document, to_yaml

    task = answer.task
    pairs(
        ("id", task.id), ("name", task.name), ("owner", task.owner),
        ("status", task.status.value), ("trigger", trigger_words(task.trigger, task.timezone)),
        ("next fires", _fires(answer.next_fires, task.timezone)),
        ("last run", _last_run(task)),
        ("runs", str(task.run_count)), ("file set", task.managed_by or "-"),
    )  # fmt: skip
    for warning in answer.warnings:
        line(f"warning: {warning.field}: {warning.message}", style="yellow")
    line("")
    line(f"# the task file (`taskloom tasks export {task.id}`)", style="dim")
    sys.stdout.write(to_yaml(task_document(task.spec())))
    if answer.recent_runs:
        line("")
        rows = [[r.id, r.status.value, r.trigger.value, when(r.fire_time or r.created_at, "UTC"),
                 str(r.duration_ms or "-")] for r in answer.recent_runs]  # fmt: skip
        table(["run", "status", "trigger", "time", "ms"], rows)


def _fires(fires: list[Any], tz: str) -> str:
    from datetime import datetime

    shown = [f"{datetime.fromisoformat(f.local):%Y-%m-%d %H:%M}" for f in fires]
    return f"{', '.join(shown)} ({tz})" if shown else "-"


def _last_run(task: Any) -> str:
    if task.last_run_at is None:
        return task.last_run_status or "-"
    return f"{task.last_run_status or '-'} at {when(task.last_run_at, task.timezone)}"


@tasks_app.command("create")
def tasks_create(file: FileOption, owner: OwnerOption = None) -> None:
    """Create the tasks of a task file (see `taskloom schema`), checked as create_task checks
    them. To create or update by name from files, use `taskloom tasks apply`."""
    from taskloom.tasks.files import read_documents

    async def go(s: Any) -> list[Any]:
        documents = read_documents(file)
        who = owner or s.settings.owner
        return [await s.tasks.create(d.spec, owner=who) for d in documents]

    for answer in run(go):
        _said(answer, "created")


@tasks_app.command("update")
def tasks_update(task_id: str, file: FileOption) -> None:
    """Change the fields a file gives (as update_task takes them: omitted fields stay, `clear`
    lists optional fields to remove)."""
    from taskloom.tasks.files import read_patch

    async def go(s: Any) -> Any:
        patch = read_patch(file)
        task = await s.tasks.get(task_id, owner=None)
        return await s.tasks.update(task_id, patch, owner=task.owner)

    _said(run(go), "updated")


def _said(answer: Any, verb: str) -> None:
    line(f"{answer.task.id} {verb}: {answer.task.name} ({answer.message})")
    for warning in answer.warnings:
        line(f"warning: {warning.field}: {warning.message}", style="yellow")


@tasks_app.command("pause")
def tasks_pause(task_id: str) -> None:
    """Stop a task from firing."""
    answer = run(lambda s: s.tasks.set_enabled(task_id, False, owner=None))
    line(f"{task_id}: {answer.message}")


@tasks_app.command("resume")
def tasks_resume(task_id: str) -> None:
    """Let a paused task fire again."""
    answer = run(lambda s: s.tasks.set_enabled(task_id, True, owner=None))
    line(f"{task_id}: {answer.message}")


@tasks_app.command("delete")
def tasks_delete(
    task_id: str,
    delete_runs: Annotated[bool, typer.Option(help="also remove its run history")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a task (its runs are kept unless --delete-runs)."""
    if not yes and sys.stdin.isatty():
        typer.confirm(f"Delete task {task_id}?", abort=True)
    removed = run(lambda s: s.tasks.delete(task_id, owner=None, delete_runs=delete_runs))
    line(f"Deleted {task_id} ({removed} runs removed).")
