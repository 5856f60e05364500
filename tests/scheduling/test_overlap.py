"""What a fire does while the previous run of its task is still going, per overlap policy.

Driven by state, not time: each run's one step calls a loopback gate that holds it until the test
opens it, so a run is really in progress while the next fires are claimed (one after another, on
a frozen clock); the test then waits, polling the database with a generous deadline, for the
outcome. Nothing depends on how fast the machine is."""

from datetime import timedelta

from taskloom.clock import FrozenClock
from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.storage import Claimed
from taskloom.domain.tasks import Task
from taskloom.services import Services
from tests.scheduling.conftest import T0, Gate, hourly, runs_of, scheduler, wait_until

FIRES = 3
DEADLINE_S = 60
SUCCEEDED, QUEUED, RUNNING, SKIPPED = (
    RunStatus.SUCCEEDED, RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SKIPPED,
)  # fmt: skip


async def gated_task(a: Services, gate: Gate, overlap: str) -> Task:
    """A task firing every second from T0 + 1 h whose step waits at `gate`."""
    every_second = {"every": "1s", "start_at": (T0 + timedelta(hours=1)).isoformat()}
    return await hourly(a, gate.url, overlap=overlap, trigger=every_second)


async def claim_next(a: Services, clock: FrozenClock, task: Task) -> list[Claimed]:
    """Moves the clock to the task's next fire and claims it."""
    task = await a.tasks.get(task.id, owner=None)
    assert task.next_fire_at is not None
    clock.set(task.next_fire_at)
    return await scheduler(a)._claim_batch({task.id: task.next_fire_at})


async def entered(gate: Gate, count: int) -> None:
    async def reached() -> bool:
        return gate.entered() >= count

    await wait_until(reached, DEADLINE_S, what=f"{count} run(s) to reach the gate")


async def runs_become(a: Services, task: Task, statuses: list[RunStatus]) -> list[Run]:
    async def probe() -> list[Run] | None:
        runs = await runs_of(a, task)
        return runs if [r.status for r in runs] == statuses else None

    found: list[Run] = await wait_until(probe, DEADLINE_S, what=f"runs {statuses}")
    return found


async def first_run_held(a: Services, clock: FrozenClock, gate: Gate, overlap: str) -> Task:
    """A task whose first fire's run is started and held at the gate."""
    task = await gated_task(a, gate, overlap)
    (first,) = await claim_next(a, clock, task)
    scheduler(a)._start(first)
    await entered(gate, 1)
    return task


async def test_skip_records_the_fires_that_come_while_a_run_goes(
    pair: tuple[Services, Services], clock: FrozenClock, gate: Gate
) -> None:
    """Overlap 'skip' records a skipped run, with the policy named, for each fire that comes
    while a run is going."""
    a, _ = pair
    task = await first_run_held(a, clock, gate, "skip")
    for _ in range(FIRES - 1):
        for claimed in await claim_next(a, clock, task):
            assert claimed.plan.to_start == []
    assert [r.status for r in await runs_of(a, task)] == [RUNNING, SKIPPED, SKIPPED]
    gate.open()
    runs = await runs_become(a, task, [SUCCEEDED, SKIPPED, SKIPPED])
    assert "overlap policy 'skip'" in (runs[1].error or "")
    assert gate.entered() == 1


async def test_queue_keeps_one_run_waiting_and_runs_it_after_the_previous(
    pair: tuple[Services, Services], clock: FrozenClock, gate: Gate
) -> None:
    """Overlap 'queue' keeps one fire waiting, skips the rest, and starts the waiting one only
    once the previous run has ended."""
    a, _ = pair
    task = await first_run_held(a, clock, gate, "queue")
    for _ in range(FIRES - 1):
        await claim_next(a, clock, task)
    assert [r.status for r in await runs_of(a, task)] == [RUNNING, QUEUED, SKIPPED]
    await scheduler(a)._take_queued()  # the first run is held at the gate: the queued one waits
    assert [r.status for r in await runs_of(a, task)] == [RUNNING, QUEUED, SKIPPED]
    gate.open()
    await runs_become(a, task, [SUCCEEDED, QUEUED, SKIPPED])
    clock.set(clock.now() + timedelta(milliseconds=500))
    await scheduler(a)._take_queued()
    first, second, third = await runs_become(a, task, [SUCCEEDED, SUCCEEDED, SKIPPED])
    assert gate.entered() == 2
    assert "already waiting" in (third.error or "")
    assert first.finished_at is not None
    assert second.started_at is not None
    assert second.started_at >= first.finished_at


async def test_allow_runs_every_fire_at_once(
    pair: tuple[Services, Services], clock: FrozenClock, gate: Gate
) -> None:
    """Overlap 'allow' starts each fire while the previous runs are still going."""
    a, _ = pair
    task = await first_run_held(a, clock, gate, "allow")
    for held in range(2, FIRES + 1):
        (claimed,) = await claim_next(a, clock, task)
        scheduler(a)._start(claimed)
        await entered(gate, held)  # every earlier run is still held at the gate
    assert [r.status for r in await runs_of(a, task)] == [RUNNING] * FIRES
    gate.open()
    await runs_become(a, task, [SUCCEEDED] * FIRES)
    assert gate.entered() == FIRES
