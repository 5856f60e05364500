"""Read-only views of run history for the dashboard and the metrics: recent runs per task, how
late scheduled runs started, counts and live processes. The queries live in the store
(`store/stats.py`), behind the storage protocol."""

from datetime import datetime

from taskloom.domain.storage import Gauges, ProcessInfo, RunPoint, Store

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
        return await self.store.recent_runs(task_ids, per_task=per_task, owner=owner)

    async def recent_starts(
        self, *, owner: str | None, limit: int = LATENESS_WINDOW
    ) -> list[RunPoint]:
        """The newest scheduled runs that started, newest first."""
        return await self.store.recent_starts(owner=owner, limit=limit)

    async def gauges(self, now: datetime, *, owner: str | None = None) -> Gauges:
        """Queue, running runs and tasks by status, of one owner (None: every owner), counted
        in SQL."""
        return await self.store.gauges(now, owner=owner)

    async def next_fires(self, *, owner: str | None, limit: int) -> list[tuple[str, str, datetime]]:
        """(task id, name, when) of the soonest fires of the owner's active tasks."""
        return await self.store.next_fires(owner=owner, limit=limit)

    async def processes(self, alive_since: datetime) -> list[ProcessInfo]:
        """The Taskloom processes whose heartbeat is newer than `alive_since`."""
        return await self.store.processes(alive_since)
