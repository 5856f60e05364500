"""SQLite statements run on the event loop's thread, yet a locked database or a long read never
holds the loop: those move to a worker thread and still give the right answer."""

import asyncio
import sqlite3
from pathlib import Path

import pytest

from taskloom.store import inline_sqlite
from taskloom.store.database import bump
from taskloom.store.sql import SqlStore


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
