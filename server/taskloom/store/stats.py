"""Read-only figures for `scheduler_status` and `taskloom status`."""

from datetime import datetime

from sqlalchemy import case, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from taskloom.domain.runs import RunStatus
from taskloom.domain.storage import Figures, Lease, TaskFigures
from taskloom.domain.tasks import TaskStatus
from taskloom.store.database import Database
from taskloom.store.tables import RunRow, TaskRow

ENDED = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.INTERRUPTED.value)


async def figures(db: Database, now: datetime, *, owner: str | None, top: int = 20) -> Figures:
    async with db.read() as s:
        runs = select(RunRow)
        if owner is not None:
            runs = runs.where(RunRow.owner == owner)
        queued = (await s.exec(runs.where(RunRow.status == RunStatus.QUEUED.value))).all()
        running = (await s.exec(runs.where(RunRow.status == RunStatus.RUNNING.value))).all()
        tasks = select(TaskRow.id, TaskRow.name, TaskRow.next_fire_at)
        if owner is not None:
            tasks = tasks.where(TaskRow.owner == owner)
        upcoming = await s.exec(
            tasks.where(TaskRow.status == TaskStatus.ACTIVE.value)
            .where(col(TaskRow.next_fire_at).is_not(None))
            .order_by(col(TaskRow.next_fire_at))
            .limit(top)
        )
        counts = select(TaskRow.status, func.count()).group_by(col(TaskRow.status))
        if owner is not None:
            counts = counts.where(TaskRow.owner == owner)
        by_status = dict((await s.exec(counts)).all())
        per_task = await _per_task(s, owner, top)
    return Figures(
        queued=len(queued),
        queued_due=sum(1 for r in queued if r.not_before is None or r.not_before <= now),
        running=[Lease(r.id, r.task_id, r.lease_owner, r.lease_expires_at) for r in running],
        next_fires=[(i, n, at) for i, n, at in upcoming.all() if at is not None],
        per_task=per_task,
        tasks_by_status={str(k): int(v) for k, v in by_status.items()},
    )


async def _per_task(s: AsyncSession, owner: str | None, top: int) -> list[TaskFigures]:
    ok = func.sum(case((col(RunRow.status) == RunStatus.SUCCEEDED.value, 1), else_=0))
    query = (
        select(
            RunRow.task_id,
            func.count(),
            ok,
            func.avg(col(RunRow.duration_ms)),
        )
        .where(col(RunRow.status).in_(ENDED))
        .group_by(col(RunRow.task_id))
        .order_by(func.count().desc())
        .limit(top)
    )
    if owner is not None:
        query = query.where(RunRow.owner == owner)
    rows = (await s.exec(query)).all()
    ids = [row[0] for row in rows]
    names = dict(
        (await s.exec(select(TaskRow.id, TaskRow.name).where(col(TaskRow.id).in_(ids)))).all()
    )
    return [
        TaskFigures(
            task_id=task_id,
            name=names.get(task_id, "(deleted task)"),
            runs=int(total),
            succeeded=int(good or 0),
            mean_duration_ms=float(mean) if mean is not None else None,
        )
        for task_id, total, good, mean in rows
    ]
