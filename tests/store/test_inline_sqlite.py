"""SQLite statements run on the event loop's thread, yet a locked database or a long read never
holds the loop: those move to a worker thread and still give the right answer."""

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import bindparam, func, insert, select

from taskloom.errors import NameTaken, StoreUnavailable
from taskloom.store import inline_sqlite
from taskloom.store.database import bump
from taskloom.store.records import TASKS
from taskloom.store.sql import SqlStore
from taskloom.store.tables import TaskRow
from tests.store.factories import T0, make_task


def _fill(path: Path, rows: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE numbers (n INTEGER)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO numbers VALUES (?)", ((i,) for i in range(rows)))
    db.execute("COMMIT")
    db.close()


async def test_a_long_read_finishes_in_a_thread_with_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read still going after the inline budget is interrupted and run again whole in a
    thread, and answers every row."""
    path = tmp_path / "numbers.db"
    _fill(path, 20_000)
    monkeypatch.setattr(inline_sqlite, "INLINE_BUDGET_S", 0.0)  # every statement goes over
    moved: list[str] = []
    real = inline_sqlite.InlineConnection._patiently

    def patiently(self: inline_sqlite.InlineConnection, function: object, *args: object) -> object:
        moved.append(str(args[0]))
        return real(self, function, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(inline_sqlite.InlineConnection, "_patiently", patiently)
    conn = await inline_sqlite.connector(str(path), 30_000, reads=True)()
    try:
        cursor = conn.cursor()
        await cursor.execute("SELECT n FROM numbers ORDER BY n DESC", ())
        rows = await cursor.fetchall()
    finally:
        await conn.close()
    assert len(rows) == 20_000
    assert rows[0] == (19_999,)
    assert moved == ["SELECT n FROM numbers ORDER BY n DESC"]


async def test_a_write_waits_for_another_writer_without_holding_the_loop(tmp_path: Path) -> None:
    """While another connection holds the write lock, a write transaction waits for it in a
    thread: the loop goes on meanwhile, and the write lands once the lock is released."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = SqlStore(url)
    await store.open()
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")

        async def bumped() -> int:
            async with store.write() as s:
                await bump(s)
            return await store.tasks_revision()

        write = asyncio.create_task(bumped())
        ticks = 0
        while ticks < 20 and not write.done():  # the loop keeps turning while the write waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20
        assert not write.done()  # the lock is still held: it cannot have been written
        other.execute("COMMIT")
        assert await asyncio.wait_for(write, 60) == 1
    finally:
        other.close()
        await store.close()


async def test_a_task_written_directly_is_the_row_sqlalchemy_writes(tmp_path: Path) -> None:
    """`Database.direct` hands a create's statements to the driver with each column's own
    conversion done as SQLAlchemy does it: the stored row is the same text, value for value,
    as SQLAlchemy's own execution of the same statement writes (times, JSON, enums, nulls)."""
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    await store.open()
    task = make_task(0, name="Ärger report", description="multi\nline", next_fire_at=T0)
    twin = task.model_copy(update={"id": "tsk_twin", "name": "twin"})
    try:
        async with store.db.direct() as conn:
            assert isinstance(conn, inline_sqlite.Direct)
            await conn.execute(insert(TASKS), TaskRow.values(task))
        async with store.transaction() as conn:
            await conn.execute(insert(TASKS), TaskRow.values(twin))
        assert await store.get_task(task.id) == task
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "store.db") as db:
        db.row_factory = sqlite3.Row
        rows = {r["id"]: dict(r) for r in db.execute("SELECT * FROM tasks")}
    direct, twin_row = rows[task.id], rows["tsk_twin"]
    different = {k for k in direct if direct[k] != twin_row[k]}
    assert different == {"id", "name", "name_key"}
    assert direct["spec"].startswith("{")  # JSON text, as SQLAlchemy writes it


async def test_a_direct_statement_refused_by_sqlite_is_our_error(tmp_path: Path) -> None:
    """A driver error on the direct path becomes the store's own error as on SQLAlchemy's: a
    second task of a name is `NameTaken`, and the transaction leaves nothing behind."""
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    await store.open()
    try:
        first = make_task(0, name="Digest")
        await store.add_task(first, max_per_owner=10)
        with pytest.raises(NameTaken):
            async with store.db.direct() as conn:
                await conn.execute(insert(TASKS), TaskRow.values(make_task(1, name="DIGEST")))
        listed = await store.list_tasks(owner=None)
        assert [t.id for t in listed.items] == [first.id]
    finally:
        await store.close()


async def test_a_direct_statement_binds_its_own_literals_and_needs_every_parameter(
    tmp_path: Path,
) -> None:
    """A literal the statement holds (`status == 'active'`) is bound with it as SQLAlchemy
    binds it; a parameter left out is refused before anything runs, not bound as NULL."""
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    await store.open()
    try:
        task = make_task(0)
        await store.add_task(task, max_per_owner=10)
        active = (
            select(func.count())
            .select_from(TASKS)
            .where(TASKS.c.status == "active", TASKS.c.owner == bindparam("owner"))
        )
        async with store.db.direct() as conn:
            assert (await conn.execute(active, {"owner": task.owner})).scalar_one() == 1
            assert (await conn.execute(active, {"owner": "nobody"})).scalar_one() == 0
        with pytest.raises(StoreUnavailable):  # as SQLAlchemy's own execution is refused
            async with store.db.direct() as conn:
                await conn.execute(active, {})
    finally:
        await store.close()


async def test_this_process_writers_take_turns_with_the_direct_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create (its own connection) waits for this process's write in progress on the pool's
    connection: its turn comes when that one commits, with no busy wait in SQLite (no
    statement had to wait for the file's lock in a thread), and both land."""
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    await store.open()
    waited_in_thread = []
    patiently = inline_sqlite.InlineConnection._patiently

    def noted(self: inline_sqlite.InlineConnection, *args: object) -> object:
        waited_in_thread.append(args)
        return patiently(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(inline_sqlite.InlineConnection, "_patiently", noted)
    try:
        holding, release = asyncio.Event(), asyncio.Event()

        async def long_write() -> None:
            async with store.write() as s:
                await bump(s)
                holding.set()
                await release.wait()

        writing = asyncio.create_task(long_write())
        await asyncio.wait_for(holding.wait(), 60)
        task = make_task(0)
        create = asyncio.create_task(store.add_task(task, max_per_owner=10))
        for _ in range(20):  # the create waits for its turn, whatever the loop does meanwhile
            await asyncio.sleep(0.01)
        assert not create.done()
        release.set()
        await asyncio.wait_for(asyncio.gather(writing, create), 60)
        assert await store.get_task(task.id) == task
        assert await store.tasks_revision() == 2  # the write's bump and the create's
        assert waited_in_thread == []
    finally:
        await store.close()
