"""A task change and its revision are one unit, on SQLite and PostgreSQL: `add_task`,
`save_task` and `delete_task` number and insert the revision they are given inside their own
transaction, so a revision that cannot be stored leaves the change unsaved too."""

from typing import Any

import pytest
from pydantic_core import PydanticSerializationError

from taskloom.domain.revisions import Action, TaskRevision
from taskloom.domain.tasks import Task
from taskloom.store.revisions import RevisionStore
from taskloom.store.sql import SqlStore
from tests.store.factories import T0, make_task, stored_task

UNSTORABLE = {"field": object()}  # no JSON for it: the revision's insert fails mid-transaction


def revision_of(task: Task, action: Action, diff: dict[str, Any] | None = None) -> TaskRevision:
    return TaskRevision(
        task_id=task.id,
        owner=task.owner,
        revision=1,  # the store numbers it
        action=action,
        principal="alice",
        at=T0,
        diff={"name": {"from": None, "to": task.name}} if diff is None else diff,
        snapshot={"name": task.name},
    )


async def kept(store: SqlStore, task: Task) -> list[tuple[int, str]]:
    found = await RevisionStore(store.db).list(task.id, owner=None, limit=10)
    return [(r.revision, r.action) for r in found]


async def test_each_change_is_stored_with_its_revision(sql_store: SqlStore) -> None:
    """Adding, saving and deleting a task each store its revision, numbered in order."""
    task = make_task()
    await sql_store.add_task(task, max_per_owner=10, revision=revision_of(task, "create"))
    renamed = task.model_copy(update={"name": "renamed", "revision": 2})
    await sql_store.save_task(renamed, expected_revision=1, revision=revision_of(task, "update"))
    await sql_store.delete_task(task.id, delete_runs=False, revision=revision_of(task, "delete"))
    assert await kept(sql_store, task) == [(3, "delete"), (2, "update"), (1, "create")]


async def test_an_unstorable_revision_leaves_a_new_task_unsaved(sql_store: SqlStore) -> None:
    """A task whose create revision cannot be stored is not created either."""
    task = make_task()
    before = await sql_store.tasks_revision()
    with pytest.raises(PydanticSerializationError):
        await sql_store.add_task(
            task, max_per_owner=10, revision=revision_of(task, "create", UNSTORABLE)
        )
    assert await sql_store.get_task(task.id) is None
    assert await sql_store.tasks_revision() == before
    assert await kept(sql_store, task) == []


async def test_an_unstorable_revision_leaves_an_edit_unsaved(sql_store: SqlStore) -> None:
    """An edit whose revision cannot be stored leaves the task as it was."""
    task = await stored_task(sql_store)
    renamed = task.model_copy(update={"name": "renamed", "revision": 2})
    with pytest.raises(PydanticSerializationError):
        await sql_store.save_task(
            renamed, expected_revision=1, revision=revision_of(task, "update", UNSTORABLE)
        )
    assert await sql_store.get_task(task.id) == task
    assert await kept(sql_store, task) == []


async def test_an_unstorable_revision_leaves_a_task_undeleted(sql_store: SqlStore) -> None:
    """A delete whose revision cannot be stored leaves the task in place."""
    task = await stored_task(sql_store)
    with pytest.raises(PydanticSerializationError):
        await sql_store.delete_task(
            task.id, delete_runs=False, revision=revision_of(task, "delete", UNSTORABLE)
        )
    assert await sql_store.get_task(task.id) == task


async def test_a_change_keeps_only_the_newest_revisions(sql_store: SqlStore) -> None:
    """The change's transaction trims the task's revisions to the newest `keep_revisions`."""
    sql_store.records.keep_revisions = 2
    task = make_task()
    await sql_store.add_task(task, max_per_owner=10, revision=revision_of(task, "create"))
    for n in (2, 3):
        changed = task.model_copy(update={"revision": n})
        await sql_store.save_task(changed, revision=revision_of(task, "update"))
    assert await kept(sql_store, task) == [(3, "update"), (2, "update")]
