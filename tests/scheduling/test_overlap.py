"""What a fire does while the previous run of its task is still going, per overlap policy. The
fires are claimed one after another on a frozen clock while the first run stays running, so
nothing depends on how fast the machine is (the real-timer version of these tests failed on a
busy machine); each step counts its executions on a loopback endpoint."""

from collections.abc import Callable
from datetime import timedelta

from taskloom.clock import FrozenClock
from taskloom.domain.runs import RunStatus
from taskloom.domain.storage import Claimed
from taskloom.domain.tasks import Task
from taskloom.services import Services
from tests.scheduling.conftest import T0, drain, hourly, runs_of, scheduler

FIRES = 3


async def three_fires(a: Services, clock: FrozenClock, url: str, overlap: str) -> list[Claimed]:
    """Claims three successive fires, a second apart (within the first run's lease), of a task;
    none of their runs is launched yet."""
    every_second = {"every": "1s", "start_at": (T0 + timedelta(hours=1)).isoformat()}
    task: Task = await hourly(a, url, overlap=overlap, trigger=every_second)
    claimed: list[Claimed] = []
    for _ in range(FIRES):
        task = await a.tasks.get(task.id, owner=None)
        assert task.next_fire_at is not None
        clock.set(task.next_fire_at)
        claimed += await scheduler(a)._claim_batch({task.id: task.next_fire_at})
    return claimed


async def statuses(a: Services, claimed: list[Claimed]) -> list[RunStatus]:
    return [r.status for r in await runs_of(a, claimed[0].task)]


async def test_skip_records_the_fires_that_come_while_a_run_goes(
    pair: tuple[Services, Services], clock: FrozenClock, counted: tuple[str, Callable[[], int]]
) -> None:
    """Overlap 'skip' records a skipped run, with the policy named, for each fire that comes
    while a run is going."""
    a, _ = pair
    url, _ = counted
    claimed = await three_fires(a, clock, url, "skip")
    runs = await runs_of(a, claimed[0].task)
    assert [r.status for r in runs] == [RunStatus.RUNNING, RunStatus.SKIPPED, RunStatus.SKIPPED]
    assert "overlap policy 'skip'" in (runs[1].error or "")


async def test_queue_keeps_one_run_waiting_and_runs_it_after_the_previous(
    pair: tuple[Services, Services], clock: FrozenClock, counted: tuple[str, Callable[[], int]]
) -> None:
    """Overlap 'queue' keeps one fire waiting, skips the rest, and starts the waiting one only
    once the previous run has ended."""
    a, _ = pair
    url, executions = counted
    claimed = await three_fires(a, clock, url, "queue")
    assert await statuses(a, claimed) == [RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.SKIPPED]
    await scheduler(a)._take_queued()  # the first run is still going: the queued one waits
    assert (await statuses(a, claimed))[1] == RunStatus.QUEUED
    scheduler(a)._start(claimed[0])
    await drain(a)
    clock.set(clock.now() + timedelta(milliseconds=500))
    await scheduler(a)._take_queued()
    await drain(a)
    first, second, third = await runs_of(a, claimed[0].task)
    assert (first.status, second.status, third.status, executions()) == (
        RunStatus.SUCCEEDED, RunStatus.SUCCEEDED, RunStatus.SKIPPED, 2,
    )  # fmt: skip
    assert "already waiting" in (third.error or "")
    assert first.finished_at is not None
    assert second.started_at is not None
    assert second.started_at >= first.finished_at


async def test_allow_runs_every_fire_at_once(
    pair: tuple[Services, Services], clock: FrozenClock, counted: tuple[str, Callable[[], int]]
) -> None:
    """Overlap 'allow' starts each fire while the previous runs are still going."""
    a, _ = pair
    url, executions = counted
    claimed = await three_fires(a, clock, url, "allow")
    assert await statuses(a, claimed) == [RunStatus.RUNNING] * FIRES
    for each in claimed:
        scheduler(a)._start(each)
    await drain(a)
    assert (await statuses(a, claimed), executions()) == ([RunStatus.SUCCEEDED] * FIRES, FIRES)
