"""What the command line says about retention: `taskloom runs prune` and the storage lines of
`taskloom status`. Kept apart from the commands' wiring so the CLI module only registers them."""

from datetime import datetime
from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from taskloom.domain.storage import Footprint
    from taskloom.runs.retention import PruneReport, RetentionPolicy
    from taskloom.services import Services


def size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024  # type: ignore[assignment]
    return f"{value} GB"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def storage_lines(fp: "Footprint", policy: "RetentionPolicy") -> list[str]:
    """`taskloom status`: the database's size, the oldest run kept, and the policy."""
    lines = [
        f"Database: {size(fp.database_bytes)}"
        + (f" ({size(fp.free_bytes)} free, reused by new runs)" if fp.free_bytes else "")
        + f"   runs kept: {fp.runs}   oldest run kept: {_when(fp.oldest_run_at)}",
        f"Retention: {policy.describe()}.",
    ]
    if fp.auto_vacuum == "none" and fp.free_bytes:
        lines.append(
            "This SQLite file predates incremental vacuum: `taskloom runs prune --vacuum` gives "
            "the free space back (it locks the database while it runs)."
        )
    return lines


def prune_table(report: "PruneReport", names: dict[str, str]) -> Table:
    table = Table(title="Runs the retention policy would remove")
    for column in ("task", "name", "runs", "failed", "oldest", "newest"):
        table.add_column(
            column, no_wrap=column == "task", min_width=30 if column == "task" else None
        )
    for p in report.per_task:
        table.add_row(
            p.task_id, names.get(p.task_id, "(deleted task)"), str(p.runs), str(p.failed),
            _when(p.oldest), _when(p.newest),
        )  # fmt: skip
    return table


async def prune(
    services: "Services", *, dry_run: bool, vacuum: bool
) -> tuple["PruneReport", dict[str, str], "Footprint"]:
    """Prune (or preview) by hand; with `vacuum`, give the space back afterwards."""
    assert services.retention is not None
    report = await services.retention.prune(dry_run=dry_run)
    names: dict[str, str] = {}
    for p in report.per_task:
        task = await services.store.get_task(p.task_id)
        if task is not None:
            names[p.task_id] = task.name
    if vacuum and not dry_run:
        await services.retention.vacuum()
    return report, names, await services.retention.footprint()
