"""The audit trail of tasks: every change kept as a revision (who, when, the diff, the definition
after it), listed per task, and a task put back as one of its revisions defined it."""

from contextvars import ContextVar
from typing import Any

from pydantic import BaseModel, ConfigDict

from taskloom.answers import TaskAnswer
from taskloom.clock import Clock
from taskloom.domain.revisions import RevisionStorage, TaskRevision, action_of, field_diff
from taskloom.domain.tasks import ClearableField, Task, TaskPatch, TaskSpec, TaskStatus
from taskloom.errors import NotFound
from taskloom.tasks.service import TaskService

OPERATOR = "operator"  # who changed a task from the command line (no principal)
HINT = "Call task_revisions(task_id) to see the revisions kept for this task."
CLEARABLE = set(ClearableField.__args__)  # type: ignore[attr-defined]
# The revision a change restores, while `restore` makes it: recorded as action "restore".
_restoring: ContextVar[int | None] = ContextVar("restoring", default=None)


class RevisionList(BaseModel):
    model_config = ConfigDict(frozen=True)

    task_id: str
    revisions: list[TaskRevision]
    next_before: int | None = None


def definition(task: Task | None) -> dict[str, Any] | None:
    """A task's fields as a client sets them, as JSON: what a revision keeps."""
    return None if task is None else task.spec().model_dump(mode="json")


class TaskAudit:
    def __init__(self, revisions: RevisionStorage, clock: Clock, tasks: TaskService) -> None:
        self.revisions = revisions
        self.clock = clock
        self.tasks = tasks
        tasks.audit = self.revision

    def revision(self, before: Task | None, after: Task | None, by: str | None) -> TaskRevision:
        """The revision that keeps the change from `before` to `after` (None: created /
        deleted) by principal `by`; the store numbers it and writes it in the change's own
        transaction, so a change is never saved without it."""
        old, new = definition(before), definition(after)
        task = after or before
        assert task is not None
        restored = _restoring.get()
        diff = field_diff(old, new) | ({"restored_from": restored} if restored else {})
        return TaskRevision(
            task_id=task.id,
            owner=task.owner,
            revision=1,  # the store numbers it
            action="restore" if restored else action_of(old, new),
            principal=by or OPERATOR,
            at=self.clock.now(),
            diff=diff,
            snapshot=new if new is not None else old,
        )

    async def list(
        self, task_id: str, *, owner: str | None, limit: int, before: int | None
    ) -> RevisionList:
        found = await self.revisions.list(task_id, owner=owner, limit=limit + 1, before=before)
        if not found:
            raise NotFound("task revisions", task_id, HINT)
        more = found[limit].revision + 1 if len(found) > limit else None
        return RevisionList(task_id=task_id, revisions=found[:limit], next_before=more)

    async def restore(self, task_id: str, revision: int, *, owner: str | None) -> TaskAnswer:
        """The task as revision `revision` defined it: changed back in place, or created again
        (with a new id) when it was deleted since."""
        kept = await self.revisions.get(task_id, revision, owner=owner)
        if kept is None or kept.snapshot is None:
            raise NotFound("task revision", f"{task_id}@{revision}", HINT)
        token = _restoring.set(revision)
        try:
            current = await self.tasks.store.get_task(task_id, owner=owner)
            if current is None:
                spec = TaskSpec.model_validate(kept.snapshot)
                return await self.tasks.create(spec, owner=kept.owner)
            patch = _patch(kept.snapshot, current)
            return await self.tasks.update(task_id, patch, owner=current.owner)
        finally:
            _restoring.reset(token)


def _patch(snapshot: dict[str, Any], current: Task) -> TaskPatch:
    """The update that gives `current` the fields of `snapshot` (clearing what it lacked)."""
    now = definition(current) or {}
    changed = {k: v for k, v in snapshot.items() if v is not None and now.get(k) != v}
    clear = sorted(k for k, v in snapshot.items() if v is None and now.get(k) is not None)
    changed["clear"] = [k for k in clear if k in CLEARABLE]
    if not changed["clear"] and len(changed) == 1:  # nothing differs: write it all again
        changed["enabled"] = snapshot.get("enabled", current.status != TaskStatus.PAUSED)
    return TaskPatch.model_validate(changed)
