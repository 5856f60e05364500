"""`taskloom runs ...` (history) and `taskloom run TASK_ID` (run now, in this process)."""

from typing import Annotated, Any

import typer

from taskloom.cli import app, runs_app
from taskloom.cli.common import JsonFlag, run
from taskloom.cli.output import emit_json, err, line, pairs, table, when
from taskloom.domain.runs import RunStatus


@runs_app.command("list")
def runs_list(
    task: Annotated[str | None, typer.Option(help="only this task's runs")] = None,
    status: Annotated[list[RunStatus] | None, typer.Option(help="only these statuses")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Runs, newest first."""

    async def go(s: Any) -> Any:
        return await s.runs.history(
            owner=None, task_id=task, statuses=status or [], limit=limit, cursor=cursor
        )

    page = run(go)
    if as_json:
        from taskloom.answers import brief_run

        emit_json({"runs": [brief_run(r) for r in page.items], "next_cursor": page.next_cursor})
        return
    if not page.items:
        line("No runs yet.")
        return
    # The task's id only when runs of several tasks mix.
    columns = ["run", *([] if task else ["task"]), "status", "trigger", "fire time", "ms", "error"]
    rows = [
        [r.id, *([] if task else [r.task_id]), r.status.value, r.trigger.value,
         when(r.fire_time or r.created_at, "UTC"), str(r.duration_ms or "-"), r.error or ""]
        for r in page.items
    ]  # fmt: skip
    table(columns, rows)


@runs_app.command("show")
def runs_show(run_id: str, as_json: JsonFlag = False) -> None:
    """One run with its step results."""
    found = run(lambda s: s.runs.get(run_id, owner=None))
    if as_json:
        emit_json(found.model_dump(mode="json"))
        return
    _summary(found)
    rows = [[s.id, s.tool, s.status.value, str(s.duration_ms or "-"), s.error or ""]
            for s in found.steps]  # fmt: skip
    if rows:
        table(["step", "tool", "status", "ms", "error"], rows)


def _summary(r: Any) -> None:
    pairs(
        ("run", r.id), ("task", r.task_id), ("status", r.status.value),
        ("trigger", r.trigger.value), ("fired", when(r.fire_time or r.created_at, "UTC")),
        ("took", f"{r.duration_ms} ms" if r.duration_ms is not None else "-"),
        *([("error", r.error)] if r.error else []),
        *([("summary", r.summary)] if r.summary else []),
    )  # fmt: skip


@app.command("run")
def run_now(task_id: str) -> None:
    """Run a task now in this process, showing each step as it goes."""
    from rich.progress import Progress

    async def go(s: Any) -> Any:
        task, run_ = await s.runs.admit_manual(task_id, owner=None)
        if run_.status.value == "queued":
            return run_
        with Progress(console=err, transient=True) as bar:
            progress_line = bar.add_task(task.name, total=len(task.steps))

            async def progress(done: int, total: int, message: str) -> None:
                bar.update(progress_line, completed=done, description=message)

            return await s.runs.execute(task, run_, progress=progress)

    result = run(go)
    if result.status.value == "queued":
        line(f"{result.id}: queued behind the run in progress (the task's overlap is 'queue').")
        return
    colour = "green" if result.status.value == "succeeded" else "red"
    line(f"{result.id}: {result.status.value} in {result.duration_ms} ms", style=colour)
    for step in result.steps:
        line(f"  {step.id} ({step.tool}): {step.status.value} {step.error or ''}".rstrip())
    if result.status.value != "succeeded":
        raise typer.Exit(1)
