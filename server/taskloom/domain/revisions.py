"""A task's audit trail: every change (create, update, pause, resume, delete, restore) kept as a
revision with who made it, when, the fields it changed and the task's definition after it."""

from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Action = Literal["create", "update", "pause", "resume", "delete", "restore"]


class TaskRevision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str
    owner: str = Field(description="whose task it is")
    revision: int = Field(ge=1, description="1 for the create, then one more per change")
    action: Action
    principal: str = Field(description="who made the change")
    at: AwareDatetime
    diff: dict[str, Any] = Field(description='changed fields: {"field": {"from": x, "to": y}}')
    snapshot: dict[str, Any] | None = Field(
        default=None, description="the task's fields after the change (before it, for a delete)"
    )


def field_diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """`{field: {"from": old, "to": new}}` for every top-level field whose value changed."""
    old, new = before or {}, after or {}
    return {
        key: {"from": old.get(key), "to": new.get(key)}
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }


def action_of(before: dict[str, Any] | None, after: dict[str, Any] | None) -> Action:
    """What a change was, from the definitions before and after it."""
    if before is None:
        return "create"
    if after is None:
        return "delete"
    changed = set(field_diff(before, after))
    if changed == {"enabled"}:
        return "resume" if after["enabled"] else "pause"
    return "update"


class RevisionStorage(Protocol):
    """Where revisions are kept (`store/revisions.py`); `owner=None` reads any owner's."""

    async def append(self, revision: TaskRevision) -> TaskRevision: ...

    async def list(
        self, task_id: str, *, owner: str | None, limit: int, before: int | None = None
    ) -> list[TaskRevision]: ...

    async def get(
        self, task_id: str, revision: int, *, owner: str | None
    ) -> TaskRevision | None: ...
