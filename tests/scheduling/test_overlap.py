"""A task firing every second whose step takes 1.5 s: the overlap policy decides what a fire does
while the previous run is still going. Every check reads the run records afterwards."""

from datetime import datetime
from itertools import combinations

import pytest

from taskloom.runs.model import Run, RunStatus
from tests.scheduling.conftest import Db, Workers, step, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

FIRES = 6


async def slow_fires(db: Db, workers: Workers, overlap: str) -> list[Run]:
    """The runs one worker records for six fires of the slow task, the worker then stopped."""
    workers.start(1)
    task = await db.create(trigger={"every": "1s"}, steps=[step(1.5)], overlap=overlap)

    async def fired() -> bool:
        return len(await db.runs(task.id)) >= FIRES

    await wait_until(fired, 40, what=f"{FIRES} fires")
    assert workers.stop() == [0]
    return await db.runs(task.id)


def overlapping(runs: list[Run]) -> list[tuple[str, str]]:
    """Pairs of runs that were executing at the same time."""
    spans = [(r.id, r.started_at, r.finished_at) for r in runs if r.started_at and r.finished_at]
    return [(a, b) for (a, s1, e1), (b, s2, e2) in combinations(spans, 2) if s1 < e2 and s2 < e1]


def waiting(runs: list[Run]) -> list[tuple[datetime, datetime]]:
    """From when to when each run that had to wait was queued (until the end, if never taken)."""
    end = max(r.finished_at or r.created_at for r in runs)
    return [
        (r.created_at, r.started_at or end)
        for r in runs
        if r.status != RunStatus.SKIPPED and (r.started_at is None or r.started_at > r.created_at)
    ]


async def test_skip_records_a_skipped_run_and_runs_one_at_a_time(db: Db, workers: Workers) -> None:
    """Overlap 'skip' records a skipped run for a fire that comes while a run is going."""
    runs = await slow_fires(db, workers, "skip")
    skipped = [r for r in runs if r.status == RunStatus.SKIPPED]
    assert (len(skipped) >= 2, overlapping(runs)) == (True, [])
    assert "still in progress" in (skipped[0].error or "")


async def test_queue_keeps_at_most_one_run_waiting(db: Db, workers: Workers) -> None:
    """Overlap 'queue' keeps one fire waiting, runs it after the previous, and skips the rest."""
    runs = await slow_fires(db, workers, "queue")
    spans = waiting(runs)
    both = [(a, b) for a, b in combinations(spans, 2) if a[0] < b[1] and b[0] < a[1]]
    assert (len(spans) >= 2, both, overlapping(runs)) == (True, [], [])
    assert any("already waiting" in (r.error or "") for r in runs)


async def test_allow_runs_fires_concurrently(db: Db, workers: Workers) -> None:
    """Overlap 'allow' executes each fire at once, overlapping the previous runs."""
    runs = await slow_fires(db, workers, "allow")
    assert {r.status for r in runs} == {RunStatus.SUCCEEDED}
    assert len(overlapping(runs)) >= 2
