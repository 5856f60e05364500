"""One contract suite for the store, run over SQLite and over PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest

from taskloom.domain.runs import Run, RunStatus, RunTrigger, StepResult, StepStatus
from taskloom.domain.tasks import Task, TaskSpec, TaskStatus
from taskloom.errors import Conflict, InvalidInput
from taskloom.ids import new_id
from taskloom.store.migrate import schema_head
from taskloom.store.sql import Store

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def make_task(n: int = 0, owner: str = "local", **extra: object) -> Task:
    spec = TaskSpec.model_validate(
        {
            "name": f"task {n}",
            "steps": [{"id": "a", "tool": "wait", "args": {"seconds": 0}}],
            "trigger": {"cron": "0 9 * * *", "timezone": "Europe/Berlin"},
        }
    )
    at = T0 + timedelta(milliseconds=n)
    return Task(
        **dict(spec),
        id=new_id("tsk", at),
        owner=owner,
        timezone="Europe/Berlin",
        created_at=at,
        updated_at=at,
        next_fire_at=at + timedelta(hours=1),
        **extra,  # type: ignore[arg-type]
    )


def make_run(task: Task, n: int = 0, status: RunStatus = RunStatus.SUCCEEDED) -> Run:
    at = T0 + timedelta(seconds=n)
    return Run(
        id=new_id("run", at),
        task_id=task.id,
        status=status,
        trigger=RunTrigger.SCHEDULE,
        fire_time=at,
        created_at=at,
        started_at=at,
        finished_at=at + timedelta(milliseconds=5),
        duration_ms=5,
        output={"n": n},
        steps=[
            StepResult(
                id="a", index=0, tool="wait", status=StepStatus.SUCCEEDED, args={"seconds": 0},
                output={"waited_s": 0}, started_at=at, finished_at=at, duration_ms=0, attempts=1,
            )
        ],
    )  # fmt: skip


async def test_open_applies_migrations(store: Store) -> None:
    """Opening a store brings an empty database to the newest schema revision."""
    assert await store.schema_revision() == schema_head()


async def test_reopen_is_idempotent(db_url: str) -> None:
    """Opening the same database twice keeps its data and its schema revision."""
    first = Store(db_url)
    await first.open()
    task = make_task()
    await first.add_task(task, max_per_owner=10)
    await first.close()
    second = Store(db_url)
    await second.open()
    assert await second.get_task(task.id) == task
    await second.close()


async def test_task_round_trips(store: Store) -> None:
    """A stored task reads back equal, aware datetimes included."""
    task = make_task()
    await store.add_task(task, max_per_owner=10)
    got = await store.get_task(task.id)
    assert got == task
    assert got is not None
    assert got.created_at.tzinfo is not None


async def test_get_task_hides_other_owners(store: Store) -> None:
    """A task is invisible to an owner other than its own."""
    task = make_task(owner="alice")
    await store.add_task(task, max_per_owner=10)
    assert await store.get_task(task.id, owner="bob") is None
    assert await store.get_task(task.id, owner="alice") == task


async def test_owner_limit_is_enforced(store: Store) -> None:
    """Adding a task beyond the per-owner limit is refused and stores nothing."""
    await store.add_task(make_task(0), max_per_owner=1)
    with pytest.raises(Conflict, match="limit"):
        await store.add_task(make_task(1), max_per_owner=1)
    assert len((await store.list_tasks(owner="local")).items) == 1


async def test_list_tasks_pages_with_a_cursor(store: Store) -> None:
    """Paging through tasks visits each exactly once in creation order."""
    tasks = [make_task(n) for n in range(7)]
    for t in tasks:
        await store.add_task(t, max_per_owner=100)
    seen, cursor = [], None
    while True:
        page = await store.list_tasks(owner="local", limit=3, cursor=cursor)
        seen += [t.id for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [t.id for t in tasks]


async def test_list_tasks_filters_by_status_and_name(store: Store) -> None:
    """Status and name filters narrow the list."""
    await store.add_task(make_task(0), max_per_owner=10)
    paused = make_task(1).model_copy(update={"name": "Weekly Report", "status": TaskStatus.PAUSED})
    await store.add_task(paused, max_per_owner=10)
    assert [t.id for t in (await store.list_tasks(owner=None, status="paused")).items] == [
        paused.id
    ]
    found = await store.list_tasks(owner=None, name_contains="weekly")
    assert [t.id for t in found.items] == [paused.id]


async def test_a_forged_cursor_is_refused(store: Store) -> None:
    """A cursor that no answer produced is an input error naming the cursor."""
    with pytest.raises(InvalidInput, match="cursor"):
        await store.list_tasks(owner=None, cursor="not-a-cursor")


async def test_save_task_checks_the_revision(store: Store) -> None:
    """Saving over a task that changed meanwhile is refused."""
    task = make_task()
    await store.add_task(task, max_per_owner=10)
    changed = task.model_copy(update={"name": "renamed", "revision": 2})
    await store.save_task(changed, expected_revision=1)
    with pytest.raises(Conflict, match="changed meanwhile"):
        await store.save_task(changed.model_copy(update={"revision": 3}), expected_revision=1)
    got = await store.get_task(task.id)
    assert got is not None
    assert got.name == "renamed"


async def test_every_change_moves_the_revision_counter(store: Store) -> None:
    """Adding, saving and deleting a task each move the shared tasks revision."""
    start = await store.tasks_revision()
    task = make_task()
    await store.add_task(task, max_per_owner=10)
    await store.save_task(task.model_copy(update={"revision": 2}))
    await store.delete_task(task.id, delete_runs=False)
    assert await store.tasks_revision() == start + 3


async def test_delete_task_keeps_runs_unless_asked(store: Store) -> None:
    """Deleting a task keeps its runs by default and removes them on request."""
    keep, drop = make_task(0), make_task(1)
    for t in (keep, drop):
        await store.add_task(t, max_per_owner=10)
        await store.add_run(make_run(t), owner="local")
    assert await store.delete_task(keep.id, delete_runs=False) == 0
    assert await store.delete_task(drop.id, delete_runs=True) == 1
    assert len((await store.list_runs(owner=None, task_id=keep.id)).items) == 1
    assert (await store.list_runs(owner=None, task_id=drop.id)).items == []


async def test_run_round_trips_with_steps(store: Store) -> None:
    """A stored run reads back equal, step results in order."""
    task = make_task()
    await store.add_task(task, max_per_owner=10)
    run = make_run(task)
    await store.add_run(run, owner="local")
    assert await store.get_run(run.id) == run


async def test_one_run_per_fire_and_attempt(store: Store) -> None:
    """A second run for the same task, fire time and attempt is refused by the database."""
    from sqlalchemy.exc import IntegrityError

    task = make_task()
    await store.add_task(task, max_per_owner=10)
    run = make_run(task)
    await store.add_run(run, owner="local")
    twin = run.model_copy(update={"id": new_id("run", T0 + timedelta(days=1)), "steps": []})
    with pytest.raises(IntegrityError):
        await store.add_run(twin, owner="local")


async def test_list_runs_is_newest_first_with_status_filter(store: Store) -> None:
    """History lists runs newest first and filters by status."""
    task = make_task()
    await store.add_task(task, max_per_owner=10)
    runs = [make_run(task, n, RunStatus.FAILED if n % 2 else RunStatus.SUCCEEDED) for n in range(5)]
    for r in runs:
        await store.add_run(r, owner="local")
    page = await store.list_runs(owner=None, task_id=task.id, limit=10)
    assert [r.id for r in page.items] == [r.id for r in reversed(runs)]
    failed = await store.list_runs(owner=None, statuses=[RunStatus.FAILED])
    assert {r.id for r in failed.items} == {runs[1].id, runs[3].id}
