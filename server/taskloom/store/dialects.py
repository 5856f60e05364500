"""What differs between SQLite and PostgreSQL, each in one class: engines and pragmas, how rows
are locked, upserts, advisory locks, and how a failure is explained. The query modules ask their
`Dialect` instead of branching on the database's name.

SQLite has one writer at a time: every write transaction starts with `BEGIN IMMEDIATE` (a
deferred BEGIN that later upgrades to a write lock fails under contention instead of waiting),
in WAL mode with a busy timeout, so several processes can share one file, and the write lock
serialises what PostgreSQL serialises with row locks and advisory locks.
"""

import json
import sqlite3
import zlib
from pathlib import Path
from typing import Any, TypeVar

from pydantic_core import PydanticSerializationError, to_json
from sqlalchemy import Table, event, func, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.selectable import Select

from taskloom.store import inline_sqlite, wal

BUSY_TIMEOUT_MS = 30_000
MIGRATION_LOCK = 7300501
S = TypeVar("S", bound=Select[Any])


def _set_up(cursor: Any, *, inline: bool) -> None:
    """The settings of each SQLite connection (`cursor`: a DB-API cursor or connection)."""
    # Takes effect only on a new, empty file (an older one keeps its mode until a VACUUM):
    # pruned runs' pages are then given back batch by batch (store/retention).
    cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
    cursor.execute("PRAGMA journal_mode=WAL")
    if not inline:  # inline, a busy database is waited for in a thread instead
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    else:  # checkpoints happen off the request path (store/wal.py)
        cursor.execute(f"PRAGMA wal_autocheckpoint={wal.AUTOCHECKPOINT_PAGES}")
    cursor.execute("PRAGMA synchronous=NORMAL")


def json_text(value: Any) -> str:
    """A JSON column's value as stored: compact JSON by pydantic's serializer (~2.7x faster than
    `json.dumps`, which SQLAlchemy uses by default). A string holding a lone surrogate (a
    `\\ud800` escape in an upstream's JSON) is not UTF-8: `json.dumps` escapes it. A value that
    is no JSON at all raises pydantic's serialization error."""
    try:
        return to_json(value).decode()
    except PydanticSerializationError as exc:
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            raise exc from None


class Dialect:
    """The common part; subclasses say what their database does differently."""

    name = ""

    def __init__(self, url: str) -> None:
        self.url = url

    def prepare(self) -> None:
        """Make what must exist before the first connection (SQLite: the file's folder)."""

    def engines(self) -> tuple[AsyncEngine, AsyncEngine]:
        """The engine for reads and the one for write transactions (may be the same)."""
        raise NotImplementedError

    def locked(self, query: S) -> S:
        """`query` taking row locks until commit, where the database locks rows."""
        return query

    def skip_locked(self, query: S) -> S:
        """`query` locking its rows, leaving out those another transaction holds."""
        return query

    def upsert(self, table: Table) -> Any:
        """INSERT ... ON CONFLICT for `table` (the dialect's own Insert)."""
        raise NotImplementedError

    def checkpointer(self) -> "wal.Checkpointer | None":
        """What keeps the database's log short in the background while the store is open."""
        return None

    @property
    def serial_writes(self) -> bool:
        """Whether this process's writers take turns (`Database` holds them to one at a time):
        SQLite has one writer at a time anyway."""
        return False

    def direct_connection(self) -> "inline_sqlite.InlineConnection | None":
        """A connection of its own for the hottest writes (`Database.direct`), where the
        dialect runs statements straight on the driver (SQLite in place); else None."""
        return None

    async def lock_key(self, conn: AsyncConnection, namespace: int, key: str) -> None:
        """Serialise the transactions that name `key` until commit."""

    async def lock_migrations(self, conn: AsyncConnection) -> None:
        """Serialise processes that migrate the same database at once."""

    def problem(self) -> str | None:
        """The true cause of a failure when the database itself shows it, else None."""
        return None

    def epoch_s(self, column: Any) -> Any:
        """A timestamp column as seconds since the epoch (the queue's order: store/priority.py)."""
        return func.extract("epoch", column)


class SqliteDialect(Dialect):
    name = "sqlite"

    def epoch_s(self, column: Any) -> Any:
        return (func.julianday(column) - 2440587.5) * 86400.0  # naive UTC text, parsed

    def prepare(self) -> None:
        database = make_url(self.url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)

    def engines(self) -> tuple[AsyncEngine, AsyncEngine]:
        return self._engine(immediate=False), self._engine(immediate=True)

    def _engine(self, *, immediate: bool) -> AsyncEngine:
        # One connection for the writers, who take turns (`Database`, `serial_writes`).
        pool: dict[str, Any] = (
            {"pool_size": 1, "max_overflow": 0, "pool_timeout": BUSY_TIMEOUT_MS / 1000}
            if immediate
            else {}
        )
        database = self._inline_file()
        inline = database is not None
        if database is not None:  # statements run on the loop's thread: see inline_sqlite
            connect = inline_sqlite.connector(database, BUSY_TIMEOUT_MS, reads=not immediate)
            pool["async_creator"] = connect
        engine = create_async_engine(
            self.url,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
            json_serializer=json_text,
            **pool,
        )
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            _set_up(cursor, inline=inline)
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

        return engine

    def upsert(self, table: Table) -> Any:
        return sqlite_insert(table)

    @property
    def serial_writes(self) -> bool:
        return True

    def _inline_file(self) -> str | None:
        """The database file, whose statements run in place (`inline_sqlite`); None for
        ":memory:", which goes through aiosqlite (one database per connection)."""
        database = make_url(self.url).database
        return database if database and database != ":memory:" else None

    def direct_connection(self) -> "inline_sqlite.InlineConnection | None":
        database = self._inline_file()
        if database is None:
            return None
        try:
            conn = inline_sqlite.open_connection(database)
            _set_up(conn, inline=True)
        except sqlite3.Error as exc:  # as SQLAlchemy's pool raises it: the store explains it
            raise DBAPIError.instance("connect", [], exc, sqlite3.Error) from exc
        return inline_sqlite.InlineConnection(conn, BUSY_TIMEOUT_MS, interruptible=False)

    def checkpointer(self) -> "wal.Checkpointer | None":
        database = self._inline_file()
        return wal.Checkpointer(database) if database is not None else None

    def problem(self) -> str | None:
        from taskloom.store.reachability import sqlite_problem

        return sqlite_problem(make_url(self.url).database)


class PostgresDialect(Dialect):
    name = "postgresql"

    def engines(self) -> tuple[AsyncEngine, AsyncEngine]:
        # No pool_pre_ping: it costs a round trip per transaction. A connection found broken is
        # invalidated by SQLAlchemy (and the store answers StoreOutage); the next checkout opens
        # a fresh one. pool_recycle retires connections before servers or proxies drop idle ones.
        engine = create_async_engine(
            self.url, pool_size=10, pool_recycle=1800, json_serializer=json_text
        )
        return engine, engine

    def locked(self, query: S) -> S:
        return query.with_for_update()

    def skip_locked(self, query: S) -> S:
        return query.with_for_update(skip_locked=True)

    def upsert(self, table: Table) -> Any:
        return pg_insert(table)

    async def lock_key(self, conn: AsyncConnection, namespace: int, key: str) -> None:
        signed = zlib.crc32(key.encode()) - 2**31
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": namespace, "key": signed}
        )

    async def lock_migrations(self, conn: AsyncConnection) -> None:
        await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))


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


def dialect_for(url: str) -> Dialect:
    """The dialect of an async URL (see `async_url`)."""
    name = make_url(url).get_backend_name()
    return SqliteDialect(url) if name == "sqlite" else PostgresDialect(url)
