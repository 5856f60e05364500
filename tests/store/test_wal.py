"""SQLite's log is copied back into the database file by a background checkpoint while the
store is open, not by whichever commit happens to bring it past SQLite's threshold."""

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from taskloom.store import wal
from taskloom.store.sql import SqlStore
from tests.store.factories import make_task


def _in_file(path: Path) -> bool:
    """Whether the database file itself holds every page (in WAL mode only a checkpoint
    writes to it; the pages of later commits wait in the log)."""
    with sqlite3.connect(path) as db:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    return path.stat().st_size >= pages * size


def _log_frames(path: Path) -> int:
    """How many pages the log holds (or held, before a checkpoint let it start over)."""
    with sqlite3.connect(path) as db:
        frame = db.execute("PRAGMA page_size").fetchone()[0] + 24
    return Path(f"{path}-wal").stat().st_size // frame


async def _write(store: SqlStore, tasks: int) -> None:
    for n in range(tasks):
        await store.add_task(make_task(n), max_per_owner=1000)


async def test_commits_leave_their_pages_in_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the background checkpoint far off, creates do not checkpoint on their own past
    SQLite's default of 1,000 pages (a commit does so only past AUTOCHECKPOINT_PAGES): the log
    grows on, where a checkpoint would have let the next commit start it over."""
    monkeypatch.setattr(wal, "CHECKPOINT_EVERY_S", 3600.0)
    path = tmp_path / "store.db"
    store = SqlStore(f"sqlite:///{path}")
    await store.open()
    try:
        await _write(store, 400)
        assert _log_frames(path) > 1500
        assert not _in_file(path)
    finally:
        await store.close()


async def test_the_log_is_checkpointed_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's checkpointer copies the log into the file within a few of its periods while
    the store is open, and stops with it."""
    monkeypatch.setattr(wal, "CHECKPOINT_EVERY_S", 0.05)
    path = tmp_path / "store.db"
    store = SqlStore(f"sqlite:///{path}")
    await store.open()
    checkpointer = store.db._checkpointer
    assert isinstance(checkpointer, wal.Checkpointer)
    try:
        await _write(store, 300)
        deadline = time.monotonic() + 120
        while not _in_file(path):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    finally:
        await store.close()
    assert checkpointer._task is None


def test_a_checkpoint_copies_the_whole_log_when_no_reader_holds_it(tmp_path: Path) -> None:
    """One PASSIVE checkpoint: every page of the log copied, nothing waited for."""
    path = tmp_path / "log.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA wal_autocheckpoint={wal.AUTOCHECKPOINT_PAGES}")
    db.execute("CREATE TABLE t (x TEXT)")
    for i in range(200):
        db.execute("INSERT INTO t VALUES (?)", (str(i) * 100,))
    checkpointer = wal.Checkpointer(str(path))
    busy, logged, copied = checkpointer.checkpoint()
    assert busy == 0
    assert logged > 100
    assert copied == logged
    db.close()


def test_a_checkpoint_of_a_database_gone_meanwhile_makes_no_new_file(tmp_path: Path) -> None:
    """A database moved or deleted while a process runs is an error for the checkpoint (logged
    at debug by the background task), never an empty new file in its place."""
    path = tmp_path / "gone 1%.db"
    with pytest.raises(sqlite3.OperationalError):
        wal.Checkpointer(str(path)).checkpoint()
    assert not path.exists()
