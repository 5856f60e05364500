"""The SQL of task revisions (`domain/revisions.py`): append one (alone, or inside the
transaction of the task change it records: `append_revision`), list a task's newest first,
read one, and keep at most `keep` per task (the oldest go first)."""

from sqlalchemy import Table, bindparam, delete, func, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from taskloom.domain.revisions import TaskRevision
from taskloom.store.database import Database, core
from taskloom.store.inline_sqlite import Direct
from taskloom.store.tables import RevisionRow

REVISIONS: Table = RevisionRow.__table__  # type: ignore[attr-defined]


class RevisionStore:
    """`domain.revisions.RevisionStorage` on the SQL database."""

    def __init__(self, db: Database, keep: int = 100) -> None:
        self.db = db
        self.keep = keep

    async def append(self, revision: TaskRevision) -> TaskRevision:
        """Store `revision` as the task's next one, in a transaction of its own."""
        async with self.db.write() as s:
            return await append_revision(s, revision, keep=self.keep)

    async def list(
        self, task_id: str, *, owner: str | None, limit: int, before: int | None = None
    ) -> list[TaskRevision]:
        """The task's revisions newest first (those numbered below `before`); `owner` None
        reads any owner's."""
        query = select(RevisionRow).where(RevisionRow.task_id == task_id)
        if owner is not None:
            query = query.where(RevisionRow.owner == owner)
        if before is not None:
            query = query.where(col(RevisionRow.revision) < before)
        query = query.order_by(col(RevisionRow.revision).desc()).limit(limit)
        async with self.db.read() as s:
            return [_domain(row) for row in (await s.exec(query)).all()]

    async def get(self, task_id: str, revision: int, *, owner: str | None) -> TaskRevision | None:
        found = await self.list(task_id, owner=owner, limit=1, before=revision + 1)
        return found[0] if found and found[0].revision == revision else None


# append_revision's statements, built once (building and keying one cost more than running it).
_LAST = select(func.max(RevisionRow.revision)).where(RevisionRow.task_id == bindparam("task_id"))
_INSERT = insert(REVISIONS)
_COLUMNS = ("task_id", "owner", "action", "principal", "at", "diff", "snapshot")


async def append_revision(
    s: AsyncSession | AsyncConnection | Direct,
    revision: TaskRevision,
    *,
    keep: int,
    first: bool = False,
) -> TaskRevision:
    """Store `revision` as the task's next one (its number is the last one's plus one) in the
    open transaction `s` (an ORM session's or a Core connection's), keeping the newest `keep`:
    the task change it records is written in the same transaction, so the two are saved, or
    not, together. Core statements only: no model instance, no flush. `first`: the task is
    being created (its id is new), so this is number 1 without looking."""
    conn = await core(s)
    last = 0 if first else (await conn.execute(_LAST, {"task_id": revision.task_id})).scalar()
    number = (last or 0) + 1
    # Its diff and snapshot are JSON values already (`tasks.revisions.definition`).
    values = {name: getattr(revision, name) for name in _COLUMNS} | {"revision": number}
    await conn.execute(_INSERT, values)
    if number > keep:  # else none is old enough to go (a create is number 1): no statement
        await conn.execute(
            delete(RevisionRow)
            .where(col(RevisionRow.task_id) == revision.task_id)
            .where(col(RevisionRow.revision) <= number - keep)
        )
    return revision.model_copy(update={"revision": number})


def _domain(row: RevisionRow) -> TaskRevision:
    return TaskRevision.model_validate(row.model_dump())
