"""The store contract, the dashboard's and the metrics' reads: recent runs per task, scheduled
starts, counts and next fires, each seen by its owner only."""

from datetime import timedelta

from taskloom.domain.runs import RunStatus, RunTrigger
from taskloom.domain.storage import Store
from tests.store.factories import T0, make_run, stored_task


async def test_recent_runs_are_each_task_s_newest_first(store: Store) -> None:
    """Each task gets at most `per_task` of its own runs, newest first; a task without runs
    gets an empty list."""
    one, two, idle = [await stored_task(store, n) for n in range(3)]
    runs = [make_run(task, n) for n in range(4) for task in (one, two)]
    for run in runs:
        await store.add_run(run, owner="local")
    found = await store.recent_runs([one.id, two.id, idle.id], per_task=3, owner=None)
    newest_of_one = [r.id for r in reversed(runs) if r.task_id == one.id][:3]
    assert [p.run_id for p in found[one.id]] == newest_of_one
    assert len(found[two.id]) == 3
    assert found[idle.id] == []
    assert found[one.id][0].duration_ms == 5


async def test_recent_runs_hide_other_owners(store: Store) -> None:
    """Another owner's task yields no runs."""
    task = await stored_task(store, owner="alice")
    await store.add_run(make_run(task), owner="alice")
    assert await store.recent_runs([task.id], per_task=5, owner="bob") == {task.id: []}


async def test_recent_starts_are_scheduled_runs_that_started(store: Store) -> None:
    """Only schedule and catch-up runs with a start and a fire time count, newest first."""
    task = await stored_task(store)
    scheduled = make_run(task, 1)
    manual = make_run(task, 2).model_copy(update={"trigger": RunTrigger.MANUAL})
    late = make_run(task, 3).model_copy(update={"started_at": T0 + timedelta(seconds=5)})
    for run in (scheduled, manual, late):
        await store.add_run(run, owner="local")
    starts = await store.recent_starts(owner=None, limit=10)
    assert [p.run_id for p in starts] == [late.id, scheduled.id]
    assert starts[0].started_at is not None
    assert starts[0].fire_time is not None
    assert (starts[0].started_at - starts[0].fire_time).total_seconds() == 2


async def test_gauges_count_queue_running_and_tasks(store: Store) -> None:
    """Queued (and due by now), running runs and tasks by status are counted per owner."""
    task = await stored_task(store, owner="alice")
    later = T0 + timedelta(hours=1)
    queued = [make_run(task, n, RunStatus.QUEUED) for n in range(2)]
    waiting = queued[1].model_copy(update={"not_before": later})
    for run in (queued[0], waiting, make_run(task, 5, RunStatus.RUNNING)):
        await store.add_run(run, owner="alice")
    counts = await store.gauges(T0 + timedelta(minutes=1), owner="alice")
    assert (counts.queued, counts.queued_due, counts.running) == (2, 1, 1)
    assert counts.tasks_by_status == {"active": 1}
    assert (await store.gauges(T0, owner="bob")).tasks_by_status == {}


async def test_next_fires_are_the_soonest_active_tasks(store: Store) -> None:
    """Active tasks with a next fire come soonest first, up to the limit."""
    late = await stored_task(store, 1, next_fire_at=T0 + timedelta(hours=3))
    soon = await stored_task(store, 2, next_fire_at=T0 + timedelta(hours=1))
    await stored_task(store, 3, next_fire_at=None)
    fires = await store.next_fires(owner=None, limit=5)
    assert [(i, n) for i, n, _ in fires] == [(soon.id, soon.name), (late.id, late.name)]
    assert len(await store.next_fires(owner=None, limit=1)) == 1
