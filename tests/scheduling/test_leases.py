"""Leases across processes: a killed process's run is recovered by a survivor; a stopping process
keeps its leases while it drains, and records what it could not finish."""

from datetime import timedelta

import pytest

from taskloom.domain.runs import Run, RunStatus
from tests.scheduling.conftest import LEASE_S, Db, Workers, step, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

LONG_FIRST_ATTEMPT = step("{{ 30 if run.attempt == 1 else 0 }}")


async def first_run_held(db: Db, workers: Workers, count: int, **fields: object) -> tuple[Run, int]:
    """`count` workers, a one-shot task due in 2 s, and its first run once a worker holds it."""
    workers.start(count)
    await wait_until(lambda: _alive(db, count), 120, what=f"{count} workers")
    at = (db.now() + timedelta(seconds=2)).isoformat()
    task = await db.create(trigger={"at": at}, **fields)

    async def held() -> tuple[Run, int] | None:
        runs = await db.runs(task.id)
        pid = await db.pid_holding(runs[0].id) if runs else None
        return (runs[0], pid) if pid and runs[0].status == RunStatus.RUNNING else None

    return await wait_until(held, 60, what="a worker to hold the run")


async def _alive(db: Db, count: int) -> bool:
    return len(await db.processes()) >= count


async def attempts(db: Db, task_id: str, count: int, *wanted: RunStatus) -> list[Run] | None:
    runs = sorted(await db.runs(task_id), key=lambda r: r.attempt)
    done = len(runs) == count and all(r.status in wanted for r in runs)
    return runs if done else None


async def test_killed_process_run_is_interrupted_and_retried(db: Db, workers: Workers) -> None:
    """A run whose process is killed is marked interrupted once its lease expires, and its retry
    runs on a surviving worker."""
    retry = {"attempts": 2, "backoff_s": 0}
    run, pid = await first_run_held(db, workers, 3, steps=[LONG_FIRST_ATTEMPT], retry=retry)
    workers.kill(pid)
    ended = (RunStatus.INTERRUPTED, RunStatus.SUCCEEDED)
    runs = await wait_until(lambda: attempts(db, run.task_id, 2, *ended), 6 * LEASE_S)
    assert [(r.status, r.cause.value) for r in runs] == [
        (RunStatus.INTERRUPTED, "schedule"),
        (RunStatus.SUCCEEDED, "retry"),
    ]
    assert str(pid) in (runs[0].error or "")
    assert await db.pid_holding(runs[1].id) not in (None, pid)


async def test_stopping_worker_keeps_its_lease_while_draining(db: Db, workers: Workers) -> None:
    """A worker stopped with SIGTERM keeps renewing the lease of a run longer than the lease
    while it drains, so the run succeeds instead of being swept by another worker."""
    workers.grace_s = 20
    run, pid = await first_run_held(db, workers, 2, steps=[step(2 * LEASE_S)])
    holder = next(p for p in workers.procs if p.pid == pid)
    assert workers.stop(holder) == [0]
    final = await db.services.runs.get(run.id, owner=None)
    assert (final.status, final.error) == (RunStatus.SUCCEEDED, None)


async def test_run_beyond_the_grace_is_interrupted_and_retried(db: Db, workers: Workers) -> None:
    """A run still going when the shutdown grace ends is recorded interrupted by its own worker,
    and its retry runs on another worker."""
    workers.grace_s = 1
    retry = {"attempts": 2, "backoff_s": 0}
    run, pid = await first_run_held(db, workers, 2, steps=[LONG_FIRST_ATTEMPT], retry=retry)
    holder = next(p for p in workers.procs if p.pid == pid)
    assert workers.stop(holder) == [0]
    ended = (RunStatus.INTERRUPTED, RunStatus.SUCCEEDED)
    runs = await wait_until(lambda: attempts(db, run.task_id, 2, *ended), 4 * LEASE_S)
    assert [r.status for r in runs] == [RunStatus.INTERRUPTED, RunStatus.SUCCEEDED]
    assert "shutting down" in (runs[0].error or "")
