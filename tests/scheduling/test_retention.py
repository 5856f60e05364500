"""Pruning does not stop firing: while a large prune goes through its batches, a task's fires are
claimed, run and recorded, on SQLite and PostgreSQL, on a frozen clock; and a started scheduler
prunes on its own."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from taskloom.clock import FrozenClock
from taskloom.domain.runs import RunStatus
from taskloom.domain.tasks import Task, TaskSpec
from taskloom.runs.retention import Retention, RetentionPolicy
from taskloom.scheduling.scheduler import Scheduler
from taskloom.services import Services
from tests.conftest import make_settings
from tests.scheduling.conftest import (
    T0,
    claim_due,
    drain,
    scheduler,
    two_processes,
    wait_until,
)
from tests.store.test_retention import add_runs, stored_ids
from tests.store.test_store_contract import make_task

OLD_RUNS = 1500
MOST_FIRES = 20


@pytest.fixture
async def pruning(db_url: str, tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Services]:
    """A process whose policy keeps 30 days and the last 5 runs, pruning 25 runs a batch."""
    settings = make_settings(
        tmp_path, database_url=db_url, retention_days=30, retention_keep_last=5,
        retention_batch=25,
    )  # fmt: skip
    async with two_processes(settings, clock) as (a, _):
        yield a


async def every_hour(services: Services) -> Task:
    spec = TaskSpec.model_validate(
        {
            "name": f"firing {uuid.uuid4().hex[:8]}",
            "trigger": {"every": "1h", "start_at": (T0 + timedelta(hours=1)).isoformat()},
            "steps": [{"id": "pause", "tool": "wait", "args": {"seconds": 0}}],
        }
    )
    return (await services.tasks.create(spec, owner="local")).task


async def test_fires_go_on_while_a_large_prune_runs(pruning: Services, clock: FrozenClock) -> None:
    """Every fire claimed during a prune of thousands of runs is run and recorded, and the prune
    removes exactly the old runs."""
    old_task = make_task(99)
    await pruning.store.add_task(old_task, max_per_owner=100)
    await add_runs(pruning.store, old_task, [40 + i / 100 for i in range(OLD_RUNS)])
    task = await every_hour(pruning)
    assert pruning.retention is not None
    prune = asyncio.create_task(pruning.retention.prune())
    fired = 0
    while not prune.done() and fired < MOST_FIRES:
        assert task.next_fire_at is not None
        clock.set(task.next_fire_at)
        claimed = await claim_due(pruning, task)
        scheduler(pruning)._start(claimed)
        await drain(pruning)
        task = claimed.task.model_copy(update={"next_fire_at": claimed.plan.next_fire_at})
        fired += 1
    report = await prune
    assert fired > 1  # fires were claimed while the prune was still going
    runs = (await pruning.store.list_runs(owner=None, task_id=task.id, limit=100)).items
    assert len(runs) == fired
    assert {r.status for r in runs} == {RunStatus.SUCCEEDED}
    assert report.pruned == OLD_RUNS - 5
    assert len(await stored_ids(pruning.store, old_task)) == 5


async def test_the_scheduler_prunes_on_its_own(pruning: Services, clock: FrozenClock) -> None:
    """A started scheduler prunes old runs at its retention interval, with no one asking."""
    old_task = make_task(98).model_copy(update={"trigger": None, "next_fire_at": None})
    await pruning.store.add_task(old_task, max_per_owner=100)
    await add_runs(pruning.store, old_task, [40 + i for i in range(30)])
    policy = RetentionPolicy(days=30, keep_last=5, batch=10, interval_s=0.05)
    ticking = Scheduler(
        pruning.store, pruning.runs, clock, process_id="pruner", role="test",
        retention=Retention(pruning.store, clock, policy, pause_s=0),
    )  # fmt: skip
    await ticking.start()
    try:

        async def pruned() -> bool:
            return len(await stored_ids(pruning.store, old_task)) == 5

        await wait_until(pruned, 30, what="the scheduler's prune")
    finally:
        await ticking.stop(grace_s=0)
