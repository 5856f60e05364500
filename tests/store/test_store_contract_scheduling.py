"""The store contract, scheduling: claiming fires and queued runs, leases, sweeping the runs of
dead processes, and the process registry."""

from datetime import datetime, timedelta

from taskloom.domain.runs import RunStatus, RunTrigger
from taskloom.domain.storage import Claimed, FireContext, ProcessInfo, Store
from taskloom.domain.tasks import IntervalTrigger, RetryPolicy, Task, TaskStatus
from tests.store.factories import T0, make_task, queued_run, running_run, stored_task

ME, OTHER = "proc-me", "proc-other"
DUE = T0 + timedelta(hours=1)


def hourly(n: int = 0, **changes: object) -> Task:
    """A task firing every hour from T0, its next fire at DUE."""
    trigger = IntervalTrigger(every=3600, start_at=T0)
    return make_task(n).model_copy(update={"trigger": trigger, "next_fire_at": DUE, **changes})


def context(now: datetime = DUE, holder: str = ME) -> FireContext:
    return FireContext(now=now, holder=holder, lease=timedelta(minutes=1), clock=lambda: now)


async def test_scheduled_lists_the_next_fires_of_active_tasks(store: Store) -> None:
    """The timer is rebuilt from every active task's next fire; paused tasks have none."""
    active, paused = hourly(0), hourly(1, status=TaskStatus.PAUSED)
    for task in (active, paused):
        await store.add_task(task, max_per_owner=10)
    assert await store.scheduled() == [(active.id, DUE)]


async def test_a_fire_is_claimed_once(store: Store) -> None:
    """Two claims of one fire: the first records it, the second learns the next fire time."""
    task = hourly()
    await store.add_task(task, max_per_owner=10)
    first = await store.claim_fires({task.id: DUE}, context())
    second = await store.claim_fires({task.id: DUE}, context(holder=OTHER))
    claimed = first[task.id]
    assert isinstance(claimed, Claimed)
    assert claimed.plan.next_fire_at == DUE + timedelta(hours=1)
    assert second == {task.id: DUE + timedelta(hours=1)}


async def test_a_claimed_fire_records_a_run_its_claimer_holds(store: Store) -> None:
    """The fire's run is stored running under the claiming process's lease, and the task moves
    on to its next fire."""
    task = hourly()
    await store.add_task(task, max_per_owner=10)
    claimed = (await store.claim_fires({task.id: DUE}, context()))[task.id]
    assert isinstance(claimed, Claimed)
    (run,) = claimed.plan.to_start
    stored = await store.get_run(run.id)
    assert stored is not None
    assert (stored.status, stored.lease_owner, stored.fire_time) == (RunStatus.RUNNING, ME, DUE)
    assert stored.lease_expires_at == DUE + timedelta(minutes=1)
    after = await store.get_task(task.id)
    assert after is not None
    assert (after.next_fire_at, after.last_attempt_at) == (DUE + timedelta(hours=1), DUE)


async def test_a_fire_of_a_busy_task_is_recorded_skipped(store: Store) -> None:
    """Under overlap 'skip', a fire while the task's run still goes is recorded as skipped."""
    task = hourly()
    await store.add_task(task, max_per_owner=10)
    await store.start_run(running_run(task, 0, holder=OTHER), owner="local")
    claimed = (await store.claim_fires({task.id: DUE}, context()))[task.id]
    assert isinstance(claimed, Claimed)
    assert [r.status for r in claimed.plan.runs] == [RunStatus.SKIPPED]
    assert claimed.plan.to_start == []


async def test_a_fire_of_a_paused_or_deleted_task_is_not_claimed(store: Store) -> None:
    """A task paused or deleted since its timer was set answers None: nothing to fire."""
    paused = hourly(0, status=TaskStatus.PAUSED)
    await store.add_task(paused, max_per_owner=10)
    gone = "tsk_00000000000000000000000000"
    assert await store.claim_fires({paused.id: DUE, gone: DUE}, context()) == {
        paused.id: None, gone: None,
    }  # fmt: skip
    assert (await store.list_runs(owner=None)).items == []


async def test_claim_queued_takes_due_runs_for_the_holder(store: Store) -> None:
    """A due queued run is taken, running under the holder's lease; one not yet due stays."""
    due_task, later_task = await stored_task(store, 0), await stored_task(store, 1)
    due = queued_run(due_task, 0)
    later = queued_run(later_task, 1, not_before=T0 + timedelta(hours=1))
    for run, task in ((due, due_task), (later, later_task)):
        await store.add_run(run, owner=task.owner)
    until = T0 + timedelta(minutes=1)
    taken = await store.claim_queued(ME, T0, until, 10)
    assert [(t.id, r.id, r.status, r.lease_owner) for t, r in taken] == [
        (due_task.id, due.id, RunStatus.RUNNING, ME),
    ]
    stored = await store.get_run(due.id)
    assert stored is not None
    assert (stored.lease_owner, stored.lease_expires_at) == (ME, until)
    assert await store.claim_queued(OTHER, T0, until, 10) == []


async def test_a_queued_retry_of_an_allow_task_starts_beside_its_running_run(
    store: Store,
) -> None:
    """A due queued run of an `overlap: allow` task is taken while another of its runs goes;
    for any other overlap policy it waits."""
    allow = await stored_task(store, 0, overlap="allow")
    skip = await stored_task(store, 1)
    for n, task in enumerate((allow, skip)):
        await store.start_run(running_run(task, n, holder=OTHER), owner=task.owner)
        await store.add_run(queued_run(task, n + 2), owner=task.owner)
    taken = await store.claim_queued(ME, T0, T0 + timedelta(minutes=1), 10)
    assert [(task.id, run.trigger) for task, run in taken] == [(allow.id, RunTrigger.RETRY)]


async def test_a_queued_run_of_a_paused_task_is_cancelled(store: Store) -> None:
    """A queued run whose task was paused is not taken but recorded cancelled, saying why."""
    task = await stored_task(store, status=TaskStatus.PAUSED)
    run = queued_run(task)
    await store.add_run(run, owner="local")
    assert await store.claim_queued(ME, T0, T0 + timedelta(minutes=1), 10) == []
    stored = await store.get_run(run.id)
    assert stored is not None
    assert stored.status == RunStatus.CANCELLED
    assert "paused" in (stored.error or "")


async def test_renew_leases_answers_the_runs_still_held(store: Store) -> None:
    """Renewing extends this process's leases and leaves out the runs it no longer holds."""
    task = await stored_task(store, overlap="allow")
    mine = running_run(task, 0, holder=ME)
    theirs = running_run(task, 1, holder=OTHER)
    for run in (mine, theirs):
        await store.start_run(run, owner="local")
    until = T0 + timedelta(hours=1)
    assert await store.renew_leases(ME, [mine.id, theirs.id, "run_gone"], until) == {mine.id}
    stored = await store.get_run(mine.id)
    assert stored is not None
    assert stored.lease_expires_at == until
    assert await store.renew_leases(ME, [], until) == set()


async def test_a_sweep_interrupts_expired_runs_and_queues_their_retries(store: Store) -> None:
    """A run whose lease expired is recorded interrupted, counts as a failure of its task, and
    gets its next attempt queued; a run with a live lease is left alone."""
    task = await stored_task(store, overlap="allow", retry=RetryPolicy(attempts=2))
    dead = running_run(task, 0, holder=OTHER, lease_s=1)
    alive = running_run(task, 1, holder=ME, lease_s=3600)
    for run in (dead, alive):
        await store.start_run(run, owner="local")
    swept = await store.sweep_expired(T0 + timedelta(minutes=1))
    assert [(r.id, r.status) for r in swept] == [(dead.id, RunStatus.INTERRUPTED)]
    retries = (await store.list_runs(owner=None, statuses=[RunStatus.QUEUED])).items
    assert [(r.trigger, r.attempt, r.fire_time) for r in retries] == [
        (RunTrigger.RETRY, 2, dead.fire_time),
    ]
    after = await store.get_task(task.id)
    assert after is not None
    assert (after.run_count, after.consecutive_failures) == (1, 1)
    assert await store.sweep_expired(T0 + timedelta(minutes=1)) == []


async def test_rows_of_dead_processes_are_forgotten(store: Store) -> None:
    """Process rows whose heartbeat is older than the bound are removed; live ones stay."""
    for name, beat in (("dead", T0), ("alive", T0 + timedelta(minutes=10))):
        await store.heartbeat(ProcessInfo(name, "host", 1, "worker", T0, beat))
    assert await store.forget_dead(T0 + timedelta(minutes=5)) == ["dead"]
    assert [p.id for p in await store.processes(T0 - timedelta(days=1))] == ["alive"]
    assert await store.forget_dead(T0 + timedelta(minutes=5)) == []


async def test_a_heartbeat_moves_and_a_stop_removes_the_process_row(store: Store) -> None:
    """A second heartbeat updates the row in place; forgetting the process removes it."""
    info = ProcessInfo("me", "host", 7, "serve", T0, T0)
    await store.heartbeat(info)
    later = T0 + timedelta(seconds=10)
    await store.heartbeat(ProcessInfo("me", "host", 7, "serve", T0, later))
    assert await store.processes(T0 + timedelta(seconds=5)) == [
        ProcessInfo("me", "host", 7, "serve", T0, later)
    ]
    await store.forget_process("me")
    assert await store.processes(T0 - timedelta(days=1)) == []
