"""`taskloom tasks revisions|restore`: a task's audit trail, and putting a revision back."""

from typing import Annotated

import typer

from taskloom.cli import tasks_app
from taskloom.cli.common import JsonFlag, run
from taskloom.cli.output import emit_json, line, table


@tasks_app.command("revisions")
def tasks_revisions(
    task_id: str,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """A task's changes, newest first: revision, action, principal, time, changed fields."""
    page = run(lambda s: s.audit.list(task_id, owner=None, limit=limit, before=None))
    if as_json:
        emit_json(page.model_dump(mode="json"))
        return
    rows = [
        [str(r.revision), r.action, r.principal, r.at.isoformat(), ", ".join(r.diff) or "-"]
        for r in page.revisions
    ]
    table(["revision", "action", "principal", "at", "changed"], rows)


@tasks_app.command("restore")
def tasks_restore(task_id: str, revision: int) -> None:
    """Make a task as one of its revisions defined it (a deleted task is created again)."""
    answer = run(lambda s: s.audit.restore(task_id, revision, owner=None))
    line(f"{answer.task.id}: restored revision {revision} ({answer.message})")
