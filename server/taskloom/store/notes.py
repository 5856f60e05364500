"""Notes added to a finished run's record after it was written: what happened after the run
(a notification that could not be delivered), kept with the run so nobody has to read logs."""

from sqlalchemy import func, update
from sqlmodel import col

from taskloom.store.database import Database
from taskloom.store.tables import RunRow

MAX_NOTE_CHARS = 2000


class RunNotes:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, run_id: str, note: str) -> bool:
        """Append `note` to the run's error text (on a line of its own); False if no such run."""
        note = note[:MAX_NOTE_CHARS]
        error = col(RunRow.error)
        joined = func.coalesce(error + "\n", "") + note
        change = update(RunRow).where(col(RunRow.id) == run_id).values(error=joined)
        async with self.db.write() as s:
            result = await s.exec(change)
            return bool(result.rowcount)
