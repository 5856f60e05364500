"""The timer follows task changes: this process's own at once and without a rebuild, another
process's through the revision poll (a rebuild)."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from taskloom.domain.tasks import TaskSpec
from taskloom.scheduling.scheduler import Instants, Scheduler, Timer, Timing
from taskloom.services import build_services
from taskloom.store.sql import SqlStore
from tests.conftest import make_settings
from tests.scheduling.conftest import wait_until
from tests.store.factories import make_task

SPEC = {
    "steps": [{"id": "a", "tool": "wait", "args": {"seconds": 0}}],
    "trigger": {"cron": "0 9 1 1 *"},
}


def timer_of(scheduler: Scheduler, task_id: str) -> object:
    assert scheduler._timer is not None
    return scheduler._timer.armed.get(task_id)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Scheduler, Timer]]:
    """A started scheduler (polling every 50 ms) and its timer."""
    services = build_services(make_settings(tmp_path), timing=Timing(poll_s=0.05))
    await services.start()
    try:
        scheduler = services.scheduler
        assert scheduler is not None
        assert scheduler._timer is not None
        yield scheduler, scheduler._timer
    finally:
        await services.stop()


async def test_own_changes_need_no_rebuild_and_others_get_one(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=db_url)
    services = build_services(settings, timing=Timing(poll_s=0.05))
    await services.start()
    other = SqlStore(db_url)  # another process's store on the same database
    await other.open()
    try:
        scheduler = services.scheduler
        assert scheduler is not None
        rebuilds = 0
        rebuild = scheduler.rebuild

        async def counted() -> None:
            nonlocal rebuilds
            rebuilds += 1
            await rebuild()

        scheduler.rebuild = counted  # type: ignore[method-assign]
        made = []
        for n in range(3):
            spec = TaskSpec.model_validate({**SPEC, "name": f"own {n}"})
            made.append((await services.tasks.create(spec, owner="local")).task)
        paused = await services.tasks.set_enabled(made[0].id, False, owner="local")
        await services.tasks.delete(made[1].id, owner="local", delete_runs=False)
        revision = await services.store.tasks_revision()

        async def caught_up() -> bool:
            return scheduler._revision == revision

        await wait_until(caught_up, 30, what="the poll to reach the own changes' revision")
        await asyncio.sleep(0.3)  # a few more polls
        assert rebuilds == 0
        assert paused.task.next_fire_at is None
        assert timer_of(scheduler, made[0].id) is None
        assert timer_of(scheduler, made[1].id) is None
        assert timer_of(scheduler, made[2].id) is not None

        far = datetime.now(UTC) + timedelta(days=300)  # not due: the timer only waits
        foreign = make_task(7, name="made elsewhere", next_fire_at=far)
        await other.add_task(foreign, max_per_owner=100)

        async def armed() -> object:
            return timer_of(scheduler, foreign.id)

        await wait_until(armed, 30, what="the timer of a task another process made")
        assert rebuilds >= 1
    finally:
        await other.close()
        await services.stop(grace_s=0)


async def test_a_timer_later_than_the_earliest_wakes_nothing_and_an_earlier_one_fires(
    running: tuple[Scheduler, Timer],
) -> None:
    """APScheduler recomputes its own timer only for a job earlier than its earliest one (a
    wake-up per create re-armed it for nothing); a job later than that one stays armed, and an
    earlier one goes off on time."""
    scheduler, timer = running
    wakeups = 0
    wakeup = timer.aps.wakeup

    def counted() -> None:  # the wake-ups that recompute APScheduler's timer
        nonlocal wakeups
        wakeups += 0 if timer.quiet else 1
        wakeup()

    timer.aps.wakeup = counted  # type: ignore[method-assign]
    went_off: list[str] = []
    timer.went_off = lambda task_id, at: went_off.append(task_id)
    now = datetime.now(UTC)
    scheduler._set_timer("tsk_hour", now + timedelta(hours=1))
    woken = wakeups
    scheduler._set_timer("tsk_two_hours", now + timedelta(hours=2))
    assert wakeups == woken  # later than the earliest: APScheduler's timer stands
    assert timer_of(scheduler, "tsk_two_hours") is not None
    scheduler._set_timer("tsk_soon", datetime.now(UTC) + timedelta(milliseconds=200))
    assert wakeups == woken + 1

    async def fired() -> bool:
        return went_off == ["tsk_soon"]

    await wait_until(fired, 30, what="the earlier timer to go off")
    assert timer_of(scheduler, "tsk_hour") is not None


def test_tasks_due_at_one_instant_share_its_timer() -> None:
    """One timer per instant: a second task due then adds no job; a task moved away or
    disarmed leaves the instant's timer to the others, and the last one out removes it."""
    at = datetime(2027, 1, 1, 9, tzinfo=UTC)
    later = at + timedelta(days=1)
    instants = Instants()
    assert instants.add("tsk_a", at)  # a new instant: it needs a timer
    assert not instants.add("tsk_b", at)  # shares it
    assert instants.remove("tsk_a") is None  # tsk_b still waits for it
    assert instants.add("tsk_a", later)
    assert instants.remove("tsk_b") == at  # the last one out: the timer goes
    assert instants.remove("tsk_b") is None  # not armed
    assert instants.add("tsk_c", later) is False
    assert instants.come(later) == ["tsk_a", "tsk_c"]
    assert instants.armed == {}
    assert instants.come(later) == []


async def test_an_instant_fires_every_task_armed_at_it_once(
    running: tuple[Scheduler, Timer],
) -> None:
    scheduler, timer = running
    went_off: list[tuple[str, datetime]] = []
    timer.went_off = lambda task_id, at: went_off.append((task_id, at))
    soon = datetime.now(UTC) + timedelta(milliseconds=300)
    for task_id in ("tsk_1", "tsk_2", "tsk_3", "tsk_moved"):
        scheduler._set_timer(task_id, soon)
    scheduler._set_timer("tsk_moved", soon + timedelta(hours=1))
    scheduler._set_timer("tsk_3", None)
    assert len(timer.aps.get_jobs()) == 2  # one per instant, not per task

    async def fired() -> bool:
        return len(went_off) >= 2

    await wait_until(fired, 30, what="the shared instant to go off")
    await asyncio.sleep(0.2)  # nothing else goes off
    assert went_off == [("tsk_1", soon), ("tsk_2", soon)]
    assert timer.armed == {"tsk_moved": soon + timedelta(hours=1)}
    assert len(timer.aps.get_jobs()) == 1


async def test_one_instant_written_with_two_offsets_is_one_timer(
    running: tuple[Scheduler, Timer],
) -> None:
    scheduler, timer = running
    at = datetime.now(UTC) + timedelta(hours=3)
    paris = at.astimezone(timezone(timedelta(hours=1)))
    scheduler._set_timer("tsk_utc", at)
    scheduler._set_timer("tsk_paris", paris)
    assert len(timer.aps.get_jobs()) == 1
    scheduler._set_timer("tsk_utc", None)
    scheduler._set_timer("tsk_paris", None)  # the last one out, written differently
    assert timer.aps.get_jobs() == []
    scheduler._set_timer("tsk_again", paris)  # a new timer, not a clash with a stale one
    assert len(timer.aps.get_jobs()) == 1
