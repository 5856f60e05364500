"""SQLModel tables: the only module that knows how rows look.

Tasks keep their whole client-facing definition as one JSON document (`spec`) beside the few
columns we query by; runs and step results are columns because history is filtered and paged.
All times are stored as UTC and come back aware.
"""

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import JSON, Column, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect, Row
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from taskloom.domain.runs import Run, RunCause, RunStatus, StepResult, StepStatus
from taskloom.domain.tasks import (
    NAME_KEY_CHARS,
    Task,
    TaskFields,
    TaskStatus,
    name_key,
    trigger_kind,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the store")
        if value.tzinfo is not UTC:  # most are UTC already (the clock's): no conversion
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, one function instead of this type's conversion chained to the dialect's
        (a keyword `replace`, then a dict-formatted string; a burst binds ~15 times per run):
        the same text, `YYYY-MM-DD HH:MM:SS.ffffff` in UTC (reads: `result_processor`)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime reached the store")
            if value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            return value.isoformat(" ", "microseconds")[:-6]  # without its "+00:00"

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(
        self, dialect: Dialect, coltype: Any
    ) -> Callable[[Any], datetime | None] | None:
        """On SQLite, the naive UTC text parses straight to the aware datetime that the driver's
        parse and `process_result_value` make (`replace(tzinfo=...)` costs four times the
        parse, and a page of runs reads six a row); any other text takes that way."""
        usual = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or usual is None:
            return usual

        def process(value: Any) -> datetime | None:
            if isinstance(value, str):
                try:
                    parsed = datetime.fromisoformat(value + "+00:00")
                except ValueError:
                    return usual(value)
                if parsed.tzinfo is UTC:
                    return parsed
            return usual(value)

        return process


def _time(*, index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), index=index, nullable=nullable))


def _json() -> Any:
    return Field(default=None, sa_column=Column(JSON(), nullable=True))


# `managed_by` rides in the spec document: no column, no migration, old rows read as None.
SPEC_FIELDS = set(TaskFields.model_fields) - {"name", "description"} | {"managed_by"}


class TaskRow(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_owner_id", "owner", "id"),
        Index("ix_tasks_next_fire", "status", "next_fire_at"),
        # Names are unique per owner ignoring case (migration 0007): the lookup of
        # `task_named`, and the rule between two racing creates (`NameTaken`).
        Index("uq_tasks_owner_name_key", "owner", "name_key", unique=True),
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    owner: str = Field(sa_column=Column(String(200), nullable=False))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    # `domain.tasks.name_key(name)`; a task that shared its key with an older one before the
    # rule was kept (migration 0007) holds the key with a marker, and keeps it until renamed.
    name_key: str = Field(sa_column=Column(String(NAME_KEY_CHARS), nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    spec: dict[str, Any] = Field(sa_column=Column(JSON(), nullable=False))
    timezone: str = Field(sa_column=Column(String(64), nullable=False))
    trigger_kind: str = Field(sa_column=Column(String(16), nullable=False))
    event_name: str | None = Field(default=None, sa_column=Column(String(100), index=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    revision: int = 1
    created_at: datetime = _time(nullable=False)
    updated_at: datetime = _time(nullable=False)
    next_fire_at: datetime | None = _time()
    last_attempt_at: datetime | None = _time()
    last_run_at: datetime | None = _time()
    last_run_status: str | None = Field(default=None, sa_column=Column(String(16)))
    last_summary: str | None = Field(default=None, sa_column=Column(Text))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    run_count: int = 0
    consecutive_failures: int = 0

    @classmethod
    def from_domain(cls, task: Task) -> "TaskRow":
        return cls(**cls.values(task))

    @staticmethod
    def values(task: Task) -> dict[str, Any]:
        """The row as column values, for a Core insert (no model instance: create_task)."""
        data = task.model_dump(mode="json", include=SPEC_FIELDS)
        trigger = data.get("trigger")
        return {
            "id": task.id,
            "owner": task.owner,
            "name": task.name,
            "name_key": name_key(task.name),
            "description": task.description,
            "spec": data,
            "timezone": task.timezone,
            "trigger_kind": trigger_kind(trigger),
            "event_name": trigger.get("event") if isinstance(trigger, dict) else None,
            "status": task.status.value,
            "revision": task.revision,
            **{f: getattr(task, f) for f in _TASK_STATE},
        }

    def to_domain(self) -> Task:
        return task_of(self)


def task_of(row: Any) -> Task:
    """The task in a `TaskRow`, or in a Core row of the tasks table (same names; a Core row is
    read through its mapping: its attribute lookup fails on its class first, an exception each)."""
    if isinstance(row, Row):
        return task_from(row._mapping)
    return task_from({name: getattr(row, name) for name in _TASK_COLUMNS})


def task_from(values: Mapping[Any, Any]) -> Task:
    """The task in a row's values by column name (a Core row: `dict(zip(result.keys(), row))`,
    which is several times cheaper than reading a Core row's attributes one by one)."""
    return Task.model_validate(
        {
            **values["spec"],
            **{name: values[name] for name in _TASK_FIELDS},
            "status": TaskStatus(values["status"]),
        }
    )


_TASK_STATE = (
    "created_at",
    "updated_at",
    "next_fire_at",
    "last_attempt_at",
    "last_run_at",
    "last_run_status",
    "last_summary",
    "last_error",
    "run_count",
    "consecutive_failures",
)
# The columns a task is read from, beside `spec` and `status`, which `task_from` converts.
_TASK_FIELDS = ("id", "owner", "name", "description", "timezone", "revision", *_TASK_STATE)
_TASK_COLUMNS = ("spec", "status", *_TASK_FIELDS)


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        # The claim: one run per (task, scheduled instant, attempt), whichever process fires.
        UniqueConstraint("task_id", "fire_time", "attempt", name="uq_runs_fire"),
        Index("ix_runs_task_id_id", "task_id", "id"),
        # One task's history filtered by status (task_history task_id + status), migration 0004.
        Index("ix_runs_task_status_id", "task_id", "status", "id"),
        Index("ix_runs_status_id", "status", "id"),
        Index("ix_runs_owner_id", "owner", "id"),
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    task_id: str = Field(sa_column=Column(String(40), nullable=False))
    owner: str = Field(sa_column=Column(String(200), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    trigger: str = Field(sa_column=Column(String(16), nullable=False))
    fire_time: datetime | None = _time()
    attempt: int = 1
    created_at: datetime = _time(nullable=False)
    not_before: datetime | None = _time()
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    duration_ms: int | None = None
    output: Any = _json()
    summary: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    event: dict[str, Any] | None = _json()
    lease_owner: str | None = Field(default=None, sa_column=Column(String(100)))
    lease_expires_at: datetime | None = _time(index=True)

    @classmethod
    def from_domain(cls, run: Run, owner: str) -> "RunRow":
        return cls(**cls.values(run, owner))

    @staticmethod
    def values(run: Run, owner: str) -> dict[str, Any]:
        """The row as column values, for Core inserts: a claim or a retry writes many runs, and
        a model instance per row cost more than the rest of the claim."""
        return {
            "id": run.id,
            "task_id": run.task_id,
            "owner": owner,
            "status": run.status.value,
            "trigger": run.cause.value,
            "attempt": run.attempt,
            "duration_ms": run.duration_ms,
            "output": _jsonable(run.output),
            "summary": run.summary,
            "error": run.error,
            "event": _jsonable(run.event),
            "lease_owner": run.lease_owner,
            **{name: getattr(run, name) for name in _RUN_TIMES},
        }

    def to_domain(self, steps: list[StepResult] | None = None) -> Run:
        return run_of(self, steps)


def _jsonable(value: Any) -> Any:
    """As `from_domain` stores JSON values (its model_dump(mode="json"))."""
    return None if value is None else to_jsonable_python(value)


def run_of(row: Any, steps: list[StepResult] | None = None) -> Run:
    """The run in a `RunRow`, or in a Core row of the runs table (same attribute names): reads
    select Core rows, which skips the ORM's identity map and instance state per row."""
    return run_from({name: getattr(row, name) for name in _RUN_COLUMNS}, steps)


def run_from(values: Mapping[str, Any], steps: list[StepResult] | None = None) -> Run:
    """The run in a row's values by column name (a Core row: `dict(zip(result.keys(), row))`,
    several times cheaper than reading a Core row's attributes one by one): one validation."""
    fields = {name: values[name] for name in _RUN_FIELDS}
    fields["status"] = RunStatus(values["status"])
    fields["cause"] = RunCause(values["trigger"])
    fields["steps"] = steps or []
    return Run.model_validate(fields)


_RUN_TIMES = (
    "fire_time",
    "created_at",
    "not_before",
    "started_at",
    "finished_at",
    "lease_expires_at",
)
# The columns a run is read from, beside `status` and `trigger`, which `run_from` converts.
_RUN_FIELDS = (
    "id", "task_id", "attempt", "duration_ms", "output", "summary", "error", "event",
    "lease_owner", *_RUN_TIMES,
)  # fmt: skip
_RUN_COLUMNS = ("status", "trigger", *_RUN_FIELDS)


class StepResultRow(SQLModel, table=True):
    __tablename__ = "step_results"

    run_id: str = Field(sa_column=Column(String(40), primary_key=True))
    index: int = Field(
        sa_column=Column("step_index", Integer, primary_key=True, autoincrement=False)
    )
    step_id: str = Field(sa_column=Column(String(64), nullable=False))
    tool: str = Field(sa_column=Column(String(200), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    args: dict[str, Any] | None = _json()
    output: Any = _json()
    error: str | None = Field(default=None, sa_column=Column(Text))
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    duration_ms: int | None = None
    attempts: int = 0
    calls: list[dict[str, Any]] | None = _json()
    reason: str | None = Field(default=None, sa_column=Column(Text))

    @classmethod
    def from_domain(cls, run_id: str, step: StepResult) -> "StepResultRow":
        values = cls.values(run_id, step)
        values["index"] = values.pop("step_index")  # the attribute mapped to step_index
        return cls(**values)

    @staticmethod
    def values(run_id: str, step: StepResult) -> dict[str, Any]:
        """The row as column values, for Core statements (no model instance built)."""
        return {
            "run_id": run_id,
            "step_index": step.index,
            "step_id": step.id,
            "tool": step.tool,
            "status": step.status.value,
            "args": step.args,
            "output": step.output,
            "error": step.error,
            "started_at": step.started_at,
            "finished_at": step.finished_at,
            "duration_ms": step.duration_ms,
            "attempts": step.attempts,
            "calls": _calls(step),
            "reason": step.reason,
        }

    def to_domain(self) -> StepResult:
        return step_of(self, self.index)


def step_of(row: Any, index: int) -> StepResult:
    """The step result in a `StepResultRow`, or in a Core row (its index column is
    `step_index` there)."""
    return StepResult(
        id=row.step_id,
        index=index,
        tool=row.tool,
        status=StepStatus(row.status),
        args=row.args,
        output=row.output,
        error=row.error,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_ms=row.duration_ms,
        attempts=row.attempts,
        calls=row.calls,  # pydantic validates the dicts into ToolCall models
        reason=row.reason,
    )


def _calls(step: StepResult) -> list[dict[str, Any]] | None:
    return None if step.calls is None else [c.model_dump(mode="json") for c in step.calls]


class RevisionRow(SQLModel, table=True):
    """One change of a task (store/revisions.py): who, when, the diff and the definition after."""

    __tablename__ = "task_revisions"

    task_id: str = Field(sa_column=Column(String(40), primary_key=True))
    revision: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    owner: str = Field(sa_column=Column(String(200), nullable=False))
    principal: str = Field(sa_column=Column(String(200), nullable=False))
    action: str = Field(sa_column=Column(String(16), nullable=False))
    at: datetime = _time(nullable=False)
    diff: dict[str, Any] = Field(sa_column=Column(JSON(), nullable=False))
    snapshot: dict[str, Any] | None = _json()


class ProcessRow(SQLModel, table=True):
    """A live Taskloom process (serve or worker), kept fresh by heartbeat."""

    __tablename__ = "processes"

    id: str = Field(sa_column=Column(String(100), primary_key=True))
    hostname: str = Field(sa_column=Column(String(255), nullable=False))
    pid: int
    role: str = Field(sa_column=Column(String(16), nullable=False))
    started_at: datetime = _time(nullable=False)
    heartbeat_at: datetime = _time(nullable=False, index=True)


class CounterRow(SQLModel, table=True):
    """Named counters; `tasks_revision` moves on every task change so other processes notice."""

    __tablename__ = "counters"

    name: str = Field(sa_column=Column(String(64), primary_key=True))
    value: int = 0


class OwnerTasksRow(SQLModel, table=True):
    """How many tasks each owner has (migration 0008), moved in the transaction of every task
    insert and delete: the per-owner cap reads this row instead of counting the owner's tasks."""

    __tablename__ = "owner_tasks"

    owner: str = Field(sa_column=Column(String(200), primary_key=True))
    tasks: int = Field(sa_column=Column(Integer, nullable=False))
