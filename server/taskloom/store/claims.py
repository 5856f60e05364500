"""The transactions that make scheduling safe across processes: claim a fire, claim a queued run,
renew and sweep leases, and the process registry.

Each runs in one write transaction (`BEGIN IMMEDIATE` on SQLite; row locks on PostgreSQL), so two
processes that race for the same fire or the same queued run cannot both win. On PostgreSQL every
transaction that locks rows takes them in one order: tasks by id, then runs by id (the recorder
too), so claims, sweeps and final records never deadlock. What a fire or a swept run turns into
is decided by the pure domain (`plan_fire`, `retry_run`, `apply_run`) under the lock.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, or_, update
from sqlalchemy import select as rows_of  # Core rows (sqlmodel.select types entities)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from taskloom.domain.outcome import Outcome
from taskloom.domain.planning import plan_fire
from taskloom.domain.retry import retry_run
from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.storage import Claimed, ClaimResult, FireContext, ProcessInfo
from taskloom.domain.tasks import Task, TaskStatus
from taskloom.store.database import Database
from taskloom.store.priority import queue_order
from taskloom.store.records import apply_outcome
from taskloom.store.tables import ProcessRow, RunRow, StepResultRow, TaskRow, task_of

ACTIVE = (RunStatus.RUNNING.value, RunStatus.QUEUED.value)
RUNS: Table = RunRow.__table__  # type: ignore[attr-defined]
TASKS: Table = TaskRow.__table__  # type: ignore[attr-defined]
# A claimed fire moves its task on (the values were read under the same lock; unchanged ones
# are written back as read).
_MOVE_TASK = update(TASKS).where(TASKS.c.id == bindparam("b_id"))


class Claims:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.dialect = db.dialect

    async def claim_fires(
        self, due: dict[str, datetime], context: FireContext
    ) -> dict[str, ClaimResult]:
        """For each task whose timer went off at `due[task_id]`, record what that fire turns
        into, once, in one transaction. A task another process (or an edit) already moved on
        maps to its current next fire time instead (None: nothing scheduled)."""
        ids = sorted(due)  # one lock order for every process: no deadlocks
        async with self.db.transaction() as conn:
            # Core rows and statements for the whole batch, not an ORM instance (and a flush)
            # per task: the write lock is held meanwhile, and per-task round trips made a
            # burst's claim take seconds.
            query = self.dialect.locked(
                rows_of(TASKS).where(TASKS.c.id.in_(ids)).order_by(TASKS.c.id)
            )
            rows = {r._mapping["id"]: r for r in (await conn.execute(query)).all()}
            counts = await self._in_flight_many(conn, ids)
            runs: list[dict[str, Any]] = []
            moved: list[dict[str, Any]] = []
            claimed = {
                task_id: self._claim_one(
                    rows.get(task_id), due[task_id], context, counts.get(task_id, {}), runs, moved
                )
                for task_id in ids
            }
            if moved:  # tasks first, then runs: the lock order of every transaction
                await conn.execute(_MOVE_TASK, moved)
            if runs:  # the batch's runs in one Core executemany, no model instance per run
                await conn.execute(insert(RUNS), runs)
            return claimed

    async def _in_flight_many(
        self, conn: AsyncConnection, ids: list[str]
    ) -> dict[str, dict[str, int]]:
        rows = await conn.execute(
            rows_of(RUNS.c.task_id, RUNS.c.status, func.count())
            .where(RUNS.c.task_id.in_(ids))
            .where(RUNS.c.status.in_(ACTIVE))
            .group_by(RUNS.c.task_id, RUNS.c.status)
        )
        counts: dict[str, dict[str, int]] = {}
        for task_id, status, count in rows.all():
            counts.setdefault(task_id, {})[status] = count
        return counts

    def _claim_one(
        self,
        row: Any,
        expected: datetime,
        context: FireContext,
        counts: dict[str, int],
        runs: list[dict[str, Any]],
        moved: list[dict[str, Any]],
    ) -> ClaimResult:
        """`row`: the task's Core row (None: deleted). The fire's runs go to `runs`, the task's
        new fire-time fields to `moved` (column values for `_MOVE_TASK`)."""
        if row is None:
            return None
        values = row._mapping  # not row.<name>: a Core row's attribute lookup raises first
        if values["status"] != TaskStatus.ACTIVE.value:
            return None
        if values["next_fire_at"] != expected:
            return cast(datetime | None, values["next_fire_at"])
        busy = counts.get(RunStatus.RUNNING.value, 0)
        queued = counts.get(RunStatus.QUEUED.value, 0)
        task = task_of(row)
        plan = plan_fire(
            task, context.now, busy=busy, queued=queued, new_run=context.new_run(task),
            why_late=context.why_late,
        )  # fmt: skip
        runs += [RunRow.values(run, values["owner"]) for run in plan.runs]
        moved.append(
            {
                "b_id": task.id,
                "next_fire_at": plan.next_fire_at,
                "status": TaskStatus.FINISHED.value if plan.finished else values["status"],
                "last_attempt_at": (
                    plan.to_start[-1].started_at if plan.to_start else values["last_attempt_at"]
                ),
            }
        )
        return Claimed(task=task, plan=plan)

    async def claim_queued(
        self, holder: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[tuple[Task, Run]]:
        """Take up to `limit` queued runs that are due, oldest first: at most one per task with
        no run going, as many as due for an `overlap: allow` task (its retries must not wait for
        its other runs). Their tasks are locked first (in id order, as in claim_fires), then the
        runs, so a fire or another process cannot start one meanwhile."""
        if not await self._any_queued(now):  # the idle poll stays a read: no write lock
            return []
        claimed: list[tuple[Task, Run]] = []
        async with self.db.write() as s:
            found = (await s.exec(self._queued(now, limit))).all()
            tasks = await self._lock_tasks(s, {task_id for _, task_id in found})
            candidates = await self._lock_queued(s, [run_id for run_id, _ in found])
            busy = await self._running_tasks(s, list(tasks))
            for row in candidates:
                task_row = tasks.get(row.task_id)
                # A finished task (its one-shot fired, max_runs reached) still takes retries.
                if task_row is None or task_row.status == TaskStatus.PAUSED.value:
                    _cancel_unstartable(row, task_row, now)
                    continue
                one_at_a_time = task_row.spec.get("overlap") != "allow"
                if one_at_a_time and row.task_id in busy:
                    continue
                if one_at_a_time:
                    busy.add(row.task_id)
                row.status, row.lease_owner = RunStatus.RUNNING.value, holder
                row.lease_expires_at, row.started_at = lease_until, now
                task_row.last_attempt_at = now
                claimed.append((task_row.to_domain(), row.to_domain()))
        return claimed

    def _queued(self, now: datetime, limit: int) -> Any:
        """(run id, task id) of the due queued runs a process may start, in queue order:
        priority with ageing (`domain/priority.py`), then fire order."""
        busy_tasks = select(RunRow.task_id).where(RunRow.status == RunStatus.RUNNING.value)
        allow = select(TaskRow.id).where(TaskRow.spec["overlap"].as_string() == "allow")
        return (
            select(RunRow.id, RunRow.task_id)
            .outerjoin(TaskRow, col(TaskRow.id) == col(RunRow.task_id))
            .where(RunRow.status == RunStatus.QUEUED.value)
            .where((col(RunRow.not_before).is_(None)) | (col(RunRow.not_before) <= now))
            .where(or_(col(RunRow.task_id).not_in(busy_tasks), col(RunRow.task_id).in_(allow)))
            .order_by(*queue_order(self.dialect))
            .limit(limit)
        )

    async def _lock_queued(self, s: AsyncSession, run_ids: list[str]) -> list[RunRow]:
        """The runs still queued, locked in id order (skipping those another process is taking),
        returned oldest first."""
        if not run_ids:
            return []
        query = (
            select(RunRow)
            .where(col(RunRow.id).in_(run_ids))
            .where(RunRow.status == RunStatus.QUEUED.value)
            .order_by(col(RunRow.id))
        )
        rows = {row.id: row for row in (await s.exec(self.dialect.skip_locked(query))).all()}
        return [rows[run_id] for run_id in run_ids if run_id in rows]

    async def _any_queued(self, now: datetime) -> bool:
        async with self.db.read() as s:
            found = await s.exec(
                select(RunRow.id)
                .where(RunRow.status == RunStatus.QUEUED.value)
                .where((col(RunRow.not_before).is_(None)) | (col(RunRow.not_before) <= now))
                .limit(1)
            )
            return found.first() is not None

    async def _lock_tasks(self, s: AsyncSession, task_ids: set[str]) -> dict[str, TaskRow]:
        if not task_ids:
            return {}
        query = select(TaskRow).where(col(TaskRow.id).in_(task_ids)).order_by(col(TaskRow.id))
        return {row.id: row for row in (await s.exec(self.dialect.locked(query))).all()}

    async def _running_tasks(self, s: AsyncSession, task_ids: list[str]) -> set[str]:
        if not task_ids:
            return set()
        rows = await s.exec(
            select(RunRow.task_id)
            .where(col(RunRow.task_id).in_(task_ids))
            .where(RunRow.status == RunStatus.RUNNING.value)
        )
        return set(rows.all())

    async def renew_leases(self, holder: str, run_ids: Sequence[str], until: datetime) -> set[str]:
        """Extend this process's leases; returns the ids it still holds (the rest were
        cancelled or swept by someone else). The rows are locked in id order first."""
        if not run_ids:
            return set()
        async with self.db.write() as s:
            query = (
                select(RunRow.id)
                .where(col(RunRow.id).in_(sorted(run_ids)))
                .where(RunRow.lease_owner == holder)
                .where(RunRow.status == RunStatus.RUNNING.value)
                .order_by(col(RunRow.id))
            )
            held = list((await s.exec(self.dialect.locked(query))).all())
            if held:
                await s.exec(
                    update(RunRow).where(col(RunRow.id).in_(held)).values(lease_expires_at=until)
                )
            return set(held)

    async def sweep_expired(self, now: datetime) -> list[Run]:
        """Runs whose holder stopped renewing: recorded `interrupted`, retried per policy.
        Found without locks, then their tasks are locked and the runs (checked again), each in
        id order, as every other transaction locks them."""
        async with self.db.read() as s:
            found = (
                await s.exec(
                    select(RunRow.task_id)
                    .where(RunRow.status == RunStatus.RUNNING.value)
                    .where(col(RunRow.lease_expires_at) < now)
                )
            ).all()
        if not found:
            return []
        swept: list[Run] = []
        async with self.db.write() as s:
            tasks = await self._lock_tasks(s, set(found))
            query = (
                select(RunRow)
                .where(col(RunRow.task_id).in_(sorted(set(found))))
                .where(RunRow.status == RunStatus.RUNNING.value)
                .where(col(RunRow.lease_expires_at) < now)
                .order_by(col(RunRow.id))
            )
            for row in (await s.exec(self.dialect.locked(query))).all():
                swept.append(await self._sweep_one(s, row, tasks.get(row.task_id), now))
        return swept

    async def _sweep_one(
        self,
        s: AsyncSession,
        row: RunRow,
        task_row: TaskRow | None,
        now: datetime,
    ) -> Run:
        run = await self._interrupt(s, row, now)
        if task_row is not None:
            task = task_row.to_domain()
            await apply_outcome(s, run, _outcome(task))
            again = retry_run(task, run, now)
            if again is not None:
                s.add(RunRow.from_domain(again, row.owner))
        return run

    async def _interrupt(self, s: AsyncSession, row: RunRow, now: datetime) -> Run:
        row.status = RunStatus.INTERRUPTED.value
        row.finished_at = now
        row.error = (
            f"Interrupted: the process running it ({row.lease_owner}) stopped renewing its "
            "lease, most likely because it exited or was killed."
        )
        if row.started_at is not None:
            row.duration_ms = int((now - row.started_at).total_seconds() * 1000)
        steps = await s.exec(select(StepResultRow).where(StepResultRow.run_id == row.id))
        for step in steps.all():
            if step.status in ("pending", "running"):
                step.status = "cancelled" if step.status == "running" else "skipped"
        return row.to_domain()

    # -- processes ---------------------------------------------------------------------------

    async def heartbeat(self, info: ProcessInfo) -> None:
        async with self.db.write() as s:
            row = await s.get(ProcessRow, info.id)
            if row is None:
                s.add(ProcessRow(**info.__dict__))
            else:
                row.heartbeat_at = info.heartbeat_at

    async def forget_process(self, process_id: str) -> None:
        async with self.db.write() as s:
            await s.exec(delete(ProcessRow).where(col(ProcessRow.id) == process_id))

    async def forget_dead(self, before: datetime) -> list[str]:
        """Remove the rows of processes whose last heartbeat is older than `before` (killed:
        a process that stops gracefully removes its own); returns their ids."""
        stale = select(ProcessRow.id).where(col(ProcessRow.heartbeat_at) < before)
        async with self.db.read() as s:
            if not (await s.exec(stale.limit(1))).first():  # the usual case stays a read
                return []
        async with self.db.write() as s:
            gone = list((await s.exec(stale)).all())
            await s.exec(delete(ProcessRow).where(col(ProcessRow.id).in_(gone)))
        return gone

    async def processes(self, alive_since: datetime) -> list[ProcessInfo]:
        async with self.db.read() as s:
            rows = await s.exec(
                select(ProcessRow).where(col(ProcessRow.heartbeat_at) >= alive_since)
            )
            return [ProcessInfo(**r.model_dump()) for r in rows.all()]

    async def scheduled(self) -> list[tuple[str, datetime]]:
        """Every active task's next fire time (what the timer is rebuilt from)."""
        query = (
            select(TaskRow.id, TaskRow.next_fire_at)
            .where(TaskRow.status == TaskStatus.ACTIVE.value)
            .where(col(TaskRow.next_fire_at).is_not(None))
        )
        async with self.db.reading() as c:  # Core rows: no ORM session per rebuild
            rows = (await c.execute(query)).all()
        return [(task_id, at) for task_id, at in rows if at is not None]


def _cancel_unstartable(row: RunRow, task: TaskRow | None, now: datetime) -> None:
    """A queued run (retry, catch-up, overlap 'queue') whose task is gone or paused."""
    row.status, row.finished_at = RunStatus.CANCELLED.value, now
    if task is None:
        row.error = "Cancelled: its task was deleted before the run could start."
    else:
        row.error = (
            "Cancelled: its task was paused before this queued run could start; resume_task "
            "lets future fires run again."
        )


def _outcome(task: Task) -> Outcome:
    return Outcome(pause_on_failure=task.pause_on_failure, max_runs=task.max_runs)
