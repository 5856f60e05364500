"""Task use-cases: create, read, change and remove tasks; compute their schedules."""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from taskloom.access import Access
from taskloom.answers import FireTime, SchedulePreview, TaskAnswer, TaskList, TaskSummary
from taskloom.clock import Clock
from taskloom.domain import triggers
from taskloom.domain.planning import unclaimed_fires
from taskloom.domain.revisions import TaskRevision
from taskloom.domain.runs import Run
from taskloom.domain.storage import Store
from taskloom.domain.tasks import Task, TaskPatch, TaskSpec, TaskStatus, Trigger, trigger_kind
from taskloom.errors import InvalidInput, InvalidInputs, NameTaken, NotFound
from taskloom.ids import new_id
from taskloom.settings import Settings
from taskloom.step_tools import StepCatalog
from taskloom.tasks.readiness import Surroundings
from taskloom.tasks.secret_use import check_grants
from taskloom.tasks.validate import check_name, validate_task

log = structlog.get_logger(__name__)

Listener = Callable[[Task | None, str], Awaitable[None]]
# (before, after, principal) -> the revision the audit trail keeps of a change
# (tasks/revisions.py), built before the change and written in its transaction.
Audit = Callable[[Task | None, Task | None, str | None], TaskRevision]
NOT_FOUND_HINT = "Call list_tasks to see the ids of your tasks."


class TaskService:
    def __init__(
        self, store: Store, clock: Clock, settings: Settings, catalog: StepCatalog
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.catalog = catalog
        self.access = Access.from_settings(settings)
        self._listeners: list[Listener] = []
        self.audit: Audit | None = None

    def on_change(self, listener: Listener) -> None:
        """`listener(task, task_id)` after every change; task is None when it was deleted."""
        self._listeners.append(listener)

    async def _changed(self, task: Task | None, task_id: str) -> None:
        for listener in self._listeners:
            await listener(task, task_id)

    def _revision(
        self, before: Task | None, after: Task | None, by: str | None
    ) -> TaskRevision | None:
        return None if self.audit is None else self.audit(before, after, by)

    # -- commands ----------------------------------------------------------------------------

    def surroundings(self, owner: str, **more: Any) -> Surroundings:
        """What validation needs to know beyond the task itself."""

        async def name_taken(name: str) -> str | None:
            return await self.store.task_named(owner, name)

        return Surroundings(
            now=self.clock.now(), settings=self.settings, name_taken=name_taken, **more
        )

    async def create(
        self, spec: TaskSpec, *, owner: str, managed_by: str | None = None
    ) -> TaskAnswer:
        """`managed_by`: the file set of `taskloom tasks apply` that keeps this task."""
        around = self.surroundings(owner, name_on_write=True)
        warnings = await validate_task(spec, self.catalog, around)
        check_grants(spec, owner=owner, access=self.access)
        now = self.clock.now()
        task = Task(
            **spec.fields(),
            id=new_id("tsk", now),
            owner=owner,
            timezone=triggers.trigger_timezone(spec.trigger, self.settings.timezone),
            status=spec.status,
            created_at=now,
            updated_at=now,
            managed_by=managed_by,
        )
        task = task.model_copy(update={"next_fire_at": self.next_fire(task, now)})
        try:
            await self.store.add_task(
                task,
                max_per_owner=self.settings.max_tasks_per_owner,
                revision=self._revision(None, task, owner),
            )
        except NameTaken:
            # The unique index found the name taken: answer as validation would have.
            taken = await check_name(spec, around)
            if taken:
                raise InvalidInputs(taken) from None
            raise  # that task went meanwhile: the store's own message says what happened
        log.info("task_created", task_id=task.id, trigger=trigger_kind(task.trigger))
        await self._changed(task, task.id)
        return self.answer(task, message="Task created.", warnings=warnings)

    async def update(
        self, task_id: str, patch: TaskPatch, *, owner: str, managed_by: str | None = None
    ) -> TaskAnswer:
        """`managed_by`: a file set of `taskloom tasks apply` that takes the task over (the
        task keeps its set otherwise)."""
        current = await self.get(task_id, owner=owner)
        changes = patch.changes()
        adopted = managed_by is not None and managed_by != current.managed_by
        if not changes and not adopted:
            raise InvalidInput(
                "update", {}, "Name at least one field to change, e.g. {'enabled': false}."
            )
        merged = TaskSpec.model_validate({**current.spec().model_dump(), **changes})
        around = self.surroundings(current.owner, changed=frozenset(changes), task_id=task_id)
        warnings = await validate_task(merged, self.catalog, around)
        check_grants(merged, owner=owner, access=self.access)
        now = self.clock.now()
        task = current.model_copy(
            update={
                **merged.fields(),
                "timezone": triggers.trigger_timezone(merged.trigger, self.settings.timezone),
                "revision": current.revision + 1,
                "updated_at": now,
                "status": _status_after_edit(current, merged),
                "managed_by": managed_by or current.managed_by,
            }
        )
        task = task.model_copy(update={"next_fire_at": self.next_fire(task, now)})
        await self.store.save_task(
            task,
            expected_revision=current.revision,
            unclaimed=_left_behind(now, "edited"),
            revision=self._revision(current, task, owner),
        )
        log.info("task_updated", task_id=task.id, fields=sorted(changes))
        await self._changed(task, task.id)
        message = f"Updated: {', '.join(sorted(changes)) or 'managed_by'}."
        return self.answer(task, message=message, warnings=warnings)

    async def set_enabled(self, task_id: str, enabled: bool, *, owner: str | None) -> TaskAnswer:
        """Resume (enabled) or pause the task: its status, the one place its state is kept."""
        current = await self.get(task_id, owner=owner)
        status = TaskStatus.ACTIVE if enabled else TaskStatus.PAUSED
        if current.status == status:
            return self.answer(
                current, message=f"The task was already {status.value}; nothing changed."
            )
        now = self.clock.now()
        task = current.model_copy(
            update={
                "status": status,
                "revision": current.revision + 1,
                "updated_at": now,
                "consecutive_failures": 0 if enabled else current.consecutive_failures,
            }
        )
        task = task.model_copy(update={"next_fire_at": self.next_fire(task, now)})
        left_behind = None if enabled else _left_behind(now, "paused")
        await self.store.save_task(
            task,
            expected_revision=current.revision,
            unclaimed=left_behind,
            revision=self._revision(current, task, owner),
        )
        log.info("task_resumed" if enabled else "task_paused", task_id=task_id)
        await self._changed(task, task.id)
        return self.answer(task, message="Resumed." if enabled else "Paused.")

    async def delete(self, task_id: str, *, owner: str | None, delete_runs: bool) -> int:
        current = await self.get(task_id, owner=owner)
        removed = await self.store.delete_task(
            task_id, delete_runs=delete_runs, revision=self._revision(current, None, owner)
        )
        log.info("task_deleted", task_id=task_id, runs_deleted=removed)
        await self._changed(None, task_id)
        return removed

    # -- queries -----------------------------------------------------------------------------

    async def get(self, task_id: str, *, owner: str | None) -> Task:
        task = await self.store.get_task(task_id, owner=owner)
        if task is None:
            raise NotFound("task", task_id, NOT_FOUND_HINT)
        return task

    async def list_page(
        self,
        *,
        owner: str | None,
        status: str | None,
        query: str | None,
        limit: int,
        cursor: str | None,
    ) -> TaskList:
        page = await self.store.list_tasks(
            owner=owner, status=status, name_contains=query, limit=limit, cursor=cursor
        )
        return TaskList(
            tasks=[self.summary(t) for t in page.items],
            next_cursor=page.next_cursor,
            server_timezone=self.settings.timezone,
        )

    def preview(
        self, trigger: Trigger | None, count: int, after: datetime | None
    ) -> SchedulePreview:
        if trigger is not None:
            triggers.validate_trigger(trigger)
        tz = triggers.trigger_timezone(trigger, self.settings.timezone)
        start = after or self.clock.now()
        if start.tzinfo is None:
            start = start.replace(tzinfo=ZoneInfo(tz))
        fires = triggers.next_fire_times(trigger, after=start, tz=tz, anchor=start, count=count)
        note = None if fires else _no_fires_note(trigger)
        return SchedulePreview(
            trigger=_dump_trigger(trigger),
            timezone=tz,
            after=start.astimezone(ZoneInfo(tz)).isoformat(),
            fires=[fire_time(f, tz) for f in fires],
            note=note,
        )

    # -- shapes ------------------------------------------------------------------------------

    def next_fire(self, task: Task, after: datetime) -> datetime | None:
        if task.status != TaskStatus.ACTIVE or task.trigger is None:
            return None
        fire = triggers.next_fire_time(
            task.trigger, after=after, tz=task.timezone, anchor=task.anchor
        )
        if fire is not None and task.end_at is not None and fire > task.end_at:
            return None
        return fire

    def upcoming(self, task: Task, count: int = 5) -> list[FireTime]:
        if task.next_fire_at is None or task.trigger is None:
            return []
        after = task.next_fire_at
        rest = triggers.next_fire_times(
            task.trigger, after=after, tz=task.timezone, anchor=task.anchor, count=count - 1
        )
        fires = [after, *rest]
        if task.end_at is not None:
            fires = [f for f in fires if f <= task.end_at]
        return [fire_time(f, task.timezone) for f in fires]

    def answer(self, task: Task, *, message: str | None = None, **extra: Any) -> TaskAnswer:
        return TaskAnswer(
            task=task,
            timezone=task.timezone,
            next_fires=self.upcoming(task),
            message=message,
            **extra,
        )

    def summary(self, task: Task) -> TaskSummary:
        nxt = task.next_fire_at
        return TaskSummary(
            id=task.id,
            name=task.name,
            status=task.status.value,
            trigger=_dump_trigger(task.trigger),
            timezone=task.timezone,
            next_fire=fire_time(nxt, task.timezone) if nxt else None,
            last_run_status=task.last_run_status,
            last_run_at=task.last_run_at,
            last_summary=task.last_summary,
            last_error=task.last_error,
            run_count=task.run_count,
        )


def fire_time(at: datetime, tz: str) -> FireTime:
    # Keyed by the offset too: equal instants with other offsets are equal datetimes, but their
    # `utc` text differs.
    return _fire_time(at, at.utcoffset(), tz)


@lru_cache(maxsize=1024)
def _fire_time(at: datetime, _offset: timedelta | None, tz: str) -> FireTime:
    """Remembered (a FireTime is immutable): a page of tasks shows one per task, and many
    tasks share their next fire (09:00 every day)."""
    return FireTime(local=at.astimezone(ZoneInfo(tz)).isoformat(), utc=at.isoformat())


def _dump_trigger(trigger: Trigger | None) -> dict[str, Any] | None:
    return None if trigger is None else trigger.model_dump(mode="json", exclude_none=True)


def _status_after_edit(current: Task, merged: TaskSpec) -> TaskStatus:
    if not merged.enabled:
        return TaskStatus.PAUSED
    if current.status == TaskStatus.FINISHED and merged.trigger == current.trigger:
        return TaskStatus.FINISHED
    return TaskStatus.ACTIVE


def _no_fires_note(trigger: Trigger | None) -> str:
    if trigger is None:
        return "No trigger: the task runs only when run_task is called."
    if hasattr(trigger, "event"):
        return "An event trigger fires when emit_event names its event, not on a clock."
    return "This trigger has no fire time after the given instant."


def _left_behind(now: datetime, change: str) -> Callable[[Task], list[Run]]:
    """The missed rows for the stored task's fires that came due unclaimed (every process was
    down or still starting): the edit computes the next fire from now, so no claim would ever
    record them, and a fire must never vanish without a row."""

    def unclaimed(stored: Task) -> list[Run]:
        why = f"no Taskloom process had claimed it when the task was {change} at {now.isoformat()}"
        return unclaimed_fires(stored, now, why=why)

    return unclaimed
