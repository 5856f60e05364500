"""Tasks and runs as records: insert, read, page, change, delete. Each method is one short
transaction; the transactions that decide who runs what live in `claims.py`, `admission.py` and
`recorder.py`."""

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import delete, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from taskloom.domain.outcome import OUTCOME_FIELDS, Outcome, apply_run
from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.storage import Page, decode_cursor, encode_cursor
from taskloom.domain.tasks import Task
from taskloom.errors import Conflict
from taskloom.store.database import TASKS_REVISION, Database, bump
from taskloom.store.tables import CounterRow, RunRow, StepResultRow, TaskRow

# Written only by finishing runs, so an edit made from a stale read never rolls them back.
RUN_OWNED_TASK_FIELDS = {
    "last_attempt_at",
    "last_run_at",
    "last_run_status",
    "last_summary",
    "last_error",
    "run_count",
}
FINISHED_RUN_STATUSES = [RunStatus.SUCCEEDED.value, RunStatus.FAILED.value]
Item = TypeVar("Item", Task, Run)


class Records:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- tasks -------------------------------------------------------------------------------

    async def add_task(self, task: Task, *, max_per_owner: int) -> None:
        async with self.db.write() as s:
            # Counts at most up to the limit (ix_tasks_owner_id), not all the owner's tasks.
            mine = select(col(TaskRow.id)).where(col(TaskRow.owner) == task.owner)
            capped = mine.limit(max_per_owner).subquery()
            count = await s.scalar(select(func.count()).select_from(capped))
            if (count or 0) >= max_per_owner:
                raise Conflict(
                    f"Owner {task.owner!r} already has {count} tasks, the limit "
                    f"(TASKLOOM_MAX_TASKS_PER_OWNER={max_per_owner}). Delete unused tasks first."
                )
            s.add(TaskRow.from_domain(task))
            await bump(s)

    async def get_task(self, task_id: str, owner: str | None = None) -> Task | None:
        async with self.db.read() as s:
            row = await s.get(TaskRow, task_id)
        if row is None or (owner is not None and row.owner != owner):
            return None
        return row.to_domain()

    async def task_named(self, owner: str, name: str) -> str | None:
        """The id of `owner`'s task called `name` (ignoring case), or None."""
        query = (
            select(col(TaskRow.id))
            .where(col(TaskRow.owner) == owner)
            .where(func.lower(col(TaskRow.name)) == name.lower())
            .limit(1)
        )
        async with self.db.read() as s:
            return (await s.exec(query)).first()

    async def list_tasks(
        self,
        *,
        owner: str | None,
        status: str | None = None,
        name_contains: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Task]:
        query = select(TaskRow).order_by(col(TaskRow.id)).limit(limit + 1)
        if owner is not None:
            query = query.where(col(TaskRow.owner) == owner)
        if status:
            query = query.where(col(TaskRow.status) == status)
        if name_contains:
            query = query.where(func.lower(col(TaskRow.name)).contains(name_contains.lower()))
        after = decode_cursor(cursor, "tsk")
        if after:
            query = query.where(col(TaskRow.id) > after)
        async with self.db.read() as s:
            rows = list((await s.exec(query)).all())
        return _page([r.to_domain() for r in rows], limit)

    async def save_task(self, task: Task, *, expected_revision: int | None = None) -> Task:
        """Write the whole task; with expected_revision, refuse if someone changed it meanwhile."""
        async with self.db.write() as s:
            row = await s.get(TaskRow, task.id)
            if row is None:
                raise Conflict(f"Task {task.id!r} was deleted meanwhile; nothing was saved.")
            if expected_revision is not None and row.revision != expected_revision:
                raise Conflict(
                    f"Task {task.id!r} changed meanwhile (revision {row.revision}, you edited "
                    f"{expected_revision}). Fetch it with get_task and apply your change again."
                )
            fresh = TaskRow.from_domain(task)
            for name, value in fresh.model_dump(exclude=RUN_OWNED_TASK_FIELDS).items():
                setattr(row, name, value)
            await bump(s)
        return task

    async def delete_task(self, task_id: str, *, delete_runs: bool) -> int:
        """Remove the task; returns how many runs were removed with it."""
        async with self.db.write() as s:
            await s.exec(delete(TaskRow).where(col(TaskRow.id) == task_id))
            removed = 0
            if delete_runs:
                run_ids = select(col(RunRow.id)).where(col(RunRow.task_id) == task_id)
                await s.exec(delete(StepResultRow).where(col(StepResultRow.run_id).in_(run_ids)))
                result = await s.exec(delete(RunRow).where(col(RunRow.task_id) == task_id))
                removed = result.rowcount
            await bump(s)
        return removed

    async def tasks_revision(self) -> int:
        async with self.db.read() as s:
            row = await s.get(CounterRow, TASKS_REVISION)
        return row.value if row else 0

    # -- runs --------------------------------------------------------------------------------

    async def add_run(self, run: Run, *, owner: str) -> None:
        async with self.db.write() as s:
            s.add(RunRow.from_domain(run, owner))
            for step in run.steps:
                s.add(StepResultRow.from_domain(run.id, step))

    async def get_run(self, run_id: str, owner: str | None = None) -> Run | None:
        async with self.db.read() as s:
            row = await s.get(RunRow, run_id)
            if row is None or (owner is not None and row.owner != owner):
                return None
            steps = await s.exec(
                select(StepResultRow)
                .where(col(StepResultRow.run_id) == run_id)
                .order_by(col(StepResultRow.index))
            )
            return row.to_domain([st.to_domain() for st in steps])

    async def list_runs(
        self,
        *,
        owner: str | None,
        task_id: str | None = None,
        statuses: Sequence[RunStatus] = (),
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[Run]:
        """Newest first; step results are not loaded (use get_run)."""
        query = select(RunRow).order_by(col(RunRow.id).desc()).limit(limit + 1)
        if owner is not None:
            query = query.where(col(RunRow.owner) == owner)
        if task_id:
            query = query.where(col(RunRow.task_id) == task_id)
        if statuses:
            query = query.where(col(RunRow.status).in_([s.value for s in statuses]))
        before = decode_cursor(cursor, "run")
        if before:
            query = query.where(col(RunRow.id) < before)
        async with self.db.read() as s:
            rows = list((await s.exec(query)).all())
        return _page([r.to_domain() for r in rows], limit)

    async def update_run_status(
        self, run_id: str, status: RunStatus, *, when: datetime, error: str | None = None
    ) -> bool:
        async with self.db.write() as s:
            result = await s.exec(
                update(RunRow)
                .where(col(RunRow.id) == run_id)
                .where(col(RunRow.status).in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]))
                .values(status=status.value, finished_at=when, error=error)
            )
            return bool(result.rowcount)

    async def start_run(self, run: Run, *, owner: str) -> None:
        """Insert a run that this process already holds, and stamp the task's last attempt."""
        async with self.db.write() as s:
            s.add(RunRow.from_domain(run, owner))
            await s.exec(
                update(TaskRow)
                .where(col(TaskRow.id) == run.task_id)
                .values(last_attempt_at=run.started_at or run.created_at)
            )

    async def last_finished_run(self, task_id: str, *, before: str) -> Run | None:
        query = (
            select(RunRow)
            .where(col(RunRow.task_id) == task_id)
            .where(col(RunRow.id) < before)
            .where(col(RunRow.status).in_(FINISHED_RUN_STATUSES))
            .order_by(col(RunRow.id).desc())
            .limit(1)
        )
        async with self.db.read() as s:
            row = (await s.exec(query)).first()
        return row.to_domain() if row else None


async def apply_outcome(s: AsyncSession, run: Run, outcome: Outcome) -> None:
    """Fold a finished run into its task's fields, in the caller's transaction."""
    row = await s.get(TaskRow, run.task_id)
    if row is None:
        return
    state = {name: getattr(row, name) for name in OUTCOME_FIELDS}
    moved = apply_run(state, run, outcome)
    for name, value in state.items():
        setattr(row, name, value)
    if moved:
        await bump(s)


def _page(items: list[Item], limit: int) -> Page[Item]:
    if len(items) > limit:
        items = items[:limit]
        return Page(items, encode_cursor(items[-1].id))
    return Page(items, None)
