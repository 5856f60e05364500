"""The store contract: the whole `Store` protocol, run over every backend of
tests/store/conftest.py (SQLite file, PostgreSQL). This module holds tasks, paging and errors;
test_store_contract_runs.py, _scheduling.py and _admission.py the rest. Every test speaks to the
protocol only, so a new backend passes or fails the same suite."""

import asyncio
from datetime import timedelta

import pytest

from taskloom.domain.runs import RunStatus
from taskloom.domain.storage import Store, encode_cursor
from taskloom.domain.tasks import TaskStatus
from taskloom.errors import Conflict, InvalidInput, NameTaken, StoreUnavailable
from tests.store.factories import T0, make_run, make_task, stored_task


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
    task = await stored_task(store, owner="alice")
    assert await store.get_task(task.id, owner="bob") is None
    assert await store.get_task(task.id, owner="alice") == task


async def test_task_named_ignores_case_and_other_owners(store: Store) -> None:
    """A task is found by its owner's name for it in any case, and by no one else's."""
    task = await stored_task(store, owner="alice")
    assert await store.task_named("alice", task.name.upper()) == task.id
    assert await store.task_named("bob", task.name) is None


async def test_task_named_folds_non_ascii_letters(store: Store) -> None:
    """Names differ ignoring case as Python's str.lower() says, also for letters beyond ASCII
    (SQLite's lower() leaves those alone); the lookup folds the name, not the stored one."""
    task = await stored_task(store, name="Ärger über Ölpreis İstanbul")
    for asked in ("ärger über ölpreis i̇stanbul", "ÄRGER ÜBER ÖLPREIS İSTANBUL"):
        assert await store.task_named("local", asked) == task.id
    assert await store.task_named("local", "Arger uber Olpreis Istanbul") is None


async def test_a_second_task_of_a_name_in_another_case_is_refused(store: Store) -> None:
    """The store itself keeps names unique per owner ignoring case (what two creates racing past
    validation meet): the second add is a `NameTaken` that names the field, the name and the
    task that has it, and stores nothing; another owner may use the name."""
    first = await stored_task(store, name="Ärger Report")
    second = make_task(1, name="äRGER report")
    with pytest.raises(NameTaken) as refused:
        await store.add_task(second, max_per_owner=10)
    message = str(refused.value)
    assert message.startswith("name: 'äRGER report' is taken")
    assert first.id in message
    assert "Pick another name" in message
    assert await store.get_task(second.id) is None
    await store.add_task(make_task(2, owner="bob", name="ärger report"), max_per_owner=10)


async def test_an_owner_at_the_cap_is_refused_until_a_task_goes(store: Store) -> None:
    """add_task refuses a task past the owner's max_per_owner with a Conflict naming the number
    and the setting, and stores nothing; a refused add (a taken name) does not count; other
    owners are not held; deleting one of the owner's tasks makes room for one more."""
    tasks = [await stored_task(store, n, owner="alice") for n in range(2)]
    with pytest.raises(NameTaken):
        await store.add_task(make_task(2, "alice", name=tasks[0].name), max_per_owner=3)
    third = make_task(3, "alice")
    await store.add_task(third, max_per_owner=3)
    extra = make_task(4, "alice")
    with pytest.raises(Conflict) as refused:
        await store.add_task(extra, max_per_owner=3)
    assert "'alice' already has 3 tasks" in str(refused.value)
    assert "TASKLOOM_MAX_TASKS_PER_OWNER=3" in str(refused.value)
    assert await store.get_task(extra.id) is None
    await store.add_task(make_task(5, "bob"), max_per_owner=3)
    await store.delete_task(tasks[0].id, delete_runs=False)
    await store.add_task(extra, max_per_owner=3)
    with pytest.raises(Conflict, match="already has 3 tasks"):
        await store.add_task(make_task(6, "alice"), max_per_owner=3)


async def test_racing_adds_at_the_cap_store_one(store: Store) -> None:
    """Several adds of one owner at once with room for one more: exactly one is stored, the
    others are refused at the cap (PostgreSQL runs them on separate connections)."""
    await stored_task(store, 0, owner="alice")
    racing = [make_task(n, "alice") for n in range(1, 5)]
    results = await asyncio.gather(
        *(store.add_task(task, max_per_owner=2) for task in racing), return_exceptions=True
    )
    assert sum(result is None for result in results) == 1
    refused = [r for r in results if r is not None]
    assert all(isinstance(r, Conflict) and "already has 2 tasks" in str(r) for r in refused)
    assert len((await store.list_tasks(owner="alice")).items) == 2


async def test_renaming_onto_a_taken_name_is_refused(store: Store) -> None:
    """save_task keeps the rule too: a rename onto another task's name (any case) is refused and
    saves nothing; a change of case of a task's own name is fine."""
    taken = await stored_task(store, name="Digest")
    task = await stored_task(store, n=1, name="Other")
    with pytest.raises(NameTaken, match=taken.id):
        await store.save_task(task.model_copy(update={"name": "DIGEST", "revision": 2}))
    assert (await store.get_task(task.id)) == task
    renamed = task.model_copy(update={"name": "OTHER", "revision": 2})
    await store.save_task(renamed, expected_revision=1)
    assert await store.task_named("local", "other") == task.id


async def test_owner_limit_is_enforced(store: Store) -> None:
    """Adding a task beyond the per-owner limit is refused and stores nothing."""
    await store.add_task(make_task(0), max_per_owner=1)
    with pytest.raises(Conflict, match="limit"):
        await store.add_task(make_task(1), max_per_owner=1)
    assert len((await store.list_tasks(owner="local")).items) == 1


async def test_list_tasks_pages_with_a_cursor(store: Store) -> None:
    """Paging through tasks visits each exactly once in creation order."""
    tasks = [await stored_task(store, n) for n in range(7)]
    seen, cursor = [], None
    while True:
        page = await store.list_tasks(owner="local", limit=3, cursor=cursor)
        seen += [t.id for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [t.id for t in tasks]


async def test_list_tasks_shows_only_the_owner_s_tasks(store: Store) -> None:
    """An owner's listing leaves out other owners' tasks; None lists everyone's."""
    mine = await stored_task(store, 0, "alice")
    await stored_task(store, 1, "bob")
    assert [t.id for t in (await store.list_tasks(owner="alice")).items] == [mine.id]
    assert len((await store.list_tasks(owner=None)).items) == 2


async def test_list_tasks_filters_by_status_and_name(store: Store) -> None:
    """Status and name filters narrow the list."""
    await store.add_task(make_task(0), max_per_owner=10)
    paused = make_task(1).model_copy(update={"name": "Weekly Report", "status": TaskStatus.PAUSED})
    await store.add_task(paused, max_per_owner=10)
    by_status = await store.list_tasks(owner=None, status="paused")
    assert [t.id for t in by_status.items] == [paused.id]
    found = await store.list_tasks(owner=None, name_contains="weekly")
    assert [t.id for t in found.items] == [paused.id]


async def test_a_forged_cursor_is_refused(store: Store) -> None:
    """A cursor that no answer produced is an input error naming the cursor."""
    with pytest.raises(InvalidInput, match="cursor"):
        await store.list_tasks(owner=None, cursor="not-a-cursor")


async def test_a_cursor_of_the_other_listing_is_refused(store: Store) -> None:
    """A task_history cursor given to list_tasks (and the reverse) is refused, not read."""
    task = await stored_task(store)
    with pytest.raises(InvalidInput, match="list_tasks"):
        await store.list_tasks(owner=None, cursor=encode_cursor(make_run(task).id))
    with pytest.raises(InvalidInput, match="task_history"):
        await store.list_runs(owner=None, cursor=encode_cursor(task.id))


async def test_save_task_checks_the_revision(store: Store) -> None:
    """Saving over a task that changed meanwhile is refused."""
    task = await stored_task(store)
    changed = task.model_copy(update={"name": "renamed", "revision": 2})
    await store.save_task(changed, expected_revision=1)
    with pytest.raises(Conflict, match="changed meanwhile"):
        await store.save_task(changed.model_copy(update={"revision": 3}), expected_revision=1)
    got = await store.get_task(task.id)
    assert got is not None
    assert got.name == "renamed"


async def test_saving_a_deleted_task_is_a_conflict(store: Store) -> None:
    """Saving a task that was deleted meanwhile is refused and creates nothing."""
    task = await stored_task(store)
    await store.delete_task(task.id, delete_runs=False)
    with pytest.raises(Conflict, match="deleted meanwhile"):
        await store.save_task(task)
    assert await store.get_task(task.id) is None


async def test_save_task_keeps_the_fields_finished_runs_own(store: Store) -> None:
    """An edit made from a stale read never rolls back what finished runs wrote."""
    task = await stored_task(store)
    await store.save_task(task.model_copy(update={"run_count": 99, "description": "new"}))
    got = await store.get_task(task.id)
    assert got is not None
    assert (got.run_count, got.description) == (task.run_count, "new")


async def test_every_change_moves_the_revision_counter(store: Store) -> None:
    """Adding, saving and deleting a task each move the shared tasks revision."""
    start = await store.tasks_revision()
    task = await stored_task(store)
    await store.save_task(task.model_copy(update={"revision": 2}))
    await store.delete_task(task.id, delete_runs=False)
    assert await store.tasks_revision() == start + 3


async def test_the_store_tells_its_own_task_changes_from_others(store: Store) -> None:
    """`made_here` is true only for counter moves that were task changes committed through
    this very store object (what lets a process skip rebuilding its timer after its own
    changes), and false as soon as one move in the range was not."""
    start = await store.tasks_revision()
    task = await stored_task(store)
    await store.save_task(task.model_copy(update={"revision": 2}))
    await store.delete_task(task.id, delete_runs=False)
    assert store.made_here(start, start + 3)
    assert store.made_here(start + 1, start + 2)
    assert not store.made_here(start, start + 4)  # start + 4: not (yet) a change made here
    assert not store.made_here(start - 1, start + 3)  # start: made before this test's changes
    assert not store.made_here(start + 3, start + 3)


async def test_delete_task_keeps_runs_unless_asked(store: Store) -> None:
    """Deleting a task keeps its runs by default and removes them on request."""
    keep, drop = await stored_task(store, 0), await stored_task(store, 1)
    for n, task in enumerate((keep, drop)):
        await store.add_run(make_run(task, n), owner="local")
    assert await store.delete_task(keep.id, delete_runs=False) == 0
    assert await store.delete_task(drop.id, delete_runs=True) == 1
    assert len((await store.list_runs(owner=None, task_id=keep.id)).items) == 1
    assert (await store.list_runs(owner=None, task_id=drop.id)).items == []


async def test_a_second_run_of_one_fire_and_attempt_is_a_conflict(store: Store) -> None:
    """A run repeating a task's fire time and attempt is refused as our Conflict, not as a
    driver's error, and the first run stays."""
    task = await stored_task(store)
    run = make_run(task)
    await store.add_run(run, owner="local")
    twin = make_run(task, 60).model_copy(update={"fire_time": run.fire_time, "steps": []})
    with pytest.raises(Conflict, match="duplicate"):
        await store.add_run(twin, owner="local")
    assert await store.get_run(twin.id) is None
    assert await store.get_run(run.id) == run


async def test_a_closed_store_is_unavailable(store: Store) -> None:
    """Asked after it was closed, the store answers StoreUnavailable, nothing else."""
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.get_task("tsk_00000000000000000000000000")
    with pytest.raises(StoreUnavailable):
        await store.update_run_status(
            "run_00000000000000000000000000", RunStatus.CANCELLED, when=T0 + timedelta(1)
        )


async def test_list_tasks_shows_a_task_as_it_is_now(store: Store) -> None:
    """A task listed before is listed as changed after: its definition, name or state."""
    task = make_task(1)
    await store.add_task(task, max_per_owner=10)
    assert (await store.list_tasks(owner="local")).items == [task]
    steps = [task.steps[0].model_copy(update={"args": {"seconds": 5}})]
    changed = task.model_copy(update={"steps": steps, "name": "renamed"})  # same revision
    await store.save_task(changed)
    listed = (await store.list_tasks(owner="local")).items
    assert listed == [changed]
    assert listed[0].steps[0].args == {"seconds": 5}
    paused = changed.model_copy(update={"status": TaskStatus.PAUSED})
    await store.save_task(paused)
    assert (await store.list_tasks(owner="local")).items == [paused]
    assert (await store.list_tasks(owner="local", status="active")).items == []
