"""The store contract, admission and figures: runs a principal asks for are recorded within its
quotas, in the transaction that checks them; the figures `scheduler_status` shows."""

from datetime import timedelta

import pytest

from taskloom.domain.runs import Run, RunCause, RunStatus
from taskloom.domain.storage import HEALTH_RUNS, MakeRun, Quotas, Store, stamped_run
from taskloom.domain.tasks import EventTrigger, Task
from taskloom.errors import Conflict, NotFound, QuotaExceeded
from tests.store.factories import T0, make_run, queued_run, running_run, stored_task

ME = "proc-me"
ROOMY = Quotas(concurrent=10, per_minute=10, queued=10)


def make(status: RunStatus = RunStatus.RUNNING, cause: RunCause = RunCause.MANUAL) -> MakeRun:
    """A run planner as the run service passes it: pure, from the task and its runs in flight."""

    def plan(task: Task, busy: int, queued: int) -> Run:
        return stamped_run(task, cause, T0, holder=ME, lease=timedelta(minutes=1), status=status)

    return plan


async def test_a_manual_run_is_admitted_and_held(store: Store) -> None:
    """An admitted run is stored running under the caller's lease; its task's last attempt moves."""
    task = await stored_task(store)
    got, run = await store.admit_manual(task.id, None, T0, ROOMY, make())
    assert got.id == task.id
    assert await store.get_run(run.id) == run
    after = await store.get_task(task.id)
    assert after is not None
    assert after.last_attempt_at == T0


async def test_the_planner_sees_the_task_s_runs_in_flight(store: Store) -> None:
    """The planner is told how many runs of the task are running and queued."""
    task = await stored_task(store, overlap="allow")
    await store.start_run(running_run(task, 0, holder=ME), owner="local")
    await store.add_run(queued_run(task, 1), owner="local")
    seen: list[tuple[int, int]] = []

    def plan(task: Task, busy: int, queued: int) -> Run:
        seen.append((busy, queued))
        return make()(task, busy, queued)

    await store.admit_manual(task.id, None, T0, ROOMY, plan)
    assert seen[-1] == (1, 1)


async def test_a_refusal_of_the_planner_records_nothing(store: Store) -> None:
    """A planner that refuses (overlap policy) leaves no run behind."""
    task = await stored_task(store)

    def refuse(task: Task, busy: int, queued: int) -> Run:
        raise Conflict("busy")

    with pytest.raises(Conflict, match="busy"):
        await store.admit_manual(task.id, None, T0, ROOMY, refuse)
    assert (await store.list_runs(owner=None)).items == []


async def test_another_owner_s_task_is_not_found(store: Store) -> None:
    """A principal cannot start a task of another principal: it does not exist for them."""
    task = await stored_task(store, owner="alice")
    with pytest.raises(NotFound):
        await store.admit_manual(task.id, "bob", T0, ROOMY, make())


async def test_the_rate_quota_refuses_and_records_nothing(store: Store) -> None:
    """Past the runs-per-minute quota a run is refused, naming the setting."""
    task = await stored_task(store, overlap="allow")
    quotas = Quotas(concurrent=10, per_minute=2, queued=10)
    for _ in range(2):
        await store.admit_manual(task.id, None, T0, quotas, make())
    with pytest.raises(QuotaExceeded, match="TASKLOOM_MAX_RUNS_PER_MINUTE"):
        await store.admit_manual(task.id, None, T0, quotas, make())
    assert len((await store.list_runs(owner=None)).items) == 2


async def test_the_concurrent_quota_counts_the_principal_s_running_runs(store: Store) -> None:
    """A principal at its concurrent quota cannot start another run, of any of its tasks."""
    first, second = await stored_task(store, 0), await stored_task(store, 1)
    quotas = Quotas(concurrent=1, per_minute=10, queued=10)
    await store.admit_manual(first.id, None, T0, quotas, make())
    with pytest.raises(QuotaExceeded, match="TASKLOOM_MAX_CONCURRENT_RUNS=1"):
        await store.admit_manual(second.id, None, T0, quotas, make())


async def test_an_event_admits_one_run_per_listening_task(store: Store) -> None:
    """Every active task of the principal listening to the event gets a run; others none."""
    listening = [
        await stored_task(store, n, trigger=EventTrigger(event="deployed"), next_fire_at=None)
        for n in range(2)
    ]
    await stored_task(store, 2, trigger=EventTrigger(event="other"), next_fire_at=None)
    await stored_task(store, 3, "bob", trigger=EventTrigger(event="deployed"), next_fire_at=None)
    admitted = await store.admit_event("deployed", "local", T0, ROOMY, make(cause=RunCause.EVENT))
    assert sorted(t.id for t, _ in admitted) == sorted(t.id for t in listening)
    assert all(r.status == RunStatus.RUNNING for _, r in admitted)


async def test_an_event_run_over_the_concurrent_quota_is_skipped(store: Store) -> None:
    """Past the concurrent quota an event's run is recorded skipped, naming the quota."""
    tasks = [
        await stored_task(store, n, trigger=EventTrigger(event="deployed"), next_fire_at=None)
        for n in range(2)
    ]
    quotas = Quotas(concurrent=1, per_minute=10, queued=10)
    admitted = await store.admit_event("deployed", None, T0, quotas, make(cause=RunCause.EVENT))
    assert [r.status for _, r in admitted] == [RunStatus.RUNNING, RunStatus.SKIPPED]
    skipped = await store.get_run(admitted[1][1].id)
    assert skipped is not None
    assert "TASKLOOM_MAX_CONCURRENT_RUNS" in (skipped.error or "")
    assert [t.id for t, _ in admitted] == [t.id for t in tasks]


async def test_figures_count_runs_and_tasks(store: Store) -> None:
    """The figures count queued (and due) runs, the leases of running ones, next fires, and
    each task's finished runs and successes."""
    task = await stored_task(store, overlap="allow")
    await store.add_run(make_run(task, 0), owner="local")
    await store.add_run(make_run(task, 1, RunStatus.FAILED), owner="local")
    await store.start_run(running_run(task, 2, holder=ME), owner="local")
    await store.add_run(queued_run(task, 3), owner="local")
    later = queued_run(task, 4, not_before=T0 + timedelta(hours=1), attempt=3)
    await store.add_run(later, owner="local")
    figures = await store.figures(T0, owner=None)
    assert (figures.queued, figures.queued_due) == (2, 1)
    assert [(lease.task_id, lease.holder) for lease in figures.running] == [(task.id, ME)]
    assert figures.next_fires == [(task.id, task.name, task.next_fire_at)]
    (health,) = figures.per_task
    assert (health.task_id, health.runs, health.succeeded) == (task.id, 2, 1)
    assert health.mean_duration_ms == pytest.approx(5.0)
    assert figures.tasks_by_status == {"active": 1}


async def test_figures_judge_each_task_by_its_newest_ended_runs(store: Store) -> None:
    """Per-task health covers each task's newest HEALTH_RUNS ended runs (older failures no longer
    count), busiest task first; runs not yet ended are not judged."""
    busy, quiet = await stored_task(store, 0), await stored_task(store, 1)
    await store.add_run(make_run(busy, 0, RunStatus.FAILED), owner="local")
    for n in range(1, HEALTH_RUNS + 1):
        await store.add_run(make_run(busy, n), owner="local")
    await store.add_run(make_run(quiet, 0, RunStatus.FAILED), owner="local")
    await store.add_run(make_run(quiet, HEALTH_RUNS + 1), owner="local")
    await store.add_run(queued_run(quiet, HEALTH_RUNS + 2), owner="local")
    figures = await store.figures(T0, owner=None)
    assert [(h.task_id, h.runs, h.succeeded) for h in figures.per_task] == [
        (busy.id, HEALTH_RUNS, HEALTH_RUNS),
        (quiet.id, 2, 1),
    ]
    assert [h.name for h in figures.per_task] == [busy.name, quiet.name]


async def test_figures_of_a_principal_leave_out_the_others(store: Store) -> None:
    """A principal's figures count only its own tasks and runs."""
    mine, theirs = await stored_task(store, 0, "alice"), await stored_task(store, 1, "bob")
    await store.add_run(make_run(theirs, 0), owner="bob")
    figures = await store.figures(T0, owner="alice")
    assert figures.per_task == []
    assert [i for i, _, _ in figures.next_fires] == [mine.id]
    assert figures.tasks_by_status == {"active": 1}
