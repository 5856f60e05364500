"""The claim and lease transactions over SQLite and PostgreSQL: queued runs of `overlap: allow`
tasks, the lease check before a run starts, dead process rows, and one lock order (tasks by id,
then runs by id) that a sweep and a claim cannot deadlock on."""

import asyncio
import time
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from taskloom.domain.runs import Run, RunStatus, RunTrigger
from taskloom.domain.tasks import Task
from taskloom.store.claims import Claims, ProcessInfo
from taskloom.store.recorder import RunRecorder
from taskloom.store.sql import Store
from taskloom.store.tables import TaskRow
from tests.store.test_store_contract import T0, make_run, make_task

ME, OTHER = "proc-me", "proc-other"


async def running(
    store: Store, task: Task, n: int, *, holder: str = ME, lease_s: float = 60
) -> Run:
    """A run of `task` held by `holder`, its lease ending `lease_s` after T0 + n s."""
    run = make_run(task, n).model_copy(
        update={
            "status": RunStatus.RUNNING,
            "finished_at": None,
            "steps": [],
            "lease_owner": holder,
            "lease_expires_at": T0 + timedelta(seconds=n + lease_s),
        }
    )
    await store.start_run(run, owner=task.owner)
    return run


async def test_a_queued_retry_of_an_allow_task_starts_beside_its_running_run(
    store: Store,
) -> None:
    """A due queued run of an `overlap: allow` task is taken while another of its runs goes;
    for any other overlap policy it waits."""
    allow = make_task(0).model_copy(update={"overlap": "allow"})
    skip = make_task(1)
    for task in (allow, skip):
        await store.add_task(task, max_per_owner=10)
        await running(store, task, 0 if task is allow else 1)
        retry = make_run(task, 2 if task is allow else 3).model_copy(
            update={"status": RunStatus.QUEUED, "trigger": RunTrigger.RETRY, "attempt": 2,
                    "started_at": None, "finished_at": None, "steps": []}
        )  # fmt: skip
        await store.add_run(retry, owner=task.owner)
    taken = await Claims(store).claim_queued(ME, T0, T0 + timedelta(minutes=1), 10)
    assert [(task.id, run.trigger) for task, run in taken] == [(allow.id, RunTrigger.RETRY)]


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
    task = make_task()
    await store.add_task(task, max_per_owner=10)
    run = await running(store, task, 0, holder=holder, lease_s=lease_s)
    if swept:
        await Claims(store).sweep_expired(T0 + timedelta(minutes=1), _no_retry)
    until = T0 + timedelta(minutes=5)
    assert await RunRecorder(store).begin(run, holder=ME, now=T0, until=until) is starts
    stored = await store.get_run(run.id)
    assert stored is not None
    assert (stored.lease_expires_at == until) is starts


async def test_rows_of_dead_processes_are_forgotten(store: Store) -> None:
    """Process rows whose heartbeat is older than the bound are removed; live ones stay."""
    claims = Claims(store)
    for name, beat in (("dead", T0), ("alive", T0 + timedelta(minutes=10))):
        info = ProcessInfo(name, "host", 1, "worker", T0, beat)
        await claims.heartbeat(info)
    assert await claims.forget_dead(T0 + timedelta(minutes=5)) == ["dead"]
    assert [p.id for p in await claims.processes(T0 - timedelta(days=1))] == ["alive"]


async def waiting_on_a_lock(store: Store) -> int:
    async with store.read() as s:
        found = await s.exec(
            text(  # type: ignore[call-overload]
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return int(found.one()[0])


async def test_a_sweep_and_a_claim_cannot_deadlock(pg_url: str) -> None:
    """A sweep of two expired runs meets a transaction that locks their tasks in id order, as a
    claim does, holding the first task while the sweep starts: the sweep waits its turn and both
    commit (on 0.1 the sweep held the second task, and PostgreSQL aborted one of them)."""
    store, claim = Store(pg_url), Store(pg_url)
    await store.open()
    await claim.open(migrate=False)
    try:
        first, second = make_task(0), make_task(1)
        for task in (first, second):
            await store.add_task(task, max_per_owner=10)
        # The second task's run is older, so a sweep in run order reaches its task first.
        await running(store, second, 0, lease_s=1)
        await running(store, first, 1, lease_s=1)
        async with claim.write() as s:
            await s.exec(_lock(first.id))
            sweep = asyncio.create_task(
                Claims(store).sweep_expired(T0 + timedelta(hours=1), _no_retry)
            )
            deadline = time.monotonic() + 60
            while not await waiting_on_a_lock(store) and not sweep.done():
                assert time.monotonic() < deadline, "the sweep never reached the locked task"
                await asyncio.sleep(0.05)
            await s.exec(_lock(second.id))
        swept = await asyncio.wait_for(sweep, timeout=60)
        assert sorted(r.task_id for r in swept) == sorted([first.id, second.id])
    finally:
        await claim.close()
        await store.close()


def _lock(task_id: str):  # type: ignore[no-untyped-def]
    return select(TaskRow).where(col(TaskRow.id) == task_id).with_for_update()


def _no_retry(_: Task, __: Run) -> None:
    return None
