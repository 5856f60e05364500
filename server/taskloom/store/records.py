"""Tasks and runs as records: insert, read, page, change, delete. Each method is one short
transaction; the transactions that decide who runs what live in `claims.py`, `admission.py` and
`recorder.py`."""

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import (
    Integer,
    Select,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    type_coerce,
    update,
)
from sqlalchemy import select as rows_of  # Core rows of a table (sqlmodel.select types entities)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from taskloom.domain.outcome import OUTCOME_FIELDS, Outcome, apply_run
from taskloom.domain.planning import unclaimed_fires
from taskloom.domain.revisions import TaskRevision
from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.storage import Page, Unclaimed, decode_cursor, encode_cursor
from taskloom.domain.tasks import Task, TaskStatus, name_key
from taskloom.errors import Conflict, NameTaken
from taskloom.store.database import TASKS_REVISION, Database, bump, core
from taskloom.store.inline_sqlite import Direct
from taskloom.store.revisions import append_revision
from taskloom.store.tables import (
    CounterRow,
    OwnerTasksRow,
    RunRow,
    StepResultRow,
    TaskRow,
    run_from,
    run_of,
    step_of,
    task_from,
    task_of,
)

# Written only by finishing runs, so an edit made from a stale read never rolls them back.
RUN_OWNED_TASK_FIELDS = {
    "last_attempt_at",
    "last_run_at",
    "last_run_status",
    "last_summary",
    "last_error",
    "run_count",
}
# How many of the latest own tasks_revision values `made_here` remembers (older ones read as
# made elsewhere: the timer is then rebuilt, as for any change it cannot account for).
MADE_KEPT = 10_000
# Tasks kept parsed for list_tasks (a few KB each).
LISTED_TASKS_KEPT = 1024
FINISHED_RUN_STATUSES = [RunStatus.SUCCEEDED.value, RunStatus.FAILED.value]
Item = TypeVar("Item", Task, Run)
TASKS: Table = TaskRow.__table__  # type: ignore[attr-defined]
RUNS: Table = RunRow.__table__  # type: ignore[attr-defined]
STEPS: Table = StepResultRow.__table__  # type: ignore[attr-defined]
OWNER_TASKS: Table = OwnerTasksRow.__table__  # type: ignore[attr-defined]

# create_task's statements, built once (building and keying a statement cost more than running
# it): the owner's tasks counted (only when the kept number says the owner is at the cap, to
# make sure), and the name lookup (one probe of the unique index (owner, name_key)).
_COUNT_OWNER_TASKS = rows_of(func.count()).where(TASKS.c.owner == bindparam("owner"))
_SET_OWNER_TASKS = (
    update(OWNER_TASKS)
    .where(OWNER_TASKS.c.owner == bindparam("b_owner"))
    .values(tasks=bindparam("b_tasks", type_=Integer))
)
# A deleted task's owner has one task less (the owner read from the row before it goes).
_ONE_TASK_LESS = (
    update(OWNER_TASKS)
    .where(
        OWNER_TASKS.c.owner
        == rows_of(TASKS.c.owner).where(TASKS.c.id == bindparam("task_id")).scalar_subquery()
    )
    .values(tasks=OWNER_TASKS.c.tasks - 1)
)
_INSERT_TASK = insert(TASKS)
_TASK_NAMED = (
    rows_of(TASKS.c.id)
    .where(TASKS.c.owner == bindparam("owner"))
    .where(TASKS.c.name_key == bindparam("key"))
)


class Records:
    def __init__(self, db: Database, keep_revisions: int = 100) -> None:
        self.db = db
        self.keep_revisions = keep_revisions  # per task, in `revision`'s transaction
        # tasks_revision values of the task changes committed through this object (`made_here`)
        self._made: set[int] = set()
        # The owner's number of tasks plus one (a first task makes the row), answering the new
        # number: one statement, which on PostgreSQL also locks the row, so two creates of one
        # owner take turns at the cap instead of both passing it.
        upsert = db.dialect.upsert(OWNER_TASKS).values(owner=bindparam("owner"), tasks=1)
        self._one_task_more = upsert.on_conflict_do_update(
            index_elements=[OWNER_TASKS.c.owner], set_={"tasks": OWNER_TASKS.c.tasks + 1}
        ).returning(OWNER_TASKS.c.tasks)

    async def _revised(
        self,
        s: AsyncSession | AsyncConnection | Direct,
        revision: TaskRevision | None,
        *,
        first: bool = False,
    ) -> None:
        """The change's revision, in the change's transaction: a failed one undoes the change.
        `first`: the task is new, so this is its revision 1."""
        if revision is not None:
            await append_revision(s, revision, keep=self.keep_revisions, first=first)

    # -- tasks -------------------------------------------------------------------------------

    async def add_task(
        self, task: Task, *, max_per_owner: int, revision: TaskRevision | None = None
    ) -> None:
        try:
            self._committed(await self._insert_task(task, max_per_owner, revision))
        except NameTaken as exc:
            raise await self._name_taken(task) from exc

    async def _insert_task(
        self, task: Task, max_per_owner: int, revision: TaskRevision | None
    ) -> int:
        # Statements built once, straight to the driver where it can be (`Database.direct`).
        async with self.db.direct() as conn:
            owner = {"owner": task.owner}
            tasks = (await conn.execute(self._one_task_more, owner)).scalar_one()
            if tasks > max_per_owner:
                await self._at_cap(conn, task.owner, max_per_owner)
            await conn.execute(_INSERT_TASK, TaskRow.values(task))
            await self._revised(conn, revision, first=True)
            return await bump(conn)

    async def _at_cap(self, conn: AsyncConnection | Direct, owner: str, max_per_owner: int) -> None:
        """The kept number says `owner` is past the cap with the new task: count to make sure
        (it is right unless tasks were written around the store), set the number to the truth,
        and refuse if the count agrees."""
        count = (await conn.execute(_COUNT_OWNER_TASKS, {"owner": owner})).scalar_one()
        if count >= max_per_owner:
            raise Conflict(
                f"Owner {owner!r} already has {count} tasks, the limit "
                f"(TASKLOOM_MAX_TASKS_PER_OWNER={max_per_owner}). Delete unused tasks first."
            )
        await conn.execute(_SET_OWNER_TASKS, {"b_owner": owner, "b_tasks": count + 1})

    async def get_task(self, task_id: str, owner: str | None = None) -> Task | None:
        async with self.db.reading() as c:
            row = (await c.execute(rows_of(TASKS).where(TASKS.c.id == task_id))).first()
        if row is None or (owner is not None and row.owner != owner):
            return None
        return task_of(row)

    async def task_named(self, owner: str, name: str) -> str | None:
        """The id of `owner`'s task called `name` (ignoring case), or None: one lookup of the
        unique index (owner, name_key)."""
        params = {"owner": owner, "key": name_key(name)}
        async with self.db.reading() as c:
            found: str | None = (await c.execute(_TASK_NAMED, params)).scalar()
        return found

    async def _name_taken(self, task: Task) -> Conflict:
        """The message of a create or rename that lost a race for its name (`NameTaken`)."""
        other = await self.task_named(task.owner, task.name)
        which = f" ({other})" if other else ""
        return NameTaken(
            f"name: {task.name!r} is taken: you already have a task with this name{which}, "
            "made meanwhile (names are unique per owner, ignoring case); nothing was saved. "
            "Pick another name, or change that task with update_task."
        )

    async def list_tasks(
        self,
        *,
        owner: str | None,
        status: str | None = None,
        name_contains: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Task]:
        after = decode_cursor(cursor, "tsk")
        values = {
            "limit": limit + 1, "owner": owner, "status": status or None,
            "query": name_contains.lower() if name_contains else None, "after": after,
        }  # fmt: skip
        query = _tasks_query(*(values[name] is not None for name in _TASK_FILTERS))
        async with self.db.reading() as c:
            result = await c.execute(query, {k: v for k, v in values.items() if v is not None})
            keys, rows = tuple(result.keys()), result.all()
        return _page(rows, limit, lambda row: _LISTED.task(keys, row))

    async def save_task(
        self,
        task: Task,
        *,
        expected_revision: int | None = None,
        unclaimed: Unclaimed = None,
        revision: TaskRevision | None = None,
    ) -> Task:
        """Write the whole task; with expected_revision, refuse if someone changed it meanwhile.
        `unclaimed(stored)`: the runs for the due fires the new next fire leaves behind."""
        try:
            self._committed(await self._save_task(task, expected_revision, unclaimed, revision))
        except NameTaken as exc:
            raise await self._name_taken(task) from exc
        return task

    async def _save_task(
        self,
        task: Task,
        expected_revision: int | None,
        unclaimed: Unclaimed,
        revision: TaskRevision | None,
    ) -> int:
        async with self.db.write() as s:
            query = self.db.dialect.locked(select(TaskRow).where(col(TaskRow.id) == task.id))
            row = (await s.exec(query)).first()
            if row is None:
                raise Conflict(f"Task {task.id!r} was deleted meanwhile; nothing was saved.")
            if expected_revision is not None and row.revision != expected_revision:
                raise Conflict(
                    f"Task {task.id!r} changed meanwhile (revision {row.revision}, you edited "
                    f"{expected_revision}). Fetch it with get_task and apply your change again."
                )
            for run in unclaimed(row.to_domain()) if unclaimed else []:
                s.add(RunRow.from_domain(run, row.owner))
            fresh = TaskRow.from_domain(task)
            # A legacy duplicate's marked key (migration 0007) stays until the name changes.
            same_name = name_key(row.name) == fresh.name_key
            keep = RUN_OWNED_TASK_FIELDS | ({"name_key"} if same_name else set())
            for name, value in fresh.model_dump(exclude=keep).items():
                setattr(row, name, value)
            await self._revised(s, revision)
            return await bump(s)

    async def delete_task(
        self, task_id: str, *, delete_runs: bool, revision: TaskRevision | None = None
    ) -> int:
        """Remove the task; returns how many runs were removed with it."""
        async with self.db.write() as s:
            await (await core(s)).execute(_ONE_TASK_LESS, {"task_id": task_id})
            await s.exec(delete(TaskRow).where(col(TaskRow.id) == task_id))
            removed = 0
            if delete_runs:
                run_ids = select(col(RunRow.id)).where(col(RunRow.task_id) == task_id)
                await s.exec(delete(StepResultRow).where(col(StepResultRow.run_id).in_(run_ids)))
                result = await s.exec(delete(RunRow).where(col(RunRow.task_id) == task_id))
                removed = result.rowcount
            await self._revised(s, revision)
            value = await bump(s)
        self._committed(value)
        return removed

    def _committed(self, value: int) -> None:
        """Note a task change's tasks_revision value once its transaction committed."""
        self._made.add(value)
        if len(self._made) > 2 * MADE_KEPT:  # only recent values are ever asked about
            self._made = {v for v in self._made if v > value - MADE_KEPT}

    def made_here(self, after: int, upto: int) -> bool:
        """Whether every tasks_revision value in (after, upto] is a task change committed
        through this object (add_task, save_task, delete_task): no other process and no run's
        outcome moved the counter in between."""
        return upto > after and all(v in self._made for v in range(after + 1, upto + 1))

    async def tasks_revision(self) -> int:
        query = select(col(CounterRow.value)).where(col(CounterRow.name) == TASKS_REVISION)
        async with self.db.reading() as c:
            value = (await c.execute(query)).scalar()
        return value or 0

    # -- runs --------------------------------------------------------------------------------

    async def add_run(self, run: Run, *, owner: str) -> None:
        async with self.db.write() as s:
            s.add(RunRow.from_domain(run, owner))
            for step in run.steps:
                s.add(StepResultRow.from_domain(run.id, step))

    async def get_run(self, run_id: str, owner: str | None = None) -> Run | None:
        async with self.db.reading() as c:
            row = (await c.execute(rows_of(RUNS).where(RUNS.c.id == run_id))).first()
            if row is None or (owner is not None and row.owner != owner):
                return None
            steps = await c.execute(
                rows_of(STEPS).where(STEPS.c.run_id == run_id).order_by(STEPS.c.step_index)
            )
            return run_of(row, [step_of(st, st.step_index) for st in steps])

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
        values = {
            "limit": limit + 1, "owner": owner, "task_id": task_id or None,
            "statuses": [s.value for s in statuses] or None,
            "before": decode_cursor(cursor, "run"),
        }  # fmt: skip
        query = _runs_query(*(values[name] is not None for name in _RUN_FILTERS))
        async with self.db.reading() as c:
            result = await c.execute(query, {k: v for k, v in values.items() if v is not None})
            keys, rows = tuple(result.keys()), result.all()
        return _page(rows, limit, lambda row: run_from(dict(zip(keys, row, strict=True))))

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
            rows_of(RUNS)
            .where(col(RunRow.task_id) == task_id)
            .where(col(RunRow.id) < before)
            .where(col(RunRow.status).in_(FINISHED_RUN_STATUSES))
            .order_by(col(RunRow.id).desc())
            .limit(1)
        )
        async with self.db.reading() as c:
            row = (await c.execute(query)).first()
        return run_of(row) if row else None


async def apply_outcome(s: AsyncSession, run: Run, outcome: Outcome) -> None:
    """Fold a finished run into its task's fields, in the caller's transaction."""
    row = await s.get(TaskRow, run.task_id)
    if row is None:
        return
    state = {name: getattr(row, name) for name in OUTCOME_FIELDS}
    was = state["status"]
    moved = apply_run(state, run, outcome)
    if paused_itself(was, state):
        await record_left_behind(await s.connection(), run, state)
    for name, value in state.items():
        setattr(row, name, value)
    if moved:
        await bump(s)


def paused_itself(was: str, state: dict[str, Any]) -> bool:
    """Whether folding a run paused its task (pause_on_failure)."""
    return was == TaskStatus.ACTIVE.value and state["status"] == TaskStatus.PAUSED.value


async def record_left_behind(conn: AsyncConnection, run: Run, state: dict[str, Any]) -> None:
    """Missed rows for the task's fires that came due unclaimed before `run`'s failure paused
    it: the pause clears its next fire, so no claim would ever record them, and a fire never
    vanishes without a row. Called before the task's new values are written (the stored row
    still has the old next fire) and in the same transaction."""
    row = (await conn.execute(rows_of(TASKS).where(TASKS.c.id == run.task_id))).first()
    if row is None:
        return
    at = run.finished_at or run.created_at
    why = (f"no Taskloom process had claimed it when the task paused itself after "
           f"{state['consecutive_failures']} failures in a row at {at.isoformat()}")  # fmt: skip
    left = unclaimed_fires(task_of(row), at, why=why)
    if left:
        await conn.execute(insert(RUNS), [RunRow.values(r, row.owner) for r in left])


# Listing statements are built once per combination of filters (the values are bound when one
# runs): building a statement cost a quarter of a page read, more than SQLite's part of it.
_TASK_FILTERS = ("owner", "status", "query", "after")
_RUN_FILTERS = ("owner", "task_id", "statuses", "before")


class _ListedTasks:
    """Tasks as list_tasks read them, by their whole row, the definition as its stored JSON
    text: a task listed again unchanged is not parsed and validated again (most of a page's
    cost). A task is immutable and a pure function of its row, so sharing one is safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._tasks: OrderedDict[tuple[Any, ...], Task] = OrderedDict()

    def task(self, keys: tuple[str, ...], row: Sequence[Any]) -> Task:
        key = tuple(row)
        try:
            task = self._tasks.get(key)
        except TypeError:  # a driver that hands the definition over parsed: nothing to key by
            key, task = (), None
        if task is not None:
            self._tasks.move_to_end(key)
            return task
        values = dict(zip(keys, row, strict=True))
        if isinstance(values["spec"], str | bytes):
            values["spec"] = json.loads(values["spec"])
        task = task_from(values)
        if key:
            self._tasks[key] = task
            if len(self._tasks) > self.size:
                self._tasks.popitem(last=False)
        return task


_LISTED = _ListedTasks(LISTED_TASKS_KEPT)
# list_tasks reads the definition as text (the key of `_ListedTasks`), parsed only when new.
_TASK_COLUMNS = tuple(
    type_coerce(column, Text).label(column.name) if column.name == "spec" else column
    for column in TASKS.c
)


@cache
def _tasks_query(owner: bool, status: bool, query: bool, after: bool) -> Select[Any]:
    listing = rows_of(*_TASK_COLUMNS).order_by(TASKS.c.id).limit(bindparam("limit"))
    if owner:
        listing = listing.where(TASKS.c.owner == bindparam("owner"))
    if status:
        listing = listing.where(TASKS.c.status == bindparam("status"))
    if query:
        listing = listing.where(func.lower(TASKS.c.name).contains(bindparam("query")))
    if after:
        listing = listing.where(TASKS.c.id > bindparam("after"))
    return listing


@cache
def _runs_query(owner: bool, task_id: bool, statuses: bool, before: bool) -> Select[Any]:
    listing = rows_of(RUNS).order_by(RUNS.c.id.desc()).limit(bindparam("limit"))
    if owner:
        listing = listing.where(RUNS.c.owner == bindparam("owner"))
    if task_id:
        listing = listing.where(RUNS.c.task_id == bindparam("task_id"))
    if statuses:
        listing = listing.where(RUNS.c.status.in_(bindparam("statuses", expanding=True)))
    if before:
        listing = listing.where(RUNS.c.id < bindparam("before"))
    return listing


def _page(rows: Sequence[Any], limit: int, item: Callable[[Any], Item]) -> Page[Item]:
    """The first `limit` of `rows` (read one more to know whether a next page exists) as
    items; the extra row is not made into one."""
    items = [item(row) for row in rows[:limit]]
    return Page(items, encode_cursor(items[-1].id) if len(rows) > limit else None)
