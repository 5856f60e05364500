"""Queued runs start by their task's priority, equal priorities in fire order, and a waiting run
ages up so none starves (`domain/priority.py`), on SQLite and PostgreSQL."""

from datetime import timedelta

from taskloom.domain.priority import AGEING_S
from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.storage import Store
from taskloom.domain.tasks import Task
from tests.store.factories import T0, make_run, make_task

ME = "proc-me"


async def queued(store: Store, n: int, priority: int, waited_s: float = 0) -> tuple[Task, Run]:
    """A task of `priority` with one queued run, created `waited_s` before T0 (fire n s later)."""
    task = make_task(n).model_copy(update={"priority": priority})
    await store.add_task(task, max_per_owner=100)
    run = make_run(task, n).model_copy(
        update={"status": RunStatus.QUEUED, "created_at": T0 - timedelta(seconds=waited_s),
                "started_at": None, "finished_at": None, "steps": [], "output": None}
    )  # fmt: skip
    await store.add_run(run, owner=task.owner)
    return task, run


async def start_order(store: Store, count: int) -> list[str]:
    """The run ids in the order a process with room for one run at a time takes them."""
    order = []
    for _ in range(count):
        taken = await store.claim_queued(ME, T0, T0 + timedelta(minutes=1), 1)
        order += [run.id for _, run in taken]
    return order


async def test_queued_runs_start_by_priority_then_fire_order(store: Store) -> None:
    """Higher priorities start first; runs of equal priority start in fire order."""
    runs = [await queued(store, n, p) for n, p in enumerate([5, 10, 1, 10, 5])]
    ids = [run.id for _, run in runs]
    assert await start_order(store, 5) == [ids[1], ids[3], ids[0], ids[4], ids[2]]


async def test_a_long_waiting_run_overtakes_a_newer_higher_one(store: Store) -> None:
    """A priority-1 run that waited more than 9 ageing periods starts before a new priority-10
    run; one that waited less does not."""
    _, old = await queued(store, 0, 1, waited_s=9 * AGEING_S + 30)
    _, younger = await queued(store, 1, 1, waited_s=9 * AGEING_S - 30)
    _, new = await queued(store, 2, 10)
    assert await start_order(store, 3) == [old.id, new.id, younger.id]
