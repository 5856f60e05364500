"""Read-only views of run history for the dashboard and the metrics: recent runs per task and
how late scheduled runs started. The queries live in the store (`store/stats.py`)."""

from datetime import datetime

from taskloom.store.claims import Claims, ProcessInfo
from taskloom.store.sql import Store
from taskloom.store.stats import (
    Gauges,
    RunPoint,
    gauges,
    next_fires,
    recent_runs,
    recent_starts,
)

# Runs per task behind a sparkline and a success rate.
RECENT_RUNS = 20
# Scheduled runs behind the scheduler page's lateness figures.
LATENESS_WINDOW = 50


class Insight:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def recent_runs(
        self, task_ids: list[str], *, owner: str | None, per_task: int = RECENT_RUNS
    ) -> dict[str, list[RunPoint]]:
        """Each task's newest runs, newest first (no outputs, no steps)."""
        return await recent_runs(self.store, task_ids, per_task=per_task, owner=owner)

    async def recent_starts(
        self, *, owner: str | None, limit: int = LATENESS_WINDOW
    ) -> list[RunPoint]:
        """The newest scheduled runs that started, newest first."""
        return await recent_starts(self.store, owner=owner, limit=limit)

    async def gauges(self, now: datetime, *, owner: str | None = None) -> Gauges:
        """Queue, running runs and tasks by status, of one owner (None: every owner); counted
        in SQL, unlike scheduler_status's per-task figures, which read every finished run."""
        return await gauges(self.store, now, owner=owner)

    async def next_fires(self, *, owner: str | None, limit: int) -> list[tuple[str, str, datetime]]:
        """(task id, name, when) of the soonest fires of the owner's active tasks."""
        return await next_fires(self.store, owner=owner, limit=limit)

    async def processes(self, alive_since: datetime) -> list[ProcessInfo]:
        """The Taskloom processes whose heartbeat is newer than `alive_since`."""
        return await Claims(self.store).processes(alive_since)
