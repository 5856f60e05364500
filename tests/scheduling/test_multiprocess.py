"""Three worker processes share one database: every fire is recorded exactly once."""

from collections import Counter
from datetime import timedelta

import pytest

from taskloom.domain.runs import Run
from tests.scheduling.conftest import Db, Workers, wait_until

TASKS = 50
FIRES_PER_TASK = 8
EVERY = timedelta(seconds=1)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]


async def fire_all_then_stop(db: Db, workers: Workers) -> tuple[list[str], list[Run]]:
    """50 tasks firing every second under three workers until each has 8 fires recorded."""
    workers.start(3)
    await wait_until(lambda: _alive(db, 3), 120, what="three workers")
    tasks = [await db.create(name=f"t{i}", trigger={"every": "1s"}) for i in range(TASKS)]
    ids = [t.id for t in tasks]

    async def enough() -> bool:
        counts = Counter(r.task_id for r in await db.all_runs())
        return min(counts.get(i, 0) for i in ids) >= FIRES_PER_TASK

    await wait_until(enough, 180, what=f"{FIRES_PER_TASK} fires of every task")
    assert workers.stop() == [0, 0, 0]
    return ids, await db.all_runs()


async def _alive(db: Db, count: int) -> bool:
    return len(await db.processes()) >= count


async def test_every_fire_is_recorded_exactly_once(db: Db, workers: Workers) -> None:
    """Across three processes, every fire of a task's grid from its first fire to its next one
    is recorded exactly once, and every run has ended after SIGTERM."""
    ids, runs = await fire_all_then_stop(db, workers)
    by_task: dict[str, list[Run]] = {i: [] for i in ids}
    for run in runs:
        by_task[run.task_id].append(run)
    fires = sum(len(v) for v in by_task.values())
    duplicates = sum(len(v) - len({r.fire_time for r in v}) for v in by_task.values())
    lost = sum([await _lost(db, task_id, v) for task_id, v in by_task.items()])
    unended = [r.id for r in runs if not r.status.finished]
    print(f"\n{db.services.store.dialect}: fires={fires} duplicates={duplicates} lost={lost}")
    print(Counter(r.status.value for r in runs), Counter(r.lease_owner for r in runs))
    assert (fires >= TASKS * FIRES_PER_TASK, duplicates, lost, unended) == (True, 0, 0, [])


async def _lost(db: Db, task_id: str, runs: list[Run]) -> int:
    """Grid instants from the task's first fire up to its next fire that have no run."""
    task = await db.task(task_id)
    assert task.next_fire_at is not None
    fire, grid = task.created_at + EVERY, set()
    while fire < task.next_fire_at:
        grid.add(fire)
        fire += EVERY
    return len(grid - {r.fire_time for r in runs})
