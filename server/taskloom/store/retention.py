"""Retention SQL: which finished runs a policy lets go, deleting them (with their step results)
in small batches, giving the space back, and the figures `taskloom status` shows. Both dialects
are handled here and nowhere else.

A run is pruned only when it is finished (never `queued` or `running`: the DELETE itself checks
again, so a run that changed meanwhile stays), older than its cutoff (failed and interrupted runs
have their own, longer one), and not among its task's newest `keep_last` finished runs. Run ids
sort in creation order (`ids.new_id`), so "the newest M" is "id at or above the M-th newest id",
found on the index `ix_runs_task_id_id`.

Space: on SQLite a deleted page goes to the file's free list and is reused by later runs; the
file shrinks only by a vacuum. A database made by this version has `auto_vacuum=INCREMENTAL`
(set in `Store` before its first table), so each pruned batch gives back up to
`VACUUM_PAGES_PER_BATCH` pages with `PRAGMA incremental_vacuum`, a short write like any other.
An older database has `auto_vacuum=NONE`, which only a full `VACUUM` can change: that rewrites
the whole file under an exclusive lock, so it is never run by the scheduler, only asked for by
hand (`taskloom runs prune --vacuum`, which also switches the file to incremental). On PostgreSQL
deleted rows are reused once (auto)vacuum has seen them; `--vacuum` runs a plain `VACUUM` of the
two tables (no exclusive lock; it does not shrink the files, which only `VACUUM FULL` does).
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, case, delete, false, func, or_, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select

from taskloom.domain.runs import RunStatus
from taskloom.domain.storage import Cutoffs, Footprint, Prunable
from taskloom.store.database import Database
from taskloom.store.tables import RunRow, StepResultRow

# Never pruned, whatever their age: a run still to start or still going.
LIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
# Kept for the failed cutoff: the runs whose error someone may still come looking for.
FAILED = (RunStatus.FAILED.value, RunStatus.INTERRUPTED.value)
# Pages an incremental vacuum gives back after one pruned batch (4 KiB pages: 8 MB).
VACUUM_PAGES_PER_BATCH = 2000


class RetentionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def tasks_with_runs(self) -> list[str]:
        """Every task id that has runs, deleted tasks' included."""
        query = select(col(RunRow.task_id)).distinct().order_by(col(RunRow.task_id))
        async with self.db.read() as s:
            return list((await s.exec(query)).all())

    async def keep_from(self, task_id: str, keep_last: int) -> str | None:
        """The id of the task's `keep_last`-th newest finished run (it and newer ones stay), or
        None when the task has no more finished runs than that (all stay)."""
        if keep_last <= 0:
            return None
        query = (
            select(col(RunRow.id))
            .where(col(RunRow.task_id) == task_id)
            .where(col(RunRow.status).not_in(LIVE))
            .order_by(col(RunRow.id).desc())
            .offset(keep_last - 1)
            .limit(1)
        )
        async with self.db.read() as s:
            return (await s.exec(query)).first()

    async def prune_batch(
        self, task_id: str, cutoffs: Cutoffs, keep_from: str | None, batch: int
    ) -> int:
        """Delete up to `batch` of the task's prunable runs (oldest first) and their step
        results in one short transaction; return how many runs went."""
        where = _prunable(task_id, cutoffs, keep_from)
        async with self.db.read() as s:
            ids = list((await s.exec(select(col(RunRow.id)).where(where).limit(batch))).all())
        if not ids:
            return 0
        async with self.db.transaction() as conn:
            # The status is checked again here: a run picked above that moved meanwhile stays.
            again = and_(col(RunRow.id).in_(ids), col(RunRow.status).not_in(LIVE))
            gone = select(col(RunRow.id)).where(again)
            await conn.execute(delete(StepResultRow).where(col(StepResultRow.run_id).in_(gone)))
            result = await conn.execute(delete(RunRow).where(again))
        await self._give_back()
        return int(result.rowcount or 0)

    async def _give_back(self) -> None:
        """SQLite in incremental mode: return up to VACUUM_PAGES_PER_BATCH free pages to the
        operating system, in a write of its own (a no-op in the other modes)."""
        if self.db.dialect.name != "sqlite":
            return
        async with self.db.writer() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            if (await (await raw.execute("PRAGMA auto_vacuum")).fetchone()) != (2,):
                return
            # Run to completion: a plain execute steps once and so frees one page.
            await raw.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES_PER_BATCH});")

    async def prunable(self, task_id: str, cutoffs: Cutoffs, keep_from: str | None) -> Prunable:
        where = _prunable(task_id, cutoffs, keep_from)
        failed = func.sum(case((col(RunRow.status).in_(FAILED), 1), else_=0))
        query = select(
            func.count(), failed, func.min(col(RunRow.created_at)), func.max(_ended_at())
        ).where(where)
        async with self.db.read() as s:
            count, failed_count, oldest, newest = (await s.exec(query)).one()
        return Prunable(task_id, int(count), int(failed_count or 0), _aware(oldest), _aware(newest))

    async def footprint(self) -> Footprint:
        async with self.db.read() as s:
            runs, oldest = (
                await s.exec(select(func.count(), func.min(col(RunRow.created_at))))
            ).one()
            conn = await s.connection()
            if self.db.dialect.name == "sqlite":
                page = await _pragma(conn, "page_size")
                size = page * await _pragma(conn, "page_count")
                free = page * await _pragma(conn, "freelist_count")
                mode = {0: "none", 1: "full", 2: "incremental"}.get(
                    await _pragma(conn, "auto_vacuum")
                )
                return Footprint(size, free, int(runs), _aware(oldest), mode)
            pg_size = (
                await conn.execute(text("SELECT pg_database_size(current_database())"))
            ).scalar()
        return Footprint(int(pg_size or 0), None, int(runs), _aware(oldest), None)

    async def vacuum(self) -> None:
        """Give the free space back to the operating system now (see the module docstring)."""
        if self.db.dialect.name == "sqlite":
            async with self.db.writer() as conn:
                raw = await conn.get_raw_connection()
                # VACUUM cannot run in a transaction; the switch to incremental takes effect
                # with it, so later prunes give space back batch by batch.
                await raw.driver_connection.execute("PRAGMA auto_vacuum=INCREMENTAL")  # type: ignore[union-attr]
                await raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
            return
        auto = self.db._write_engine().execution_options(isolation_level="AUTOCOMMIT")
        async with self.db._guard(), auto.connect() as conn:
            await conn.execute(text("VACUUM (ANALYZE) runs, step_results"))


def _prunable(task_id: str, cutoffs: Cutoffs, keep_from: str | None) -> ColumnElement[bool]:
    """The WHERE clause of one task's prunable runs under `cutoffs`."""
    ended = _ended_at()
    failed = col(RunRow.status).in_(FAILED)
    by_age: list[ColumnElement[bool]] = []
    if cutoffs.before is not None:
        by_age.append(and_(~failed, ended < cutoffs.before))
    if cutoffs.failed_before is not None:
        by_age.append(and_(failed, ended < cutoffs.failed_before))
    clauses: Sequence[ColumnElement[bool]] = [
        col(RunRow.task_id) == task_id,
        col(RunRow.status).not_in(LIVE),
        or_(*by_age) if by_age else false(),
    ]
    if cutoffs.keep_last > 0:
        if keep_from is None:
            return false()
        clauses = [*clauses, col(RunRow.id) < keep_from]
    return and_(*clauses)


def _ended_at() -> ColumnElement[datetime]:
    return func.coalesce(col(RunRow.finished_at), col(RunRow.created_at))


async def _pragma(conn: AsyncConnection, name: str) -> int:
    return int((await conn.exec_driver_sql(f"PRAGMA {name}")).scalar() or 0)


def _aware(value: object) -> datetime | None:
    """min()/max() over a column come back as the driver gives them (SQLite: text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
