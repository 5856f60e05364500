"""The audit trail through a real `taskloom serve --transport http` with two principals: every
change of a task is a revision with its principal, time and diff; a principal sees and restores
only its own tasks' revisions."""

from typing import Any

import pytest
from fastmcp.exceptions import ToolError

from tests.fixtures.taskloom_process import HttpServer
from tests.hostile.conftest import ALICE, BOB, call, client, named

pytestmark = pytest.mark.slow

SAY = {"id": "say", "tool": "render", "args": {"template": "hi"}}


async def revisions(token: str, server: HttpServer, task_id: str) -> list[dict[str, Any]]:
    async with client(server, token) as c:
        answer = await call(c, "task_revisions", {"task_id": task_id})
    listed: list[dict[str, Any]] = answer["revisions"]
    return listed


async def test_each_change_is_a_revision_with_its_principal_and_diff(server: HttpServer) -> None:
    """create, update, pause, resume and delete are kept newest first, by alice, with diffs."""
    async with client(server, ALICE) as alice:
        created = await call(alice, "create_task", {"name": named("Audited"), "steps": [SAY]})
        task_id = created["task"]["id"]
        await call(alice, "update_task", {"task_id": task_id, "description": "now described"})
        await call(alice, "pause_task", {"task_id": task_id})
        await call(alice, "resume_task", {"task_id": task_id})
        await call(alice, "delete_task", {"task_id": task_id})
    kept = await revisions(ALICE, server, task_id)
    actions = [(r["revision"], r["action"], r["principal"]) for r in kept]
    assert actions == [
        (5, "delete", "alice"),
        (4, "resume", "alice"),
        (3, "pause", "alice"),
        (2, "update", "alice"),
        (1, "create", "alice"),
    ]
    assert kept[3]["diff"] == {"description": {"from": "", "to": "now described"}}
    assert kept[2]["diff"] == {"enabled": {"from": True, "to": False}}
    assert all(r["at"] for r in kept)


async def test_another_principal_sees_no_revisions_and_cannot_restore(server: HttpServer) -> None:
    """bob can neither list nor restore the revisions of alice's task."""
    async with client(server, ALICE) as alice:
        created = await call(alice, "create_task", {"name": named("Private"), "steps": [SAY]})
    task_id = created["task"]["id"]
    async with client(server, BOB) as bob:
        with pytest.raises(ToolError, match="task_revisions"):
            await call(bob, "task_revisions", {"task_id": task_id})
        with pytest.raises(ToolError, match=task_id):
            await call(bob, "restore_task", {"task_id": task_id, "revision": 1})


async def test_restore_puts_a_revision_back_and_is_recorded(server: HttpServer) -> None:
    """Restoring revision 1 undoes a later update, and is itself a revision saying so."""
    async with client(server, ALICE) as alice:
        created = await call(alice, "create_task", {"name": named("Undo"), "steps": [SAY]})
        task_id = created["task"]["id"]
        other = {"id": "other", "tool": "render", "args": {"template": "bye"}}
        await call(alice, "update_task", {"task_id": task_id, "steps": [other]})
        restored = await call(alice, "restore_task", {"task_id": task_id, "revision": 1})
    assert restored["task"]["steps"][0]["id"] == "say"
    latest = (await revisions(ALICE, server, task_id))[0]
    assert (latest["action"], latest["principal"]) == ("restore", "alice")
    assert latest["diff"]["restored_from"] == 1
    assert latest["diff"]["steps"]["to"][0]["id"] == "say"
