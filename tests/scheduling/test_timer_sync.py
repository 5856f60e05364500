"""The timer follows task changes: this process's own at once and without a rebuild, another
process's through the revision poll (a rebuild)."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from taskloom.domain.tasks import TaskSpec
from taskloom.scheduling.scheduler import Scheduler, Timing
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
    assert scheduler._aps is not None
    return scheduler._aps.get_job(task_id)


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
    tmp_path: Path,
) -> None:
    """APScheduler recomputes its own timer only for a job earlier than its earliest one (a
    wake-up per create re-armed it for nothing); a job later than that one stays armed, and an
    earlier one goes off on time."""
    services = build_services(make_settings(tmp_path), timing=Timing(poll_s=0.05))
    await services.start()
    try:
        scheduler = services.scheduler
        assert scheduler is not None
        assert scheduler._aps is not None
        wakeups = 0
        wakeup = scheduler._aps.wakeup

        def counted() -> None:  # the wake-ups that recompute APScheduler's timer
            nonlocal wakeups
            wakeups += 0 if scheduler._aps._quiet else 1
            wakeup()

        scheduler._aps.wakeup = counted
        went_off: list[str] = []
        scheduler._timer_went_off = lambda task_id, at: went_off.append(task_id)  # type: ignore[method-assign]
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
    finally:
        await services.stop()
