"""`taskloom runs prune` (the retention policy, by hand) and the storage lines of
`taskloom status`: the database's size, the oldest run kept, the policy."""

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from taskloom.cli import runs_app
from taskloom.cli.common import JsonFlag, run, settings
from taskloom.cli.output import emit_json, line, table

if TYPE_CHECKING:
    from taskloom.domain.storage import Footprint
    from taskloom.runs.retention import PruneReport


def size(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1024:
        return f"{value:.0f} bytes"
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def _utc(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def storage_lines(fp: "Footprint") -> list[str]:
    """`taskloom status`: the database's size, the oldest run kept, and the policy."""
    from taskloom.runs.retention import RetentionPolicy

    free = f" ({size(fp.free_bytes)} free, reused by new runs)" if fp.free_bytes else ""
    lines = [
        f"Database: {size(fp.database_bytes)}{free}   runs kept: {fp.runs}   "
        f"oldest run kept: {_utc(fp.oldest_run_at)}",
        f"Retention: {RetentionPolicy.from_settings(settings()).describe()}.",
    ]
    if fp.auto_vacuum == "none" and fp.free_bytes:
        lines.append(
            "This SQLite file predates incremental vacuum: `taskloom runs prune --vacuum` gives "
            "the free space back (it locks the database while it runs)."
        )
    return lines


def storage_json(fp: "Footprint") -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(fp)
    data["oldest_run_at"] = fp.oldest_run_at.isoformat() if fp.oldest_run_at else None
    return data


@runs_app.command("prune")
def runs_prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only show what would go")] = False,
    vacuum: Annotated[
        bool, typer.Option("--vacuum", help="then give the space back (locks the database)")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove the runs the retention policy (TASKLOOM_RETENTION_*) lets go, now."""
    report, names, footprint = run(lambda s: _prune(s, dry_run=dry_run, vacuum=vacuum))
    if as_json:
        emit_json({"pruned": report.pruned, "dry_run": dry_run,
                   "per_task": [_prunable_json(p, names) for p in report.per_task],
                   "storage": storage_json(footprint)})  # fmt: skip
        return
    if dry_run:
        _show_prunable(report, names)
        line(f"{report.pruned} runs would be removed (--dry-run: nothing was).")
        return
    line(f"Removed {report.pruned} runs and their step results. Database: "
         f"{size(footprint.database_bytes)}, {footprint.runs} runs kept.")  # fmt: skip


def _show_prunable(report: "PruneReport", names: dict[str, str]) -> None:
    if not report.per_task:
        line("Nothing to prune.")
        return
    rows = [
        [p.task_id, names.get(p.task_id, "(deleted task)"), str(p.runs), str(p.failed),
         _utc(p.oldest), _utc(p.newest)]
        for p in report.per_task
    ]  # fmt: skip
    table(["task", "name", "runs", "failed", "oldest", "newest"], rows,
          title="Runs the retention policy would remove")  # fmt: skip


def _prunable_json(p: Any, names: dict[str, str]) -> dict[str, Any]:
    return {
        "task_id": p.task_id, "name": names.get(p.task_id), "runs": p.runs, "failed": p.failed,
        "oldest": p.oldest.isoformat() if p.oldest else None,
        "newest": p.newest.isoformat() if p.newest else None,
    }  # fmt: skip


async def _prune(
    services: Any, *, dry_run: bool, vacuum: bool
) -> tuple["PruneReport", dict[str, str], "Footprint"]:
    """Prune (or preview) by hand; with `vacuum`, give the space back afterwards."""
    report = await services.retention.prune(dry_run=dry_run)
    names: dict[str, str] = {}
    for p in report.per_task:
        task = await services.store.get_task(p.task_id)
        if task is not None:
            names[p.task_id] = task.name
    if vacuum and not dry_run:
        await services.retention.vacuum()
    return report, names, await services.retention.footprint()
