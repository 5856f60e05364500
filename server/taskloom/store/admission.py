"""Admitting runs that a principal asks for (run_task, emit_event, POST /events): the task's
overlap policy and the principal's quotas are checked in the same write transaction that inserts
the run, so concurrent requests cannot all slip past a limit.

SQLite serialises every write transaction (`BEGIN IMMEDIATE`); on PostgreSQL the principal's
admissions are serialised by a transaction-scoped advisory lock, and the task row is locked as the
scheduler's claims lock it, so a fire and a manual run of one task cannot both see it idle.
"""

import asyncio
import weakref
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.storage import MakeRun, Quotas
from taskloom.domain.tasks import Task, TaskStatus
from taskloom.errors import NotFound, QuotaExceeded
from taskloom.ids import first_id_at
from taskloom.store.database import Database
from taskloom.store.tables import RunRow, TaskRow

RATE_WINDOW = timedelta(minutes=1)
_ADVISORY_NAMESPACE = 7300502


class Admission:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.dialect = db.dialect
        self._task_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def admit_manual(
        self, task_id: str, owner: str | None, now: datetime, quotas: Quotas, make: MakeRun
    ) -> tuple[Task, Run]:
        """Record the run `make` plans for the task (overlap policy), within quotas.

        A burst for one task is taken one at a time in this process, each first checked with a
        read: once a run is going, the rest are refused without queueing for the write lock
        (which would starve everyone's writes). The write transaction decides, across
        processes too."""
        async with self._task_lock(task_id):
            async with self.db.read() as s:
                row = await self._task(s, task_id, owner, lock=False)
                make(row.to_domain(), *await self._task_in_flight(s, row.id))
            return await self._admit_one(task_id, owner, now, quotas, make)

    async def _admit_one(
        self, task_id: str, owner: str | None, now: datetime, quotas: Quotas, make: MakeRun
    ) -> tuple[Task, Run]:
        async with self.db.write() as s:
            row = await self._task(s, task_id, owner)
            await self._lock_owner(s, row.owner)
            await _check_rate(s, quotas, row.owner, now, 1)
            run = make(row.to_domain(), *await self._task_in_flight(s, row.id))
            await _check_slots(s, quotas, row.owner, run.status)
            self._insert(s, row, run)
            return row.to_domain(), run

    async def admit_event(
        self, name: str, owner: str | None, now: datetime, quotas: Quotas, make: MakeRun
    ) -> list[tuple[Task, Run]]:
        """One run per active task listening to `name`, each under its overlap policy; a run
        over the concurrent or queued quota is recorded as skipped, saying which."""
        query = (
            select(TaskRow)
            .where(TaskRow.event_name == name)
            .where(TaskRow.status == TaskStatus.ACTIVE.value)
            .order_by(col(TaskRow.id))
        )
        if owner is not None:
            query = query.where(TaskRow.owner == owner)
        admitted: list[tuple[Task, Run]] = []
        async with self.db.write() as s:
            rows = list((await s.exec(self.dialect.locked(query))).all())
            for principal in sorted({r.owner for r in rows}):
                await self._lock_owner(s, principal)
                adding = sum(r.owner == principal for r in rows)
                await _check_rate(s, quotas, principal, now, adding)
            for row in rows:
                run = make(row.to_domain(), *await self._task_in_flight(s, row.id))
                run = await _within_slots(s, quotas, row.owner, run)
                self._insert(s, row, run)
                admitted.append((row.to_domain(), run))
        return admitted

    # -- queries -----------------------------------------------------------------------------

    async def _task(
        self, s: AsyncSession, task_id: str, owner: str | None, *, lock: bool = True
    ) -> TaskRow:
        query = select(TaskRow).where(col(TaskRow.id) == task_id)
        query = self.dialect.locked(query) if lock else query
        row: TaskRow | None = (await s.exec(query)).first()
        if row is None or (owner is not None and row.owner != owner):
            raise NotFound("task", task_id, "Call list_tasks to see the ids of your tasks.")
        return row

    async def _task_in_flight(self, s: AsyncSession, task_id: str) -> tuple[int, int]:
        rows = await s.exec(
            select(RunRow.status, func.count())
            .where(RunRow.task_id == task_id)
            .where(col(RunRow.status).in_([RunStatus.RUNNING.value, RunStatus.QUEUED.value]))
            .group_by(col(RunRow.status))
        )
        counts = dict(rows.all())
        return counts.get(RunStatus.RUNNING.value, 0), counts.get(RunStatus.QUEUED.value, 0)

    async def _lock_owner(self, s: AsyncSession, owner: str) -> None:
        await self.dialect.lock_key(await s.connection(), _ADVISORY_NAMESPACE, owner)

    def _task_lock(self, task_id: str) -> asyncio.Lock:
        lock = self._task_locks.get(task_id)
        if lock is None:
            lock = self._task_locks[task_id] = asyncio.Lock()
        return lock

    @staticmethod
    def _insert(s: AsyncSession, row: TaskRow, run: Run) -> None:
        s.add(RunRow.from_domain(run, row.owner))
        if run.status == RunStatus.RUNNING:
            row.last_attempt_at = run.started_at


# -- the checks: quotas, counted in the admitting transaction --------------------------------


async def _check_rate(
    s: AsyncSession, quotas: Quotas, owner: str, now: datetime, adding: int
) -> None:
    limit = quotas.per_minute
    recent = await _count(s, owner, since=now - RATE_WINDOW, cap=limit)
    if recent + adding > limit:
        raise QuotaExceeded(
            f"Principal {owner!r} started {recent} runs in the last minute; starting "
            f"{adding} more would pass the quota of {limit} runs per minute "
            f"(TASKLOOM_MAX_RUNS_PER_MINUTE). Nothing was started; try again in a minute."
        )


async def _check_slots(s: AsyncSession, quotas: Quotas, owner: str, status: RunStatus) -> None:
    refusal = await _slot_refusal(s, quotas, owner, status)
    if refusal is not None:
        raise QuotaExceeded(f"{refusal} Nothing was started.")


async def _within_slots(s: AsyncSession, quotas: Quotas, owner: str, run: Run) -> Run:
    refusal = await _slot_refusal(s, quotas, owner, run.status)
    if refusal is None:
        return run
    return run.model_copy(
        update={
            "status": RunStatus.SKIPPED,
            "started_at": None,
            "lease_owner": None,
            "lease_expires_at": None,
            "finished_at": run.created_at,
            "error": f"Skipped: {refusal}",
        }
    )


async def _slot_refusal(
    s: AsyncSession, quotas: Quotas, owner: str, status: RunStatus
) -> str | None:
    if status == RunStatus.RUNNING:
        limit, setting, word = quotas.concurrent, "MAX_CONCURRENT_RUNS", "running"
    elif status == RunStatus.QUEUED:
        limit, setting, word = quotas.queued, "MAX_QUEUED_RUNS", "queued"
    else:
        return None
    count = await _count(s, owner, status=status, cap=limit)
    if count < limit:
        return None
    return (
        f"principal {owner!r} already has {count} runs {word}, its quota "
        f"(TASKLOOM_{setting}={limit}); wait for some to finish or ask the operator to "
        "raise it."
    )


async def _count(
    s: AsyncSession,
    owner: str,
    *,
    cap: int,
    status: RunStatus | None = None,
    since: datetime | None = None,
) -> int:
    """The owner's runs with `status` or made `since`, counted up to `cap` (index ranges)."""
    query = select(col(RunRow.id)).where(col(RunRow.owner) == owner)
    if status is not None:
        query = query.where(col(RunRow.status) == status.value)
    if since is not None:
        query = query.where(col(RunRow.id) >= first_id_at("run", since))
        query = query.where(col(RunRow.status) != RunStatus.MISSED.value)
    capped = query.limit(cap + 1).subquery()
    return int(await s.scalar(select(func.count()).select_from(capped)) or 0)
