"""The store: SQLite (embedded default) and PostgreSQL behind one class.

Driver errors become `StoreUnavailable` here and nowhere else. On SQLite every write transaction
starts with `BEGIN IMMEDIATE` (a deferred BEGIN that later upgrades to a write lock fails under
contention instead of waiting), in WAL mode with a busy timeout, so several processes can share
one file.
"""

import base64
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Table, delete, event, func, insert, text, update
from sqlalchemy import select as rows_of  # Core rows of a table (sqlmodel.select types entities)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from taskloom.domain.outcome import OUTCOME_FIELDS, Outcome, apply_run
from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.tasks import Task
from taskloom.errors import Conflict, InvalidInput, StoreUnavailable
from taskloom.store import inline_sqlite
from taskloom.store.migrate import schema_head, upgrade
from taskloom.store.tables import (
    CounterRow,
    RunRow,
    StepResultRow,
    TaskRow,
    run_of,
    step_of,
    task_of,
)

log = structlog.get_logger(__name__)

BUSY_TIMEOUT_MS = 30_000
TASKS_REVISION = "tasks_revision"
# While the database stays unreachable, one store_error line per this many failed operations
# (an outage used to write dozens of warnings a second).
ERROR_LOG_EVERY = 100
# Written only by finishing runs, so an edit made from a stale read never rolls them back.
RUN_OWNED_TASK_FIELDS = {
    "last_attempt_at",
    "last_run_at",
    "last_run_status",
    "last_summary",
    "last_error",
    "run_count",
}


def async_url(url: str) -> str:
    """Map the URLs users write to the async drivers we ship."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
    name = "postgresql" if parsed.drivername in ("postgres", "postgresql") else parsed.drivername
    if name in driver:
        parsed = parsed.set(drivername=driver[name])
    elif parsed.drivername.startswith("postgresql+") and parsed.drivername != "postgresql+asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, prefix: str) -> str | None:
    """The id a cursor of a `prefix` listing (`tsk` or `run`) continues after; anything else,
    such as a list_tasks cursor given to task_history, is refused rather than read as a filter."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        value = ""
    if not re.fullmatch(rf"{prefix}_[0-9a-z]{{26}}", value):
        listing = "list_tasks" if prefix == "tsk" else "task_history"
        raise InvalidInput(
            "cursor", cursor,
            f"It is not a cursor {listing} gave: pass the next_cursor of the previous "
            f"{listing} answer unchanged, or omit cursor for the first page.",
        )  # fmt: skip
    return value


class Store:
    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self._engine: AsyncEngine | None = None
        self._writer: AsyncEngine | None = None
        self._failing = 0  # operations failed in a row

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        if self.dialect == "sqlite":
            self._prepare_sqlite_file()
            self._engine = self._sqlite_engine(immediate=False)
            self._writer = self._sqlite_engine(immediate=True)
        else:
            # No pool_pre_ping: it costs a round trip per transaction. A connection found broken
            # is invalidated by SQLAlchemy (and _guard answers StoreUnavailable); the next
            # checkout opens a fresh one. pool_recycle retires connections before servers or
            # proxies drop idle ones.
            self._engine = create_async_engine(self.url, pool_size=10, pool_recycle=1800)
            self._writer = self._engine
        if migrate:
            await self.migrate()

    async def close(self) -> None:
        for engine in {self._engine, self._writer} - {None}:
            assert engine is not None
            await engine.dispose()
        self._engine = self._writer = None

    def _prepare_sqlite_file(self) -> None:
        database = make_url(self.url).database
        if database and database != ":memory:":
            try:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(self._unavailable(exc)) from exc

    def _sqlite_engine(self, *, immediate: bool) -> AsyncEngine:
        # SQLite has one writer at a time. Writers of this process queue for one connection
        # (an asyncio wait) instead of racing for the file lock in SQLite's busy handler, whose
        # sleeps (up to 100 ms each) cut a burst of runs to ~80/s; other processes still wait
        # in the busy handler.
        pool: dict[str, Any] = (
            {"pool_size": 1, "max_overflow": 0, "pool_timeout": BUSY_TIMEOUT_MS / 1000}
            if immediate
            else {}
        )
        database = make_url(self.url).database
        inline = bool(database) and database != ":memory:"
        if inline:  # statements run on the loop's thread, not via aiosqlite's: see inline_sqlite
            assert database is not None
            connect = inline_sqlite.connector(database, BUSY_TIMEOUT_MS, reads=not immediate)
            pool["async_creator"] = connect
        engine = create_async_engine(
            self.url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, **pool
        )
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            if not inline:  # inline, a busy database is waited for in a thread instead
                cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

        return engine

    async def migrate(self) -> None:
        """Bring the schema to the newest migration; cheap when it already is there."""
        if await self.schema_revision() == schema_head():
            return

        async with self._guard(), self._write_engine().begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(7300501)"))
            await conn.run_sync(upgrade)
        log.info("schema_migrated", revision=schema_head())

    async def schema_revision(self) -> str | None:
        async with self._guard(), self._read_engine().connect() as conn:
            has_table = await conn.run_sync(lambda c: c.dialect.has_table(c, "alembic_version"))
            if not has_table:
                return None
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()

    # -- sessions ----------------------------------------------------------------------------

    def _read_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StoreUnavailable("The store is not open; this is a bug in Taskloom.")
        return self._engine

    def _write_engine(self) -> AsyncEngine:
        if self._writer is None:
            raise StoreUnavailable("The store is not open; this is a bug in Taskloom.")
        return self._writer

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except IntegrityError:
            raise
        except (DBAPIError, SQLAlchemyError, OSError) as exc:
            self._failing += 1
            if self._failing % ERROR_LOG_EVERY == 1:
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                log.warning("store_error", error=first[:300], failed_in_a_row=self._failing)
            raise StoreUnavailable(self._unavailable(exc)) from exc
        else:
            self._failing = 0

    def _unavailable(self, exc: BaseException) -> str:
        """The message of a failed operation, with the true cause where SQLite's file shows it
        (damaged, read-only, under a file) instead of a guess at reachability."""
        where = make_url(self.url).render_as_string()
        if self.dialect == "sqlite":
            from taskloom.store.reachability import sqlite_problem

            problem = sqlite_problem(make_url(self.url).database)
            if problem:
                return f"The database is unavailable: {problem} (TASKLOOM_DATABASE_URL={where})."
        return (
            f"The database is unavailable ({type(exc).__name__}). Check that {where} is "
            "reachable and try again."
        )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._guard(), AsyncSession(self._read_engine(), expire_on_commit=False) as s:
            yield s

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """One read transaction on a Core connection: rows without the ORM's session, identity
        map and instance state (the tool reads below; ~2x cheaper per row)."""
        async with self._guard(), self._read_engine().connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One transaction, committed on success; BEGIN IMMEDIATE on SQLite."""
        engine = self._write_engine()
        async with self._guard(), AsyncSession(engine, expire_on_commit=False) as s, s.begin():
            yield s

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction on a Core connection (no ORM session), for rows written in
        bulk; BEGIN IMMEDIATE on SQLite."""
        async with self._guard(), self._write_engine().begin() as conn:
            yield conn

    # -- tasks -------------------------------------------------------------------------------

    async def add_task(self, task: Task, *, max_per_owner: int) -> None:
        async with self.write() as s:
            # Counts at most up to the limit (ix_tasks_owner_id), not all the owner's tasks.
            mine = select(col(TaskRow.id)).where(col(TaskRow.owner) == task.owner)
            capped = mine.limit(max_per_owner).subquery()
            count = await s.scalar(select(func.count()).select_from(capped))
            if (count or 0) >= max_per_owner:
                raise Conflict(
                    f"Owner {task.owner!r} already has {count} tasks, the limit "
                    f"(TASKLOOM_MAX_TASKS_PER_OWNER={max_per_owner}). Delete unused tasks first."
                )
            await s.exec(insert(TASKS), params=[TaskRow.values(task)])  # Core: no model instance
            await self.bump(s, TASKS_REVISION)

    async def get_task(self, task_id: str, owner: str | None = None) -> Task | None:
        async with self.reading() as c:
            row = (await c.execute(rows_of(TASKS).where(TASKS.c.id == task_id))).first()
        if row is None or (owner is not None and row.owner != owner):
            return None
        return task_of(row)

    async def task_named(self, owner: str, name: str) -> str | None:
        """The id of `owner`'s task called `name` (ignoring case), or None."""
        query = (
            select(col(TaskRow.id))
            .where(col(TaskRow.owner) == owner)
            .where(func.lower(col(TaskRow.name)) == name.lower())
            .limit(1)
        )
        async with self.read() as s:
            return (await s.exec(query)).first()

    async def list_tasks(
        self,
        *,
        owner: str | None,
        status: str | None = None,
        name_contains: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        query = rows_of(TASKS).order_by(col(TaskRow.id)).limit(limit + 1)
        if owner is not None:
            query = query.where(col(TaskRow.owner) == owner)
        if status:
            query = query.where(col(TaskRow.status) == status)
        if name_contains:
            query = query.where(func.lower(col(TaskRow.name)).contains(name_contains.lower()))
        after = decode_cursor(cursor, "tsk")
        if after:
            query = query.where(col(TaskRow.id) > after)
        async with self.reading() as c:
            rows = (await c.execute(query)).all()
        return _page([task_of(r) for r in rows], limit)

    async def save_task(self, task: Task, *, expected_revision: int | None = None) -> Task:
        """Write the whole task; with expected_revision, refuse if someone changed it meanwhile."""
        async with self.write() as s:
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
            await self.bump(s, TASKS_REVISION)
        return task

    async def delete_task(self, task_id: str, *, delete_runs: bool) -> int:
        """Remove the task; returns how many runs were removed with it."""
        async with self.write() as s:
            await s.exec(delete(TaskRow).where(col(TaskRow.id) == task_id))
            removed = 0
            if delete_runs:
                run_ids = select(col(RunRow.id)).where(col(RunRow.task_id) == task_id)
                await s.exec(delete(StepResultRow).where(col(StepResultRow.run_id).in_(run_ids)))
                result = await s.exec(delete(RunRow).where(col(RunRow.task_id) == task_id))
                removed = result.rowcount
            await self.bump(s, TASKS_REVISION)
        return removed

    async def tasks_revision(self) -> int:
        query = select(col(CounterRow.value)).where(col(CounterRow.name) == TASKS_REVISION)
        async with self.reading() as c:
            value = (await c.execute(query)).scalar()
        return value or 0

    async def bump(self, s: AsyncSession, name: str) -> None:
        # One UPDATE (an insert the first time), not an ORM load and a flushed change.
        counter = col(CounterRow.name) == name
        bumped = await s.exec(
            update(CounterRow).where(counter).values(value=col(CounterRow.value) + 1)
        )
        if not bumped.rowcount:
            await s.exec(insert(CounterRow).values(name=name, value=1))

    # -- runs --------------------------------------------------------------------------------

    async def add_run(self, run: Run, *, owner: str) -> None:
        async with self.write() as s:
            s.add(RunRow.from_domain(run, owner))
            for step in run.steps:
                s.add(StepResultRow.from_domain(run.id, step))

    async def get_run(self, run_id: str, owner: str | None = None) -> Run | None:
        async with self.reading() as c:
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
    ) -> Page:
        """Newest first; step results are not loaded (use get_run)."""
        query = rows_of(RUNS).order_by(col(RunRow.id).desc()).limit(limit + 1)
        if owner is not None:
            query = query.where(col(RunRow.owner) == owner)
        if task_id:
            query = query.where(col(RunRow.task_id) == task_id)
        if statuses:
            query = query.where(col(RunRow.status).in_([s.value for s in statuses]))
        before = decode_cursor(cursor, "run")
        if before:
            query = query.where(col(RunRow.id) < before)
        async with self.reading() as c:
            rows = (await c.execute(query)).all()
        return _page([run_of(r) for r in rows], limit)

    async def update_run_status(
        self, run_id: str, status: RunStatus, *, when: datetime, error: str | None = None
    ) -> bool:
        async with self.write() as s:
            result = await s.exec(
                update(RunRow)
                .where(col(RunRow.id) == run_id)
                .where(col(RunRow.status).in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]))
                .values(status=status.value, finished_at=when, error=error)
            )
            return bool(result.rowcount)

    async def start_run(self, run: Run, *, owner: str) -> None:
        """Insert a run that this process already holds, and stamp the task's last attempt."""
        async with self.write() as s:
            s.add(RunRow.from_domain(run, owner))
            await s.exec(
                update(TaskRow)
                .where(col(TaskRow.id) == run.task_id)
                .values(last_attempt_at=run.started_at or run.created_at)
            )

    async def apply_outcome(self, s: AsyncSession, run: Run, outcome: Outcome) -> None:
        row = await s.get(TaskRow, run.task_id)
        if row is None:
            return
        state = {name: getattr(row, name) for name in OUTCOME_FIELDS}
        moved = apply_run(state, run, outcome)
        for name, value in state.items():
            setattr(row, name, value)
        if moved:
            await self.bump(s, TASKS_REVISION)

    async def last_finished_run(self, task_id: str, *, before: str) -> Run | None:
        query = (
            rows_of(RUNS)
            .where(col(RunRow.task_id) == task_id)
            .where(col(RunRow.id) < before)
            .where(col(RunRow.status).in_(FINISHED_RUN_STATUSES))
            .order_by(col(RunRow.id).desc())
            .limit(1)
        )
        async with self.reading() as c:
            row = (await c.execute(query)).first()
        return run_of(row) if row else None


TASKS: Table = TaskRow.__table__  # type: ignore[attr-defined]
RUNS: Table = RunRow.__table__  # type: ignore[attr-defined]
STEPS: Table = StepResultRow.__table__  # type: ignore[attr-defined]
FINISHED_RUN_STATUSES = [RunStatus.SUCCEEDED.value, RunStatus.FAILED.value]


def _page(items: list[Any], limit: int) -> Page:
    if len(items) > limit:
        items = items[:limit]
        return Page(items, encode_cursor(items[-1].id))
    return Page(items, None)
