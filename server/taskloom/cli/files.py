"""Tasks as files: `taskloom schema`, `taskloom tasks export` and `taskloom tasks apply`."""

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from taskloom.cli import app, tasks_app
from taskloom.cli.common import run
from taskloom.cli.output import fail, interactive, line, out
from taskloom.cli.tasks import OwnerOption

DIFF_STYLES = (("+++", "bold"), ("---", "bold"), ("@@", "cyan"), ("+", "green"), ("-", "red"))


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of a task file, for editors (generated from the task model)."""
    from taskloom.tasks.files import task_schema

    sys.stdout.write(json.dumps(task_schema(), indent=2, ensure_ascii=False) + "\n")


@tasks_app.command("export")
def tasks_export(
    task_ids: Annotated[
        list[str] | None, typer.Argument(help="tasks to export (default: all of the owner's)")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="write one .yaml file per task here", file_okay=False),
    ] = None,
    owner: OwnerOption = None,
) -> None:
    """Write tasks as task files (YAML): to stdout, or one file per task with -o DIR."""
    from taskloom.tasks.apply import Applier
    from taskloom.tasks.files import task_document

    async def go(s: Any) -> list[Any]:
        if task_ids:
            return [await s.tasks.get(i, owner=None) for i in task_ids]
        return await Applier(s.tasks, owner=owner or s.settings.owner).owned()

    documents = [(t.name, task_document(t.spec())) for t in run(go)]
    if output is None:
        from taskloom.tasks.files import to_yaml_stream

        sys.stdout.write(to_yaml_stream([d for _, d in documents]))
    else:
        _write_files(output, documents)


def _write_files(directory: Path, documents: list[tuple[str, dict[str, Any]]]) -> None:
    from taskloom.tasks.files import file_name, to_yaml

    try:
        directory.mkdir(parents=True, exist_ok=True)
        taken: set[str] = set()
        for name, document in documents:
            path = directory / file_name(name, taken)
            path.write_text(to_yaml(document), encoding="utf-8")
            line(str(path))
    except OSError as exc:
        raise fail(f"{directory}: cannot write task files ({exc.strerror}).", 1) from None


@tasks_app.command("apply")
def tasks_apply(
    file: Annotated[Path, typer.Option("--file", "-f", help="a task file, or a directory of them")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="apply without asking")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only show the changes")] = False,
    prune: Annotated[
        bool, typer.Option(help="delete the set's tasks whose names are in no file")
    ] = False,
    file_set: Annotated[
        str, typer.Option("--set", help="the file set these files keep (for --prune)")
    ] = "files",
    owner: OwnerOption = None,
) -> None:
    """Create or update tasks by name from task files, showing the diff first. --prune deletes
    the tasks earlier applies of the same --set made that no file names any more."""
    if not (yes or dry_run or sys.stdin.isatty()):
        raise fail(
            "taskloom tasks apply: no terminal to confirm on; pass --yes to apply or --dry-run "
            "to only show the changes.",
            2,
        )
    from taskloom.tasks.apply import Applier
    from taskloom.tasks.files import read_documents

    async def plan(s: Any) -> tuple[str, list[Any]]:
        who = owner or s.settings.owner
        changes = await Applier(s.tasks, owner=who, file_set=file_set).plan(
            read_documents(file), prune=prune
        )
        return who, changes

    who, changes = run(plan)
    todo = [c for c in changes if c.action != "unchanged"]
    _show(changes)
    if dry_run or not todo:
        return
    if not yes:
        typer.confirm(f"Apply {len(todo)} change{'s' * (len(todo) != 1)}?", abort=True)

    async def apply(s: Any) -> None:
        applier = Applier(s.tasks, owner=who, file_set=file_set)
        for change in todo:
            _applied(change, await applier.apply(change))

    run(apply)


def _show(changes: list[Any]) -> None:
    counts = {a: sum(c.action == a for c in changes) for a in ("create", "update", "delete")}
    for change in changes:
        if change.action == "adopt":
            line(f"# {change.name}: unchanged; taken into this file set")
        for diff_line in change.diff():
            _diff_line(diff_line)
    unchanged = sum(c.action in ("unchanged", "adopt") for c in changes)
    line(
        f"{counts['create']} to create, {counts['update']} to update, "
        f"{counts['delete']} to delete, {unchanged} unchanged."
    )


def _diff_line(text: str) -> None:
    if not interactive():
        line(text)
        return
    style = next((s for prefix, s in DIFF_STYLES if text.startswith(prefix)), "")
    out.print(Text(text, style=style), soft_wrap=True)


def _applied(change: Any, answer: Any) -> None:
    verb = {"create": "created", "update": "updated", "adopt": "updated", "delete": "deleted"}
    task_id = answer.task.id if answer is not None else change.task.id
    line(f"{verb[change.action]} {task_id} {change.name}")
    for warning in answer.warnings if answer is not None else []:
        line(f"warning: {change.name}: {warning.field}: {warning.message}", style="yellow")
