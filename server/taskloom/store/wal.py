"""SQLite's write-ahead log copied back into the database file off the request path.

SQLite checkpoints on its own in the connection whose commit brings the log past
`wal_autocheckpoint` pages (1,000 by default): that commit then copies the whole log into the
file first, a few milliseconds instead of a tenth of one, and one create, claim or run record
in about a hundred paid for it (the p99 of create_task). Here a background task asks for a
PASSIVE checkpoint every `CHECKPOINT_EVERY_S` in a worker thread, on a connection of its own:
it copies what no reader still needs and never waits for a lock. A commit checkpoints on its
own only past `AUTOCHECKPOINT_PAGES`, should this process's loop be too busy to get to it.
"""

import asyncio
import contextlib
import sqlite3
from urllib.parse import quote

import structlog

log = structlog.get_logger(__name__)

CHECKPOINT_EVERY_S = 1.0
# The log's length (pages of 4 KB) past which a commit checkpoints on its own, as a backstop.
AUTOCHECKPOINT_PAGES = 10_000


class Checkpointer:
    def __init__(self, database: str, every_s: float | None = None) -> None:
        self.database = database
        self.every_s = CHECKPOINT_EVERY_S if every_s is None else every_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sqlite-checkpoints")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await asyncio.to_thread(self.checkpoint)
            except sqlite3.Error as exc:  # the store's own operations report the database
                log.debug("wal_checkpoint_failed", error=str(exc))

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (1 if it could not finish, pages in the log, pages copied).
        On a connection of its own, closed after it: one still running when the store closes
        finishes by itself, on nothing the store closes."""
        # mode=rw: a database moved or deleted meanwhile is an error here, not a new empty file.
        conn = sqlite3.connect(
            f"file:{quote(self.database)}?mode=rw", uri=True, timeout=0, isolation_level=None
        )
        try:
            busy, logged, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()
        return int(busy), int(logged), int(copied)
