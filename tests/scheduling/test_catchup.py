"""Fires missed while no process ran are handled by the task's catch-up policy at the next start.

Each task fires hourly on a grid anchored 5 h 30 min ago, so six fires (5 h 30 min ... 30 min ago)
fall in the downtime; `Db.move_next_fire` puts its next fire back at the first of them.
"""

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from taskloom.domain.runs import Run, RunCause, RunStatus
from tests.scheduling.conftest import Db, Workers, ago, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DOWNTIME_FIRES = 6
ENDED = {RunStatus.SUCCEEDED, RunStatus.MISSED}


async def after_downtime(db: Db, workers: Workers, **policy: Any) -> tuple[list[Run], Any]:
    """The runs two workers record for the six fires of the downtime, once all have ended."""
    start = ago(5.5 * 3600)
    task = await db.create(trigger={"every": "1h", "start_at": start.isoformat()}, **policy)
    await db.move_next_fire(task.id, start)
    workers.start(2)

    async def settled() -> list[Run] | None:
        runs = await db.runs(task.id)
        done = len(runs) == DOWNTIME_FIRES and all(r.status in ENDED for r in runs)
        return runs if done else None

    runs = await wait_until(settled, 150, what="the downtime's fires to be handled")
    return sorted(runs, key=lambda r: r.fire_time or start), await db.task(task.id)


def statuses(runs: list[Run]) -> list[tuple[str, str]]:
    return [(r.status.value, r.cause.value) for r in runs]


async def test_skip_records_every_missed_fire(db: Db, workers: Workers) -> None:
    """Catch-up 'skip' records each fire of the downtime as missed and runs none."""
    runs, _ = await after_downtime(db, workers, catchup="skip")
    assert statuses(runs) == [("missed", "catchup")] * DOWNTIME_FIRES


async def test_latest_runs_the_most_recent_fire_once(db: Db, workers: Workers) -> None:
    """Catch-up 'latest' runs the most recent missed fire and records the others as missed."""
    runs, _ = await after_downtime(db, workers, catchup="latest")
    missed = [("missed", "catchup")] * (DOWNTIME_FIRES - 1)
    assert statuses(runs) == [*missed, ("succeeded", "catchup")]


async def test_all_runs_each_missed_fire(db: Db, workers: Workers) -> None:
    """Catch-up 'all' runs every fire of the downtime, one at a time, oldest first."""
    runs, _ = await after_downtime(db, workers, catchup="all")
    assert statuses(runs) == [("succeeded", "catchup")] * DOWNTIME_FIRES
    starts = [r.started_at for r in runs]
    assert starts == sorted(starts)


async def test_window_limits_catch_up_to_recent_fires(db: Db, workers: Workers) -> None:
    """Fires older than the catch-up window are recorded as missed, newer ones run."""
    runs, _ = await after_downtime(db, workers, catchup="all", catchup_window_s=2 * 3600)
    assert statuses(runs) == [("missed", "catchup")] * 4 + [("succeeded", "catchup")] * 2
    assert "catch-up window" in (runs[0].error or "")


async def test_schedule_resumes_on_its_grid_after_catch_up(db: Db, workers: Workers) -> None:
    """After catching up, the next fire is the grid's next instant after now."""
    runs, task = await after_downtime(db, workers, catchup="latest")
    last = max(r.fire_time for r in runs if r.fire_time is not None)
    assert task.next_fire_at == last + timedelta(hours=1)
    assert Counter(r.cause for r in runs) == {RunCause.CATCHUP: DOWNTIME_FIRES}
