"""The store contract, runs: records, history, and recording the runs a process holds (begin,
progress, finish), each only while that process holds the run."""

import asyncio
from datetime import timedelta

import pytest

from taskloom.domain.outcome import Outcome
from taskloom.domain.runs import Run, RunCause, RunStatus, StepStatus
from taskloom.domain.storage import Store
from taskloom.domain.tasks import Task
from tests.store.factories import T0, as_running, make_run, running_run, stored_task

ME, OTHER = "proc-me", "proc-other"
KEEP = Outcome(pause_on_failure=None, max_runs=None)
LATER = timedelta(seconds=3.5)


async def held(store: Store, task: Task, n: int, holder: str = ME, lease_s: float = 60) -> Run:
    """Store a run of `task` as running under `holder`'s lease; return its finished form."""
    done = make_run(task, n)
    await store.start_run(as_running(done, holder=holder, lease_s=lease_s), owner=task.owner)
    return done


async def test_run_round_trips_with_steps(store: Store) -> None:
    """A stored run reads back equal, step results in order."""
    task = await stored_task(store)
    run = make_run(task)
    await store.add_run(run, owner="local")
    assert await store.get_run(run.id) == run


async def test_get_run_hides_other_owners(store: Store) -> None:
    """A run is invisible to an owner other than its task's."""
    task = await stored_task(store, owner="alice")
    run = make_run(task)
    await store.add_run(run, owner="alice")
    assert await store.get_run(run.id, owner="bob") is None
    assert (await store.list_runs(owner="bob")).items == []


async def test_list_runs_is_newest_first_with_status_filter(store: Store) -> None:
    """History lists runs newest first and filters by status."""
    task = await stored_task(store)
    runs = [make_run(task, n, RunStatus.FAILED if n % 2 else RunStatus.SUCCEEDED) for n in range(5)]
    for r in runs:
        await store.add_run(r, owner="local")
    page = await store.list_runs(owner=None, task_id=task.id, limit=10)
    assert [r.id for r in page.items] == [r.id for r in reversed(runs)]
    failed = await store.list_runs(owner=None, statuses=[RunStatus.FAILED])
    assert {r.id for r in failed.items} == {runs[1].id, runs[3].id}


async def test_list_runs_pages_with_a_cursor(store: Store) -> None:
    """Paging through history visits each run exactly once, newest first, without steps."""
    task = await stored_task(store)
    runs = [make_run(task, n) for n in range(5)]
    for r in runs:
        await store.add_run(r, owner="local")
    seen, cursor = [], None
    while True:
        page = await store.list_runs(owner="local", limit=2, cursor=cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [r.id for r in seen] == [r.id for r in reversed(runs)]
    assert all(r.steps == [] for r in seen)


async def test_update_run_status_ends_only_unfinished_runs(store: Store) -> None:
    """Cancelling a queued run ends it; a run that already ended is left as it was."""
    task = await stored_task(store)
    done = make_run(task, 0)
    await store.add_run(done, owner="local")
    waiting = make_run(task, 1, RunStatus.QUEUED).model_copy(update={"finished_at": None})
    await store.add_run(waiting, owner="local")
    when = T0 + timedelta(hours=1)
    assert await store.update_run_status(waiting.id, RunStatus.CANCELLED, when=when, error="x")
    assert not await store.update_run_status(done.id, RunStatus.CANCELLED, when=when)
    cancelled = await store.get_run(waiting.id)
    assert cancelled is not None
    assert (cancelled.status, cancelled.finished_at, cancelled.error) == (
        RunStatus.CANCELLED, when, "x",
    )  # fmt: skip
    assert await store.get_run(done.id) == done


async def test_start_run_stamps_the_task_s_last_attempt(store: Store) -> None:
    """A run started by its holder is stored running, and its task's last attempt is its
    start."""
    task = await stored_task(store)
    run = running_run(task, 3, holder=ME)
    await store.start_run(run, owner="local")
    after = await store.get_task(task.id)
    assert after is not None
    assert after.last_attempt_at == run.started_at
    assert await store.get_run(run.id) == run


async def test_last_finished_run_is_the_newest_older_success_or_failure(store: Store) -> None:
    """The previous run of a task is its newest succeeded or failed run before the given one."""
    task = await stored_task(store)
    statuses = [RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.SKIPPED, RunStatus.SUCCEEDED]
    runs = [make_run(task, n, status) for n, status in enumerate(statuses)]
    for r in runs:
        await store.add_run(r, owner="local")
    found = await store.last_finished_run(task.id, before=runs[3].id)
    assert found is not None
    assert found.id == runs[1].id
    assert await store.last_finished_run(task.id, before=runs[0].id) is None


async def test_a_batch_records_only_the_runs_still_held(store: Store) -> None:
    """Runs finishing together are recorded in one go; a run another process holds is not."""
    task = await stored_task(store)
    mine = [await held(store, task, n) for n in range(3)]
    theirs = await held(store, task, 3, holder=OTHER)
    results = await asyncio.gather(
        *(store.finish_run(r, holder=ME, outcome=KEEP) for r in [*mine, theirs])
    )
    assert results == [True, True, True, False]
    for run in mine:
        stored = await store.get_run(run.id)
        assert stored is not None
        assert stored.status == RunStatus.SUCCEEDED
        assert [s.status for s in stored.steps] == [StepStatus.SUCCEEDED]
    other = await store.get_run(theirs.id)
    assert other is not None
    assert other.status == RunStatus.RUNNING
    after = await store.get_task(task.id)
    assert after is not None
    assert (after.run_count, after.last_run_status) == (3, "succeeded")


async def test_outcomes_of_one_batch_apply_in_order(store: Store) -> None:
    """Two failures of one task in one batch count twice and pause it, moving its revision."""
    task = await stored_task(store)
    failed = [
        (await held(store, task, n)).model_copy(
            update={"status": RunStatus.FAILED, "error": f"boom {n}"}
        )
        for n in range(2)
    ]
    pause = Outcome(pause_on_failure=2, max_runs=None)
    before = await store.tasks_revision()
    await asyncio.gather(*(store.finish_run(r, holder=ME, outcome=pause) for r in failed))
    after = await store.get_task(task.id)
    assert after is not None
    assert (after.consecutive_failures, after.status.value) == (2, "paused")
    assert after.last_error == "boom 1"
    assert after.revision == task.revision + 1
    assert await store.tasks_revision() > before


async def test_a_retry_is_inserted_with_the_recorded_run(store: Store) -> None:
    """The follow-up run is stored, with the finished run's owner, when the run is recorded."""
    task = await stored_task(store)
    run = (await held(store, task, 0)).model_copy(update={"status": RunStatus.FAILED})
    retry = make_run(task, 60, status=RunStatus.QUEUED).model_copy(
        update={"cause": RunCause.RETRY, "attempt": 2, "fire_time": run.fire_time}
    )
    assert await store.finish_run(run, holder=ME, outcome=KEEP, follow_up=retry)
    stored = await store.get_run(retry.id, owner="local")
    assert stored is not None
    assert stored.status == RunStatus.QUEUED


async def test_progress_is_written_only_while_held(store: Store) -> None:
    """A progress snapshot is written for the holder; for anyone else it changes nothing."""
    task = await stored_task(store)
    mine, theirs = await held(store, task, 0), await held(store, task, 1, holder=OTHER)
    for run, holder, written in ((mine, ME, True), (theirs, ME, False)):
        snapshot = run.model_copy(update={"status": RunStatus.RUNNING})
        assert await store.save_progress(snapshot, holder=holder) is written
        stored = await store.get_run(run.id)
        assert stored is not None
        assert len(stored.steps) == (1 if written else 0)


@pytest.mark.parametrize(
    ("holder", "lease_s", "swept", "starts"),
    [
        (ME, 60, False, True),
        (ME, -1, False, True),
        (ME, -1, True, False),
        (OTHER, 60, False, False),
    ],
    ids=["held", "expired-but-not-swept", "swept", "someone-else's"],
)
async def test_a_run_starts_only_while_its_process_holds_it(
    store: Store, holder: str, lease_s: float, swept: bool, starts: bool
) -> None:
    """The check before a run's step passes only while the run is still running under this
    process's lease (an expired one nobody swept is taken again), and renews the lease."""
    task = await stored_task(store)
    run = running_run(task, 0, holder=holder, lease_s=lease_s)
    await store.start_run(run, owner="local")
    if swept:
        await store.sweep_expired(T0 + timedelta(minutes=1))
    until = T0 + timedelta(minutes=5)
    assert await store.begin_run(run, holder=ME, now=T0, until=until) is starts
    stored = await store.get_run(run.id)
    assert stored is not None
    assert (stored.lease_expires_at == until) is starts


async def test_a_task_that_pauses_itself_records_its_unclaimed_due_fires(store: Store) -> None:
    """A failure that pauses its task (pause_on_failure) records the fires that came due
    unclaimed before it as missed, saying why: the pause clears the next fire, so no claim
    would ever record them."""
    every_second = {"every": "1s", "start_at": T0.isoformat()}
    task = await stored_task(store, trigger=every_second, next_fire_at=T0 + timedelta(seconds=1))
    # The run of the fire at T0, failing 3.5 s later: the fires of T0 + 1, 2 and 3 s are due.
    failed = (await held(store, task, 0)).model_copy(
        update={"status": RunStatus.FAILED, "error": "boom", "finished_at": T0 + LATER}
    )
    assert await store.finish_run(
        failed, holder=ME, outcome=Outcome(pause_on_failure=1, max_runs=None)
    )
    after = await store.get_task(task.id)
    assert after is not None
    assert (after.status.value, after.next_fire_at) == ("paused", None)
    missed = [
        r for r in (await store.list_runs(owner=None, task_id=task.id)).items if r.id != failed.id
    ]
    assert sorted(r.fire_time for r in missed if r.fire_time) == [
        T0 + timedelta(seconds=k) for k in (1, 2, 3)
    ]
    assert {r.status for r in missed} == {RunStatus.MISSED}
    assert all("paused itself after 1 failures in a row" in (r.error or "") for r in missed)


async def test_a_task_that_keeps_going_records_no_missed_fires(store: Store) -> None:
    """A failure that does not pause its task leaves its due fires to the claims."""
    every_second = {"every": "1s", "start_at": T0.isoformat()}
    task = await stored_task(store, trigger=every_second, next_fire_at=T0 + timedelta(seconds=1))
    failed = (await held(store, task, 0)).model_copy(
        update={"status": RunStatus.FAILED, "finished_at": T0 + LATER}
    )
    assert await store.finish_run(
        failed, holder=ME, outcome=Outcome(pause_on_failure=2, max_runs=None)
    )
    assert [r.id for r in (await store.list_runs(owner=None, task_id=task.id)).items] == [failed.id]
