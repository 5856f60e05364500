"""Fires that came due while no process claimed them, and then the task was paused or edited
before any process came back: the pause or edit moves the task's next fire past them, so no
later claim would ever see them. The chaos test lost such fires (no run row at all) whenever
every worker was down or still starting when it paused its tasks. Driven on a frozen clock with
no scheduler loops: the fires are due because the clock moved, not because a machine was slow."""

from collections.abc import Callable
from datetime import timedelta

from taskloom.clock import FrozenClock
from taskloom.domain.runs import RunCause, RunStatus
from taskloom.domain.tasks import Task, TaskPatch
from taskloom.services import Services
from tests.scheduling.conftest import T0, hourly, runs_of, scheduler

UNCLAIMED = 4


async def every_second(services: Services, url: str) -> Task:
    """A task firing every second from T0 + 1 h, the hour a process would first claim it."""
    start = (T0 + timedelta(hours=1)).isoformat()
    return await hourly(services, url, trigger={"every": "1s", "start_at": start})


async def test_pausing_records_each_unclaimed_due_fire_as_missed(
    pair: tuple[Services, Services], clock: FrozenClock, counted: tuple[str, Callable[[], int]]
) -> None:
    """Pausing a task records every fire that came due unclaimed as missed, saying why."""
    a, _ = pair
    task = await every_second(a, counted[0])
    assert task.next_fire_at is not None
    clock.set(task.next_fire_at + timedelta(seconds=UNCLAIMED - 1, milliseconds=500))
    await a.tasks.set_enabled(task.id, False, owner=None)
    runs = await runs_of(a, task)
    expected = [task.next_fire_at + timedelta(seconds=k) for k in range(UNCLAIMED)]
    assert sorted(r.fire_time for r in runs if r.fire_time) == expected
    assert {(r.status, r.cause) for r in runs} == {(RunStatus.MISSED, RunCause.CATCHUP)}
    assert all("when the task was paused" in (r.error or "") for r in runs)
    assert all(r.finished_at == clock.now() for r in runs)


async def test_a_timer_late_for_a_paused_fire_claims_nothing(
    pair: tuple[Services, Services], clock: FrozenClock, counted: tuple[str, Callable[[], int]]
) -> None:
    """A process whose timer goes off for a fire the pause recorded adds no run and runs
    nothing: each fire has exactly one row."""
    a, b = pair
    url, executions = counted
    task = await every_second(a, url)
    assert task.next_fire_at is not None
    clock.set(task.next_fire_at + timedelta(seconds=1))
    await a.tasks.set_enabled(task.id, False, owner=None)
    assert await scheduler(b)._claim_batch({task.id: task.next_fire_at}) == []
    runs = await runs_of(a, task)
    assert (len(runs), len({r.fire_time for r in runs}), executions()) == (2, 2, 0)


async def test_editing_records_the_unclaimed_fires_of_the_old_schedule(
    pair: tuple[Services, Services], clock: FrozenClock, counted: tuple[str, Callable[[], int]]
) -> None:
    """An edit that reschedules a task records the fires that came due unclaimed under its old
    schedule as missed before the new schedule takes over."""
    a, _ = pair
    task = await every_second(a, counted[0])
    assert task.next_fire_at is not None
    clock.set(task.next_fire_at + timedelta(seconds=UNCLAIMED - 1))
    patch = TaskPatch.model_validate({"trigger": {"every": "1h"}})
    await a.tasks.update(task.id, patch, owner="local")
    runs = await runs_of(a, task)
    assert len(runs) == UNCLAIMED
    assert all(r.status == RunStatus.MISSED for r in runs)
    assert all("when the task was edited" in (r.error or "") for r in runs)
    edited = await a.tasks.get(task.id, owner=None)
    assert edited.next_fire_at is not None
    assert edited.next_fire_at > clock.now()


async def test_pausing_a_task_with_no_due_fire_records_nothing(
    pair: tuple[Services, Services], clock: FrozenClock, counted: tuple[str, Callable[[], int]]
) -> None:
    """Pausing a task whose next fire is still ahead adds no run row."""
    a, _ = pair
    task = await every_second(a, counted[0])
    assert task.next_fire_at is not None
    clock.set(task.next_fire_at - timedelta(milliseconds=1))
    await a.tasks.set_enabled(task.id, False, owner=None)
    assert await runs_of(a, task) == []
