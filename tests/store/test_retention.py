"""Retention over SQLite and PostgreSQL, on a frozen clock: which runs a policy prunes, which it
never touches, their step results, a dry run, and the figures `taskloom status` shows."""

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert
from sqlmodel import col, select

from taskloom.clock import FrozenClock
from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.tasks import Task
from taskloom.ids import new_id
from taskloom.runs.retention import Retention, RetentionPolicy
from taskloom.store.sql import SqlStore as Store
from taskloom.store.tables import RunRow, StepResultRow
from tests.store.test_store_contract import T0, make_run, make_task

DAY = timedelta(days=1)


async def add_runs(
    store: Store, task: Task, ages_days: list[float], status: RunStatus = RunStatus.SUCCEEDED
) -> list[Run]:
    """Runs of `task` that finished `ages_days` before T0 (oldest first), one step each, written
    in one transaction."""
    runs = []
    for age in sorted(ages_days, reverse=True):
        at = T0 - timedelta(days=age)
        base = make_run(task, 0, status)
        runs.append(
            base.model_copy(
                update={
                    "id": new_id("run", at), "created_at": at, "started_at": at,
                    "fire_time": None, "finished_at": at + timedelta(seconds=1),
                }
            )
        )  # fmt: skip
    async with store.transaction() as conn:
        await conn.execute(insert(RunRow), [_values(r, task.owner) for r in runs])
        steps = [StepResultRow.values(r.id, s) for r in runs for s in r.steps]
        await conn.execute(insert(StepResultRow), steps)
    return runs


def _values(run: Run, owner: str) -> dict[str, object]:
    row = RunRow.from_domain(run, owner)
    return {c.name: getattr(row, c.name) for c in RunRow.__table__.columns}  # type: ignore[attr-defined]


async def stored_ids(store: Store, task: Task) -> set[str]:
    async with store.read() as s:
        query = select(col(RunRow.id)).where(col(RunRow.task_id) == task.id)
        return set((await s.exec(query)).all())


async def saved_task(store: Store, n: int) -> Task:
    task = make_task(n)
    await store.add_task(task, max_per_owner=100)
    return task


def retention(store: Store, **policy: object) -> Retention:
    values: dict[str, object] = {"days": 30, "keep_last": 2, "failed_days": 90, "batch": 3}
    chosen = RetentionPolicy(**{**values, **policy})  # type: ignore[arg-type]
    return Retention(store, FrozenClock(T0), chosen, pause_s=0)


async def test_old_runs_go_and_the_newest_stay(store: Store) -> None:
    """Runs older than the policy's days are pruned, except each task's newest keep_last."""
    task = await saved_task(store, 1)
    runs = await add_runs(store, task, [100, 90, 80, 40, 35, 10, 1])
    report = await retention(store, keep_last=2).prune()
    assert report.pruned == 5
    assert await stored_ids(store, task) == {runs[-2].id, runs[-1].id}


async def test_keep_last_protects_old_runs(store: Store) -> None:
    """A task whose runs are all old keeps its newest keep_last of them."""
    task = await saved_task(store, 2)
    runs = await add_runs(store, task, [300, 200, 100, 50])
    await retention(store, keep_last=3).prune()
    assert await stored_ids(store, task) == {r.id for r in runs[1:]}


async def test_failed_runs_are_kept_longer(store: Store) -> None:
    """Failed and interrupted runs stay until their own, longer cutoff."""
    task = await saved_task(store, 3)
    failed = await add_runs(store, task, [120, 60], RunStatus.FAILED)
    interrupted = await add_runs(store, task, [45], RunStatus.INTERRUPTED)
    ok = await add_runs(store, task, [60, 5])
    await retention(store, keep_last=0).prune()
    kept = {failed[1].id, interrupted[0].id, ok[1].id}
    assert await stored_ids(store, task) == kept


async def test_live_runs_are_never_pruned(store: Store) -> None:
    """Queued and running runs stay whatever their age."""
    task = await saved_task(store, 4)
    queued = await add_runs(store, task, [400], RunStatus.QUEUED)
    running = await add_runs(store, task, [300], RunStatus.RUNNING)
    await add_runs(store, task, [200, 100])
    await retention(store, keep_last=0).prune()
    assert await stored_ids(store, task) == {queued[0].id, running[0].id}


async def test_step_results_of_pruned_runs_go(store: Store) -> None:
    """Pruning a run removes its step results; a kept run keeps them."""
    task = await saved_task(store, 5)
    runs = await add_runs(store, task, [100, 99, 98, 97, 1])
    await retention(store, keep_last=1, batch=2).prune()
    async with store.read() as s:
        left = set((await s.exec(select(col(StepResultRow.run_id)))).all())
    assert left == {runs[-1].id}


async def test_zero_days_keeps_everything(store: Store) -> None:
    """TASKLOOM_RETENTION_DAYS=0 keeps runs forever."""
    task = await saved_task(store, 6)
    runs = await add_runs(store, task, [1000, 500])
    report = await retention(store, days=0, keep_last=0).prune()
    assert report.pruned == 0
    assert await stored_ids(store, task) == {r.id for r in runs}


async def test_zero_failed_days_keeps_failed_runs_forever(store: Store) -> None:
    """TASKLOOM_RETENTION_FAILED_DAYS=0 keeps failed runs while the others go."""
    task = await saved_task(store, 7)
    failed = await add_runs(store, task, [1000], RunStatus.FAILED)
    await add_runs(store, task, [1000])
    await retention(store, failed_days=0, keep_last=0).prune()
    assert await stored_ids(store, task) == {failed[0].id}


async def test_dry_run_counts_and_removes_nothing(store: Store) -> None:
    """A dry run reports per task what would go and leaves every run in place."""
    task = await saved_task(store, 8)
    runs = await add_runs(store, task, [200, 100], RunStatus.FAILED)
    await add_runs(store, task, [50, 40, 1])
    report = await retention(store, keep_last=1).prune(dry_run=True)
    (found,) = report.per_task
    assert (report.pruned, found.task_id, found.runs, found.failed) == (4, task.id, 4, 2)
    assert found.oldest == runs[0].created_at
    assert len(await stored_ids(store, task)) == 5


async def test_runs_of_deleted_tasks_are_pruned_too(store: Store) -> None:
    """Runs left by a deleted task follow the same policy."""
    task = make_task(9)  # never saved: its runs outlived it
    runs = await add_runs(store, task, [100, 90, 1])
    await retention(store, keep_last=1).prune()
    assert await stored_ids(store, task) == {runs[-1].id}


async def test_footprint_shows_size_and_oldest_run(store: Store) -> None:
    """The footprint gives the database's size, the runs kept and the oldest one's time."""
    task = await saved_task(store, 10)
    runs = await add_runs(store, task, [70, 3])
    fp = await retention(store).footprint()
    assert fp.database_bytes
    assert fp.database_bytes > 0
    assert (fp.runs, fp.oldest_run_at) == (2, runs[0].created_at)


async def test_vacuum_by_hand_runs_on_both_databases(store: Store) -> None:
    """A prune with a vacuum by hand leaves the kept runs readable."""
    task = await saved_task(store, 11)
    runs = await add_runs(store, task, [100, 1])
    keeper = retention(store, keep_last=0)
    await keeper.prune()
    await keeper.vacuum()
    assert await stored_ids(store, task) == {runs[1].id}


# -- SQLite: giving the space back -----------------------------------------------------------


def _pragma(path: Path, name: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])


async def _bulky(store: Store, n: int) -> Task:
    task = await saved_task(store, 12)
    runs = await add_runs(store, task, [100 + i / 1000 for i in range(n)])
    async with store.transaction() as conn:
        await conn.execute(
            RunRow.__table__.update().values(output="x" * 4000)  # type: ignore[attr-defined]
        )
    assert len(runs) == n
    return task


async def test_new_sqlite_file_gives_space_back_as_it_prunes(tmp_path: Path) -> None:
    """A database made by this version is incremental, so pruning shrinks the file."""
    path = tmp_path / "new.db"
    store = Store(f"sqlite:///{path}")
    await store.open()
    try:
        await _bulky(store, 300)
        before = (await retention(store).footprint()).database_bytes
        await retention(store, keep_last=0, batch=100).prune()
        after = await retention(store).footprint()
    finally:
        await store.close()
    assert after.auto_vacuum == "incremental"
    assert before
    assert after.database_bytes
    assert after.database_bytes < before / 2


async def test_old_sqlite_file_is_switched_to_incremental_by_vacuum(tmp_path: Path) -> None:
    """A file made without auto_vacuum keeps its free pages until a vacuum by hand switches it."""
    path = tmp_path / "old.db"
    sqlite3.connect(path).execute("PRAGMA auto_vacuum=NONE").connection.execute(
        "CREATE TABLE legacy_marker (x INTEGER)"
    ).connection.close()
    store = Store(f"sqlite:///{path}")
    await store.open()
    try:
        await _bulky(store, 200)
        keeper = retention(store, keep_last=0, batch=100)
        await keeper.prune()
        pruned = await keeper.footprint()
        await keeper.vacuum()
        vacuumed = await keeper.footprint()
    finally:
        await store.close()
    assert pruned.auto_vacuum == "none"
    assert pruned.free_bytes
    assert vacuumed.auto_vacuum == "incremental"
    assert vacuumed.database_bytes
    assert pruned.database_bytes
    assert vacuumed.database_bytes < pruned.database_bytes / 2
    assert _pragma(path, "auto_vacuum") == 2


@pytest.mark.parametrize("batch", [1, 7])
async def test_batches_of_any_size_prune_the_same_runs(store: Store, batch: int) -> None:
    """The batch size changes how many transactions a prune takes, not what it removes."""
    task = await saved_task(store, 13)
    runs = await add_runs(store, task, [100 + i for i in range(20)] + [1])
    await retention(store, keep_last=0, batch=batch).prune()
    async with store.read() as s:
        count = (await s.exec(select(func.count()).select_from(RunRow))).one()
    assert (count, await stored_ids(store, task)) == (1, {runs[-1].id})
