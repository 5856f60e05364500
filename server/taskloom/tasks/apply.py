"""Apply task files: create or update the owner's tasks by name, and optionally prune.

A *file set* (default `files`) is the group of tasks one `taskloom tasks apply --set NAME` keeps:
every task it creates or updates is marked with the set's name (`Task.managed_by`), and `--prune`
deletes the owner's tasks of that set whose names are no longer in the files. Tasks made by a
client through MCP, or by `taskloom tasks create`, belong to no set and are never pruned unless a
file with their name is applied (which takes them into the set).
"""

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from taskloom.answers import TaskAnswer
from taskloom.domain.tasks import ClearableField, Task, TaskFields, TaskPatch, TaskSpec
from taskloom.errors import InvalidInput, InvalidInputs
from taskloom.tasks.files import TaskDocument, task_document, to_yaml
from taskloom.tasks.service import TaskService
from taskloom.tasks.validate import validate_task

DEFAULT_SET = "files"
SET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
CLEARABLE: tuple[ClearableField, ...] = (
    "trigger", "end_at", "max_runs", "timeout_s", "pause_on_failure", "catchup_window_s",
)  # fmt: skip
Action = Literal["create", "update", "adopt", "unchanged", "delete"]


@dataclass(frozen=True)
class Change:
    """What applying does to one task: `before` and `after` are its file content (YAML)."""

    action: Action
    name: str
    source: str | None  # the file (None for a task pruned)
    task: Task | None  # the stored task (None for one created)
    spec: TaskSpec | None  # the file's task (None for one pruned)
    before: str
    after: str

    def diff(self) -> Iterator[str]:
        """A unified diff of the YAML, named like the task's file would be."""
        old = f"a/{self.name}" if self.task else "/dev/null"
        new = f"b/{self.name}" if self.spec else "/dev/null"
        lines = difflib.unified_diff(
            self.before.splitlines(keepends=True), self.after.splitlines(keepends=True), old, new
        )
        return (line.rstrip("\n") for line in lines)


class Applier:
    """Plans and applies task files for one owner and one file set."""

    def __init__(self, tasks: TaskService, *, owner: str, file_set: str = DEFAULT_SET) -> None:
        if not SET_NAME.fullmatch(file_set):
            fix = "Name the set with 1 to 64 letters, digits, '.', '_' or '-', e.g. 'work'."
            raise InvalidInput("--set", file_set, fix)
        self.tasks = tasks
        self.owner = owner
        self.file_set = file_set

    async def plan(self, documents: list[TaskDocument], *, prune: bool) -> list[Change]:
        """Each document's change, checked as create_task/update_task check them, and with
        `prune` the deletions; raise InvalidInputs with every problem of every file."""
        _check_unique(documents)
        changes: list[Change] = []
        problems: list[InvalidInput] = []
        for doc in documents:
            change = await self._change(doc)
            problems += await self._check(change)
            changes.append(change)
        if problems:
            raise InvalidInputs(problems)
        if prune:
            changes += await self._pruned({d.spec.name.casefold() for d in documents})
        return changes

    async def apply(self, change: Change) -> TaskAnswer | None:
        """Carry one change out; the answer of a create or update (None otherwise)."""
        if change.action == "create" and change.spec is not None:
            return await self.tasks.create(change.spec, owner=self.owner, managed_by=self.file_set)
        if change.action in ("update", "adopt") and change.task and change.spec:
            patch = TaskPatch.model_validate(_patch(change.task, change.spec))
            return await self.tasks.update(
                change.task.id, patch, owner=self.owner, managed_by=self.file_set
            )
        if change.action == "delete" and change.task is not None:
            await self.tasks.delete(change.task.id, owner=self.owner, delete_runs=False)
        return None

    async def _change(self, doc: TaskDocument) -> Change:
        task_id = await self.tasks.store.task_named(self.owner, doc.spec.name)
        after = to_yaml(task_document(doc.spec))
        if task_id is None:
            return Change("create", doc.spec.name, doc.source, None, doc.spec, "", after)
        task = await self.tasks.get(task_id, owner=self.owner)
        before = to_yaml(task_document(task.spec()))
        action: Action = "update" if before != after else "unchanged"
        if action == "unchanged" and task.managed_by != self.file_set:
            action = "adopt"
        return Change(action, doc.spec.name, doc.source, task, doc.spec, before, after)

    async def _check(self, change: Change) -> list[InvalidInput]:
        """create_task's checks for a new task, update_task's for the fields that change."""
        if change.spec is None or change.action in ("unchanged", "adopt"):
            return []
        changed = None if change.task is None else _changed(_patch(change.task, change.spec))
        around = self.tasks.surroundings(
            self.owner, changed=changed, task_id=change.task.id if change.task else None
        )
        try:
            await validate_task(change.spec, self.tasks.catalog, around)
        except InvalidInputs as exc:
            return [_in_file(p, change.source) for p in exc.problems]
        return []

    async def _pruned(self, kept: set[str]) -> list[Change]:
        """Deletions of the set's tasks whose (case-folded) names are not in `kept`."""
        changes = []
        for task in await self.owned():
            if task.managed_by == self.file_set and task.name.casefold() not in kept:
                before = to_yaml(task_document(task.spec()))
                changes.append(Change("delete", task.name, None, task, None, before, ""))
        return changes

    async def owned(self) -> list[Task]:
        """Every task of the owner, whichever set."""
        tasks: list[Task] = []
        cursor = None
        while True:
            page = await self.tasks.store.list_tasks(
                owner=self.owner, status=None, name_contains=None, limit=200, cursor=cursor
            )
            tasks += page.items
            cursor = page.next_cursor
            if cursor is None:
                return tasks


def _patch(task: Task, spec: TaskSpec) -> dict[str, object]:
    """The fields of `spec` that differ from the stored task; optional fields the file leaves
    out are cleared (the file is the whole task)."""
    current = task.spec()
    patch: dict[str, object] = {
        name: getattr(spec, name)
        for name in TaskFields.model_fields
        if getattr(spec, name) != getattr(current, name) and getattr(spec, name) is not None
    }
    clear = [f for f in CLEARABLE if getattr(spec, f) is None and getattr(current, f) is not None]
    return patch | ({"clear": clear} if clear else {})


def _changed(patch: dict[str, object]) -> frozenset[str]:
    cleared = patch.get("clear")
    return frozenset(patch) - {"clear"} | frozenset(cleared if isinstance(cleared, list) else [])


def _check_unique(documents: list[TaskDocument]) -> None:
    seen: dict[str, str] = {}  # names are unique per owner ignoring case
    problems = []
    for doc in documents:
        other = seen.setdefault(doc.spec.name.casefold(), doc.source)
        if other != doc.source:
            fix = f"{other} has a task of this name too; names are unique per owner."
            problems.append(InvalidInput(f"{doc.source}: name", doc.spec.name, fix))
    if problems:
        raise InvalidInputs(problems)


def _in_file(problem: InvalidInput, source: str | None) -> InvalidInput:
    return InvalidInput(f"{source}: {problem.field}", problem.value, problem.fix)
