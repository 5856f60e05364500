"""The connection to the database: engines, the schema, transactions, and the one place where a
driver's error becomes ours (`_guard`): `Conflict` for a broken uniqueness rule, `StoreOutage`
when the database is unreachable or busy, `StoreUnavailable` when it refused. Nothing of
SQLAlchemy or the drivers is raised past this module.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy import bindparam, insert, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from taskloom.errors import Conflict, NameTaken, StoreOutage, StoreUnavailable, TaskloomError
from taskloom.store.dialects import BUSY_TIMEOUT_MS, Dialect, async_url, dialect_for
from taskloom.store.inline_sqlite import Direct, InlineConnection
from taskloom.store.migrate import schema_head, upgrade
from taskloom.store.tables import CounterRow
from taskloom.store.wal import Checkpointer

log = structlog.get_logger(__name__)

TASKS_REVISION = "tasks_revision"
# While the database stays unreachable, one store_error line per this many failed operations
# (an outage used to write dozens of warnings a second).
ERROR_LOG_EVERY = 100
# Words of a driver's message that mean "not now" rather than "never".
_OUTAGE_WORDS = ("connect", "closed", "locked", "busy", "terminat", "shutdown", "unavailable")


class Database:
    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.dialect: Dialect = dialect_for(self.url)
        self._engine: AsyncEngine | None = None
        self._writer: AsyncEngine | None = None
        self._failing = 0  # operations failed in a row
        self._checkpointer: Checkpointer | None = None
        # SQLite: this process's writers take turns here (the file has one writer at a time),
        # instead of racing for its lock in SQLite's busy handler, whose sleeps (up to 100 ms
        # each) cut a burst of runs to ~80/s; other processes still wait in the busy handler.
        self._turn = asyncio.Lock() if self.dialect.serial_writes else None
        self._direct: InlineConnection | None = None  # `direct()`'s own connection

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        try:
            self.dialect.prepare()
        except OSError as exc:
            raise StoreUnavailable(self._unavailable(exc)) from exc
        async with self._guard():
            self._engine, self._writer = self.dialect.engines()
        if migrate:
            await self.migrate()
        self._checkpointer = self.dialect.checkpointer()
        if self._checkpointer is not None:
            self._checkpointer.start()

    async def close(self) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await checkpointer.stop()
        direct, self._direct = self._direct, None
        if direct is not None and not (self._turn is not None and self._turn.locked()):
            direct.stop()
        # Else a write is in progress, perhaps on it: closing it under that write would block
        # the loop until the write ends. The write holds the last reference, and the
        # connection closes when the write lets go of it.
        engines, self._engine, self._writer = {self._engine, self._writer} - {None}, None, None
        async with self._guard():
            for engine in engines:
                assert engine is not None
                await engine.dispose()

    async def migrate(self) -> None:
        """Bring the schema to the newest migration; cheap when it already is there."""
        if await self.schema_revision() == schema_head():
            return
        async with self.transaction() as conn:
            await self.dialect.lock_migrations(conn)
            await conn.run_sync(upgrade)
        log.info("schema_migrated", revision=schema_head())

    async def schema_revision(self) -> str | None:
        async with self._guard(), self._read_engine().connect() as conn:
            has_table = await conn.run_sync(lambda c: c.dialect.has_table(c, "alembic_version"))
            if not has_table:
                return None
            found = await conn.execute(text("SELECT version_num FROM alembic_version"))
            return found.scalar()

    # -- transactions ------------------------------------------------------------------------

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._guard(), AsyncSession(self._read_engine(), expire_on_commit=False) as s:
            yield s

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """One read transaction on a Core connection: rows without the ORM's session, identity
        map and instance state (the tool reads in `records`; ~2x cheaper per row)."""
        async with self._guard(), self._read_engine().connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One transaction, committed on success; BEGIN IMMEDIATE on SQLite."""
        engine = self._write_engine()
        async with (
            self._guard(),
            self._writing(),
            AsyncSession(engine, expire_on_commit=False) as s,
            s.begin(),
        ):
            yield s

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction on a Core connection (no ORM session), for rows written in
        bulk; BEGIN IMMEDIATE on SQLite."""
        async with self._guard(), self._writing(), self._write_engine().begin() as conn:
            yield conn

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[AsyncConnection]:
        """The write engine's connection with no transaction begun, in this process's turn
        to write: for the statements that cannot run in one (VACUUM, its PRAGMAs)."""
        async with self._guard(), self._writing(), self._write_engine().connect() as conn:
            yield conn

    @asynccontextmanager
    async def direct(self) -> AsyncIterator["AsyncConnection | Direct"]:
        """One write transaction like `transaction()`, committed on success, but run straight
        on the driver where the dialect can (`inline_sqlite.Direct`, on a connection of its
        own: SQLite; PostgreSQL gets an ordinary transaction): for the hottest writes, made of
        statements built once. No pool checkout, no connection object per transaction."""
        async with self._guard(), self._writing():
            if self._direct is None:
                self._direct = self.dialect.direct_connection()
            if self._direct is None:
                async with self._write_engine().begin() as conn:
                    yield conn
                return
            async with Direct(self._direct, self._write_engine().dialect).transaction() as d:
                yield d

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        """This process's turn to write (SQLite), waited for up to the busy timeout."""
        if self._turn is None:
            yield
            return
        async with asyncio.timeout(BUSY_TIMEOUT_MS / 1000):
            await self._turn.acquire()
        try:
            yield
        finally:
            self._turn.release()

    def _read_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StoreUnavailable("The store is not open; this is a bug in Taskloom.")
        return self._engine

    def _write_engine(self) -> AsyncEngine:
        if self._writer is None:
            raise StoreUnavailable("The store is not open; this is a bug in Taskloom.")
        return self._writer

    # -- the translation point ---------------------------------------------------------------

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except IntegrityError as exc:
            raise _conflict(exc) from exc
        except (SQLAlchemyError, OSError) as exc:
            unbound = _unbindable(exc)
            if unbound is not None:
                raise unbound from exc
            self._failing += 1
            if self._failing % ERROR_LOG_EVERY == 1:
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                log.warning("store_error", error=first[:300], failed_in_a_row=self._failing)
            raise self._translate(exc) from exc
        else:
            self._failing = 0

    def _translate(self, exc: BaseException) -> TaskloomError:
        message = self._unavailable(exc)
        return StoreOutage(message) if _is_outage(exc) else StoreUnavailable(message)

    def _unavailable(self, exc: BaseException) -> str:
        """The message of a failed operation, with the true cause where SQLite's file shows it
        (damaged, read-only, under a file) instead of a guess at reachability."""
        where = make_url(self.url).render_as_string()
        problem = self.dialect.problem()
        if problem:
            return f"The database is unavailable: {problem} (TASKLOOM_DATABASE_URL={where})."
        return (
            f"The database is unavailable ({type(exc).__name__}). Check that {where} is "
            "reachable and try again."
        )


# bump's UPDATE, built once (building and keying it cost more than running it).
_BUMP = (
    update(CounterRow)
    .where(col(CounterRow.name) == bindparam("counter"))
    .values(value=col(CounterRow.value) + 1)
    .returning(col(CounterRow.value))
)


async def bump(s: AsyncSession | AsyncConnection | Direct, name: str = TASKS_REVISION) -> int:
    """Move a counter by one, in the caller's transaction (an ORM session's or a Core
    connection's): one UPDATE (an insert the first time), not an ORM load and a flushed
    change. Returns the counter's new value."""
    conn = await core(s)
    value = (await conn.execute(_BUMP, {"counter": name})).scalar()
    if value is None:
        await conn.execute(insert(CounterRow).values(name=name, value=1))
        return 1
    return int(value)


async def core(s: AsyncSession | AsyncConnection | Direct) -> AsyncConnection | Direct:
    """The Core connection of a transaction: statements on it skip the ORM's execution path
    (pending ORM changes of the session are flushed at its commit, after them)."""
    return s if isinstance(s, AsyncConnection | Direct) else await s.connection()


def _unbindable(exc: BaseException) -> Exception | None:
    """A value's own error when a statement could not bind it (a JSON column given something
    that is no JSON): the caller's mistake, not the database's, so it is raised as it is."""
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        orig = exc.orig
        if isinstance(orig, Exception) and not isinstance(orig, SQLAlchemyError | OSError):
            return orig
    return None


def _is_outage(exc: BaseException) -> bool:
    """The database unreachable or busy (worth retrying), not a statement it refused."""
    if isinstance(exc, OSError | TimeoutError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        words = str(exc.orig).lower()
        return any(word in words for word in _OUTAGE_WORDS)
    return False


def _conflict(exc: IntegrityError) -> Conflict:
    rule = (str(exc.orig).splitlines() or ["a uniqueness rule"])[0][:200]
    # SQLite: "UNIQUE constraint failed: tasks.owner, tasks.name_key"; PostgreSQL: 'duplicate
    # key value violates unique constraint "uq_tasks_owner_name_key"'.
    if "name_key" in rule:
        return NameTaken(
            "name: the owner already has a task with this name (names are unique per owner, "
            "ignoring case); nothing was saved. Pick another name."
        )
    return Conflict(
        f"The database refused the write as a duplicate ({rule}); nothing was saved. Read the "
        "current state and try again."
    )
