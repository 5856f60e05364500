"""The shapes MCP clients receive (structured tool output). Times are ISO 8601 with offsets.

Their output schemas stay small: a task or a run is described in a sentence (create_task's input
schema documents a task's fields) instead of repeating the whole model in every tool.
"""

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema

from taskloom.domain.runs import Run
from taskloom.domain.storage import HEALTH_RUNS
from taskloom.domain.tasks import FieldWarning, Task
from taskloom.step_tools import StepToolInfo


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


TaskShape = Annotated[
    Task,
    WithJsonSchema(
        {
            "type": "object",
            "description": "create_task's fields, plus id, status, run_count, last_*",
        }
    ),
]
RunShape = Annotated[
    Run,
    WithJsonSchema(
        {
            "type": "object",
            "description": "id, status, times, output, error, steps[]; no nulls",
        }
    ),
]


class FireTime(Answer):
    local: str = Field(description="in the trigger's timezone, with offset")
    utc: str


class TaskAnswer(Answer):
    """A task with its schedule in plain sight."""

    task: TaskShape
    timezone: str
    next_fires: list[FireTime] = Field(description="[{local, utc}]")
    recent_runs: list[RunShape] | None = None
    message: str | None = None
    warnings: list[FieldWarning] = Field(
        default_factory=list, description="accepted, but will fail at run time until fixed"
    )


class TaskSummary(Answer):
    id: str
    name: str
    status: str
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
    run: RunShape | None = None
    value: dict[str, Any] | None = Field(
        default=None,
        description="with step/path: a slice {format, chars, offset, text, more}; `more` is the "
        "call for the next one (null at the end)",
    )
    message: str | None = None
    warnings: list[FieldWarning] = Field(
        default_factory=list, description="dry run: what would fail when scheduled, until fixed"
    )


class RunList(Answer):
    runs: list[RunShape] = Field(description="newest first; step details via get_run")
    next_cursor: str | None


class EventAnswer(Answer):
    event: str
    runs: list[RunShape] = Field(description="one run started per listening task")
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
    success_rate: float = Field(description=f"succeeded / last {HEALTH_RUNS} ended runs")
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


# -- compact views of stored runs --------------------------------------------------------------

LEASE_FIELDS = ("lease_owner", "lease_expires_at")
# Values shorter than this are cheap to show twice; longer ones are shown once.
DUPLICATE_BYTES = 256


def run_view(run: Run, *, full: bool = False) -> dict[str, Any]:
    """A run as get_run shows it. Compact (default): no lease bookkeeping, no nulls, and each
    long value once (a step's error is not repeated in the run's error, the last step's output
    not again as the run's, an HTTP body not as text beside its parsed JSON). Full: the record."""
    data = run.model_dump(mode="json", exclude_none=not full)
    if full:
        return data
    for name in LEASE_FIELDS:
        data.pop(name, None)
    steps: list[dict[str, Any]] = data.get("steps", [])
    for index, step in enumerate(steps):
        _error_once(data, step, index)
        _output_once(data, step, index)
        if step.get("tool") == "http_request":
            _body_once(step.get("output"), run.id, step["id"])
    return data


# What a run in a list leaves out: its steps (get_run has them) and the lease bookkeeping.
_BRIEF_EXCLUDE = {"steps", *LEASE_FIELDS}


def brief_run(run: Run) -> dict[str, Any]:
    """A run in a list: the compact view without its steps (get_run has them). Without steps
    the compact view is the record without nulls and leases, dumped as such in one pass."""
    return run.model_dump(mode="json", exclude_none=True, exclude=_BRIEF_EXCLUDE)


def _error_once(run: dict[str, Any], step: dict[str, Any], index: int) -> None:
    error, run_error = step.get("error"), run.get("error")
    if isinstance(error, str) and len(error) > 80 and isinstance(run_error, str):
        run["error"] = run_error.replace(error, f"see steps[{index}].error")


def _output_once(run: dict[str, Any], step: dict[str, Any], index: int) -> None:
    """The run's output is its last successful step's: shown there, referred to here."""
    output = step.get("output")
    if output is not None and output == run.get("output") and _long(output):
        run["output"] = {"same_as": f"steps[{index}].output"}


def _body_once(output: Any, run_id: str, step_id: str) -> None:
    """http_request's output holds the body twice (text and parsed json): show it once."""
    if not isinstance(output, dict):
        return
    text = output.get("text")
    if output.get("json") is not None and isinstance(text, str) and _long(text):
        call = f"get_run(run_id={run_id!r}, step={step_id!r}, path='output.text', offset=0)"
        output["text"] = {"same_as": "json", "chars": len(text), "more": call}


def _long(value: Any) -> bool:
    return len(value if isinstance(value, str) else repr(value)) > DUPLICATE_BYTES
