"""SQLite on the event loop's own thread: an aiosqlite-shaped connection for SQLAlchemy's
aiosqlite dialect (`create_async_engine(..., async_creator=...)`) that runs each statement in
place instead of handing it to aiosqlite's thread.

Why: aiosqlite costs a thread hand-off per call (cursor, execute, fetch, close, BEGIN, COMMIT),
~10 per read transaction and ~4 per statement, each ~0.05-0.1 ms of CPU on an idle machine and
a wait for the OS to schedule a thread on a busy one, where an indexed statement in WAL mode
takes ~0.02 ms. Every read and write transaction pays them (a tool call 1-3 ms, a claim or a
batch of run records as many hand-offs as statements).

What keeps the loop free to serve others:
- Nothing waits for a lock in place. The busy timeout here is 0: a statement that finds the
  database locked (BEGIN IMMEDIATE while another process writes; in WAL mode readers do not
  wait) fails at once without effect and is run again in a worker thread, where the busy
  timeout waits as before.
- On the read engine a statement (with its rows) runs in place only while it is quick: one
  still going after `INLINE_BUDGET_S` is interrupted by SQLite's progress handler and run again,
  whole, in a thread (a SELECT has no effect to undo). Writes are not interrupted (SQLite would
  roll back their whole transaction): the store's writes are short indexed statements.

`Direct` (below) goes one step further for the hottest write, a create: its transaction runs on
an `InlineConnection` of its own (`Database.direct`) without SQLAlchemy's pool or per-statement
execution, by the same rules.
"""

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from functools import lru_cache
from types import MappingProxyType
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

T = TypeVar("T")
EMPTY: Mapping[str, Any] = MappingProxyType({})

# A statement still running after this long moves to a thread (the loop is blocked at most
# about this long per statement).
INLINE_BUDGET_S = 0.02
# SQLite calls the progress handler every this many virtual machine instructions (~1 ms of
# work; a Python call every 2,000 doubled the time of a 10,000-row scan).
PROGRESS_EVERY = 100_000


class _Deadline:
    """The progress handler: interrupts the statement once its budget is spent."""

    def __init__(self) -> None:
        self.until = 0.0

    def __call__(self) -> int:
        return 1 if time.perf_counter() > self.until else 0


class _Tx:
    """SQLAlchemy's adapter sets `isolation_level` through aiosqlite's private queue
    (`_tx.put_nowait((future, function))`); here the function simply runs."""

    def put_nowait(self, item: tuple["asyncio.Future[Any]", Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class InlineCursor:
    def __init__(self, owner: "InlineConnection") -> None:
        self._owner = owner
        self._cursor = owner._conn.cursor()
        self._rows: list[Any] = []

    async def __aenter__(self) -> "InlineCursor":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    def _run(self, sql: str, params: Any) -> list[Any]:
        # Rows are fetched here too: SQLite produces them while they are fetched, so a long
        # scan would otherwise escape the budget in fetchall.
        self._cursor.execute(sql, params)
        return self._cursor.fetchall() if self._cursor.description else []

    async def execute(self, sql: str, params: Any = ()) -> "InlineCursor":
        self._rows = await self._owner.run(self._run, sql, params)
        return self

    async def executemany(self, sql: str, seq: Iterable[Any]) -> "InlineCursor":
        rows = list(seq)
        await self._owner.run(self._cursor.executemany, sql, rows)
        self._rows = []
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        size = size or self._cursor.arraysize
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    async def close(self) -> None:
        self._rows = []
        self._cursor.close()


class InlineConnection:
    """The parts of `aiosqlite.Connection` SQLAlchemy's aiosqlite dialect uses."""

    def __init__(
        self, conn: sqlite3.Connection, busy_timeout_ms: int, *, interruptible: bool
    ) -> None:
        self._conn = conn
        self._connection = conn  # the dialect checks it is still open before commit/rollback
        self._tx = _Tx()
        self._busy_timeout_ms = busy_timeout_ms
        self._deadline = _Deadline() if interruptible else None
        self._watch()

    def _watch(self) -> None:
        if self._deadline is not None:
            self._conn.set_progress_handler(self._deadline, PROGRESS_EVERY)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` here if it is quick and finds the database free, else whole again in
        a thread (with the busy timeout in force there)."""
        if self._deadline is not None:
            self._deadline.until = time.perf_counter() + INLINE_BUDGET_S
        try:
            return function(*args)
        except sqlite3.OperationalError as exc:
            if not _retry_elsewhere(exc):
                raise
        return await asyncio.to_thread(self._patiently, function, *args)

    def _patiently(self, function: Callable[..., T], *args: Any) -> T:
        self._conn.set_progress_handler(None, 0)
        self._conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        try:
            return function(*args)
        finally:
            self._conn.execute("PRAGMA busy_timeout=0")
            self._watch()

    def cursor(self) -> InlineCursor:
        return InlineCursor(self)

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        """As `aiosqlite.Connection.execute`: for the few statements that go to the driver
        directly (PRAGMAs and VACUUM, which cannot run inside SQLAlchemy's transaction)."""
        cursor = self.cursor()
        await cursor.execute(sql, parameters)
        return cursor

    async def executescript(self, script: str) -> None:
        """As `aiosqlite.Connection.executescript`: steps each statement to completion."""
        await self.run(self._conn.executescript, script)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)


def _retry_elsewhere(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "interrupted" in text or "locked" in text or "busy" in text


def connector(database: str, busy_timeout_ms: int, *, reads: bool) -> Callable[[], Any]:
    """The `async_creator` of an engine on the SQLite file `database` (`reads`: the read
    engine, whose long statements move to a thread)."""

    async def connect() -> InlineConnection:
        return InlineConnection(open_connection(database), busy_timeout_ms, interruptible=reads)

    return connect


def open_connection(database: str) -> sqlite3.Connection:
    # busy_timeout 0 here: a busy database is waited for in a thread, never on the loop.
    return sqlite3.connect(
        database, timeout=0, isolation_level=None, check_same_thread=False, uri=False
    )


# -- statements straight to the driver ------------------------------------------------------------


class Compiled:
    """A Core statement compiled once for SQLite with given parameter names: its SQL, its
    parameters in order, and each one's conversion by its column's own type (what SQLAlchemy's
    execution does per statement, done once)."""

    def __init__(self, statement: ClauseElement, keys: tuple[str, ...], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        order = tuple(compiled.positiontup or ())
        # Each parameter is a value given by its name, or one the statement holds itself (a
        # literal in a WHERE clause): what `construct_params` would look up on every call.
        compiled.construct_params(dict.fromkeys(keys))  # raises for a parameter left out
        fixed = compiled.construct_params(_check=False)
        self.parts = tuple(
            (
                name in keys,
                name if name in keys else fixed[name],
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect),
            )
            for name in order
        )

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = (params[given] if named else given for named, given, _ in self.parts)
        return [
            value if convert is None else convert(value)
            for value, (_, _, convert) in zip(values, self.parts, strict=True)
        ]


class Rows:
    """The rows of a statement run by `Direct`, as much of SQLAlchemy's result as the store's
    statements ask of it."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if not self._rows:
            raise NoResultFound("No row was found when one was required")
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._rows[0][0]


class Direct:
    """One write transaction on an `InlineConnection` (the store's direct connection, used in
    this process's turn to write: `Database.direct`), its statements handed to the driver directly:
    no execution context, events or result objects per statement (~0.1 ms each, four times the
    statement itself). Only for statements built once (compiled forms are kept by statement),
    with plain column values; a driver error is raised as SQLAlchemy's, as its own execution
    would, and rolls the transaction back."""

    def __init__(self, inline: InlineConnection, dialect: Dialect) -> None:
        self._inline = inline
        self._dialect = dialect

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator["Direct"]:
        """BEGIN IMMEDIATE (waited for in a thread while another process writes), COMMIT on
        success, ROLLBACK on any error (the error is what is raised)."""
        await self._driver("BEGIN IMMEDIATE", [])
        try:
            yield self
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._inline._conn.rollback()
            raise
        await self._driver("COMMIT", [])

    async def execute(self, statement: ClauseElement, params: Mapping[str, Any] = EMPTY) -> Rows:
        compiled = _compiled(statement, tuple(params), self._dialect)
        return await self._driver(compiled.sql, compiled.arguments(params))

    async def _driver(self, sql: str, arguments: list[Any]) -> Rows:
        try:
            return await self._inline.run(self._run, sql, arguments)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, arguments, exc, sqlite3.Error) from exc

    def _run(self, sql: str, arguments: list[Any]) -> Rows:
        cursor = self._inline._conn.execute(sql, arguments)
        try:
            rows = cursor.fetchall() if cursor.description else []
            return Rows(rows)
        finally:
            cursor.close()


@lru_cache(maxsize=256)
def _compiled(statement: ClauseElement, keys: tuple[str, ...], dialect: Dialect) -> Compiled:
    return Compiled(statement, keys, dialect)
