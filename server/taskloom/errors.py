"""Taskloom's error hierarchy.

Every `TaskloomError` message is safe to show the MCP client: it names the bad value and the next
action. `api/common.py` turns these into `ToolError` in one place; anything else is masked there.
"""

from typing import Any


class TaskloomError(Exception):
    """Base of every error whose message is meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(TaskloomError):
    """An argument is wrong: names the field, the bad value and what to send instead."""

    def __init__(self, field: str, value: Any, fix: str) -> None:
        shown = _short(value)
        super().__init__(f"{field}: {shown} is not valid. {fix}")
        self.field = field
        self.value = value
        self.fix = fix


class InvalidInputs(TaskloomError):
    """Several arguments are wrong at once; the message lists each."""

    def __init__(self, problems: list[InvalidInput]) -> None:
        lines = [p.message for p in problems]
        head = "1 problem" if len(lines) == 1 else f"{len(lines)} problems"
        super().__init__(f"{head} in the request:\n- " + "\n- ".join(lines))
        self.problems = problems


class NotFound(TaskloomError):
    """A task, run or step tool with that id does not exist (or is not visible to the caller)."""

    def __init__(self, kind: str, ident: str, hint: str) -> None:
        super().__init__(f"No {kind} with id {ident!r}. {hint}")
        self.kind = kind
        self.ident = ident


class Conflict(TaskloomError):
    """The request is well formed but clashes with the current state (a run already ended)."""


class NameTaken(Conflict):
    """The owner already has a task of this name, ignoring case: the database's rule (the unique
    key `tasks.name_key`) caught what validation's check could not see, a create or rename
    racing another. The store names the name and the other task in its message."""


class QuotaExceeded(Conflict):
    """A principal is at one of its quotas; the message names it and the setting."""


class StoreUnavailable(TaskloomError):
    """The database cannot be reached or refused the operation."""


class StoreOutage(StoreUnavailable):
    """The database is unreachable or busy for now: the same operation may succeed later."""


def is_outage(exc: BaseException) -> bool:
    """Whether an error is the database being unreachable or busy (worth retrying), not a
    statement it refused. The store decides which when it wraps the driver's error."""
    return isinstance(exc, StoreOutage)


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
