"""The run recorder over SQLite and PostgreSQL: many runs recorded in one batch, each only while
its holder holds it."""

import asyncio
from datetime import timedelta

from taskloom.domain.outcome import Outcome
from taskloom.domain.runs import Run, RunStatus, RunTrigger, StepStatus
from taskloom.store.recorder import RunRecorder
from taskloom.store.sql import Store
from tests.store.test_store_contract import make_run, make_task

ME = "proc-me"
KEEP = Outcome(pause_on_failure=None, max_runs=None)


async def held_run(store: Store, run: Run, holder: str = ME) -> Run:
    """Insert `run` as running under `holder`'s lease; return its finished form."""
    running = run.model_copy(
        update={
            "status": RunStatus.RUNNING,
            "finished_at": None,
            "lease_owner": holder,
            "lease_expires_at": run.created_at + timedelta(minutes=5),
        }
    )
    await store.start_run(running, owner="local")
    return run


async def test_a_batch_records_only_the_runs_still_held(store: Store) -> None:
    """Runs finishing together are recorded in one go; a run another process holds is not."""
    task = make_task()
    await store.add_task(task, max_per_owner=10)
    mine = [await held_run(store, make_run(task, n)) for n in range(3)]
    theirs = await held_run(store, make_run(task, 3), holder="proc-other")
    recorder = RunRecorder(store)
    results = await asyncio.gather(
        *(recorder.finish(r, holder=ME, outcome=KEEP) for r in [*mine, theirs])
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
    assert after.run_count == 3
    assert after.last_run_status == "succeeded"


async def test_outcomes_of_one_batch_apply_in_order(store: Store) -> None:
    """Two failures of one task in one batch count twice and pause it, moving its revision."""
    task = make_task()
    await store.add_task(task, max_per_owner=10)
    failed = [
        (await held_run(store, make_run(task, n))).model_copy(
            update={"status": RunStatus.FAILED, "error": f"boom {n}"}
        )
        for n in range(2)
    ]
    pause = Outcome(pause_on_failure=2, max_runs=None)
    before = await store.tasks_revision()
    recorder = RunRecorder(store)
    await asyncio.gather(*(recorder.finish(r, holder=ME, outcome=pause) for r in failed))
    after = await store.get_task(task.id)
    assert after is not None
    assert (after.consecutive_failures, after.status.value, after.enabled) == (2, "paused", False)
    assert after.last_error == "boom 1"
    assert after.revision == task.revision + 1
    assert await store.tasks_revision() > before


async def test_a_retry_is_inserted_with_the_recorded_run(store: Store) -> None:
    """The follow-up run is stored, with the finished run's owner, only when it is recorded."""
    task = make_task()
    await store.add_task(task, max_per_owner=10)
    run = (await held_run(store, make_run(task))).model_copy(update={"status": RunStatus.FAILED})
    retry = make_run(task, 60, status=RunStatus.QUEUED).model_copy(
        update={"trigger": RunTrigger.RETRY, "attempt": 2, "fire_time": run.fire_time}
    )
    assert await RunRecorder(store).finish(run, holder=ME, outcome=KEEP, follow_up=retry)
    stored = await store.get_run(retry.id, owner="local")
    assert stored is not None
    assert stored.status == RunStatus.QUEUED


async def test_progress_is_written_only_while_held(store: Store) -> None:
    """A progress snapshot of a run held elsewhere changes nothing and answers False."""
    task = make_task()
    await store.add_task(task, max_per_owner=10)
    run = await held_run(store, make_run(task), holder="proc-other")
    snapshot = run.model_copy(update={"status": RunStatus.RUNNING})
    assert not await RunRecorder(store).save_progress(snapshot, holder=ME)
    stored = await store.get_run(run.id)
    assert stored is not None
    assert stored.steps == []
