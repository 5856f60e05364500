"""The shapes MCP clients receive (structured tool output). Times are ISO 8601 with offsets."""

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from taskloom.runs.model import Run
from taskloom.step_tools import StepToolInfo
from taskloom.tasks.model import FieldWarning, Task


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


class FireTime(Answer):
    local: str = Field(description="in the trigger's timezone, with offset")
    utc: str


class TaskAnswer(Answer):
    """A task with its schedule in plain sight."""

    task: Task
    timezone: str = Field(description="the timezone the trigger is evaluated in")
    next_fires: list[FireTime] = Field(description="the next scheduled instants (empty: none)")
    recent_runs: list[Run] | None = Field(default=None, description="newest first, without steps")
    message: str | None = None
    warnings: list[FieldWarning] = Field(
        default_factory=list, description="accepted, but will fail at run time until fixed"
    )


class TaskSummary(Answer):
    id: str
    name: str
    status: str
    enabled: bool
    trigger: dict[str, Any] | None
    timezone: str
    next_fire: FireTime | None
    last_run_status: str | None
    last_run_at: AwareDatetime | None
    last_summary: str | None
    last_error: str | None
    run_count: int


class TaskList(Answer):
    tasks: list[TaskSummary]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: no more")
    server_timezone: str


class Deleted(Answer):
    id: str
    deleted: bool
    runs_deleted: int


class SchedulePreview(Answer):
    trigger: dict[str, Any] | None
    timezone: str
    after: str
    fires: list[FireTime]
    note: str | None = None


class StepToolList(Answer):
    tools: list[StepToolInfo]
    count: int


class RunAnswer(Answer):
    run: Run
    message: str | None = None
    warnings: list[FieldWarning] = Field(
        default_factory=list, description="dry run: what would fail when scheduled, until fixed"
    )


class RunList(Answer):
    runs: list[Run] = Field(description="newest first; step details via get_run")
    next_cursor: str | None


class EventAnswer(Answer):
    event: str
    runs: list[Run] = Field(description="one run started per listening task")
    message: str


class ProcessStatus(Answer):
    id: str
    role: str
    hostname: str
    pid: int
    started_at: AwareDatetime
    last_heartbeat: AwareDatetime
    this_process: bool


class LeaseStatus(Answer):
    run_id: str
    task_id: str
    holder: str | None
    lease_expires_at: AwareDatetime | None


class NextFire(Answer):
    task_id: str
    name: str
    at: FireTime


class TaskHealth(Answer):
    task_id: str
    name: str
    runs: int
    success_rate: float = Field(description="succeeded / ended runs, 0..1")
    mean_duration_ms: float | None


class SchedulerStatus(Answer):
    now: AwareDatetime
    server_timezone: str
    this_process: str
    uptime_s: float | None = Field(description="null: this process does not schedule")
    processes: list[ProcessStatus] = Field(description="Taskloom processes alive on this database")
    runs_in_flight: list[LeaseStatus]
    queue_depth: int
    queue_due: int
    tasks_by_status: dict[str, int]
    next_fires: list[NextFire]
    per_task: list[TaskHealth]
