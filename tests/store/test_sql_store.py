"""What is particular to `SqlStore` rather than to the protocol: migrations on open, the lock
order that keeps a sweep and a claim from deadlocking on PostgreSQL, and which driver errors
become `StoreOutage`."""

import asyncio
import sqlite3
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from taskloom.errors import StoreOutage, StoreUnavailable, is_outage
from taskloom.store.migrate import schema_head
from taskloom.store.sql import SqlStore
from taskloom.store.tables import TaskRow
from tests.store.factories import T0, make_task, running_run


async def test_open_applies_migrations(sql_store: SqlStore) -> None:
    """Opening a store brings an empty database to the newest schema revision."""
    assert await sql_store.schema_revision() == schema_head()


async def test_reopen_is_idempotent(db_url: str) -> None:
    """Opening the same database twice keeps its data and its schema revision."""
    first = SqlStore(db_url)
    await first.open()
    task = make_task()
    await first.add_task(task, max_per_owner=10)
    await first.close()
    second = SqlStore(db_url)
    await second.open()
    assert await second.get_task(task.id) == task
    assert await second.schema_revision() == schema_head()
    await second.close()


async def test_an_unreachable_server_is_an_outage() -> None:
    """A PostgreSQL server nobody listens for is StoreOutage (worth retrying), naming the URL."""
    store = SqlStore("postgresql://postgres@127.0.0.1:9/nothing")
    with pytest.raises(StoreOutage, match=r"127\.0\.0\.1:9") as caught:
        await store.open()
    assert is_outage(caught.value)
    await store.close()


async def test_a_damaged_file_is_not_an_outage(tmp_path: Any) -> None:
    """A file that is not a database is StoreUnavailable, not an outage to wait out."""
    path = tmp_path / "damaged.db"
    path.write_bytes(b"not a database, only some text that is long enough")
    with pytest.raises(StoreUnavailable) as caught:
        await SqlStore(f"sqlite:///{path}").open()
    assert not is_outage(caught.value)


async def waiting_on_a_lock(store: SqlStore) -> int:
    async with store.read() as s:
        found = await s.exec(
            text(  # type: ignore[call-overload]
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return int(found.one()[0])


async def test_a_sweep_and_a_claim_cannot_deadlock(pg_url: str) -> None:
    """A sweep of two expired runs meets a transaction that locks their tasks in id order, as a
    claim does, holding the first task while the sweep starts: the sweep waits its turn and both
    commit (on 0.1 the sweep held the second task, and PostgreSQL aborted one of them)."""
    store, claim = SqlStore(pg_url), SqlStore(pg_url)
    await store.open()
    await claim.open(migrate=False)
    try:
        first, second = make_task(0), make_task(1)
        for task in (first, second):
            await store.add_task(task, max_per_owner=10)
        # The second task's run is older, so a sweep in run order reaches its task first.
        await store.start_run(running_run(second, 0, holder="me", lease_s=1), owner="local")
        await store.start_run(running_run(first, 1, holder="me", lease_s=1), owner="local")
        async with claim.write() as s:
            await s.exec(_lock(first.id))
            sweep = asyncio.create_task(store.sweep_expired(T0 + timedelta(hours=1)))
            deadline = time.monotonic() + 60
            while not await waiting_on_a_lock(store) and not sweep.done():
                assert time.monotonic() < deadline, "the sweep never reached the locked task"
                await asyncio.sleep(0.05)
            await s.exec(_lock(second.id))
        swept = await asyncio.wait_for(sweep, timeout=60)
        assert sorted(r.task_id for r in swept) == sorted([first.id, second.id])
    finally:
        await claim.close()
        await store.close()


def _lock(task_id: str):  # type: ignore[no-untyped-def]
    return select(TaskRow).where(col(TaskRow.id) == task_id).with_for_update()


async def test_sqlite_keeps_times_as_utc_text_in_one_format(tmp_path: Any) -> None:
    """SQLite compares times as text, so every write keeps the one format rows already have
    (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC); a time without its fraction still reads back aware."""
    path = tmp_path / "t.db"
    store = SqlStore(f"sqlite:///{path}")
    await store.open()
    berlin = datetime(2026, 11, 30, 10, 0, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    task = make_task().model_copy(update={"created_at": berlin, "next_fire_at": None})
    await store.add_task(task, max_per_owner=10)
    raw = sqlite3.connect(path)
    query = "SELECT created_at, next_fire_at FROM tasks WHERE id = ?"
    assert raw.execute(query, (task.id,)).fetchone() == ("2026-11-30 09:00:00.000005", None)
    raw.execute("UPDATE tasks SET created_at = '2026-11-30 09:00:00' WHERE id = ?", (task.id,))
    raw.commit()
    raw.close()
    got = await store.get_task(task.id)
    assert got is not None
    assert got.created_at == datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)
    assert got.created_at.tzinfo is UTC
    await store.close()


async def test_an_owner_number_written_around_the_store_is_corrected_at_the_cap(
    sql_store: SqlStore,
) -> None:
    """owner_tasks is moved only by the store's own writes; should it say more than the owner
    has (tasks deleted around the store), the add that finds it past the cap counts the
    owner's tasks instead, goes through, and sets the number to the truth."""
    await sql_store.add_task(make_task(0, "alice"), max_per_owner=3)
    async with sql_store.transaction() as conn:
        await conn.execute(text("UPDATE owner_tasks SET tasks = 50 WHERE owner = 'alice'"))
    await sql_store.add_task(make_task(1, "alice"), max_per_owner=3)
    async with sql_store.transaction() as conn:
        found = await conn.execute(text("SELECT tasks FROM owner_tasks WHERE owner = 'alice'"))
        assert found.scalar() == 2
