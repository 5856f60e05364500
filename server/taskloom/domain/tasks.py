"""What a client submits (`TaskSpec`), what we store (`Task`), and the pieces of both.

Frozen, validated pydantic models with `extra="forbid"`: an unknown key from the calling model is an
error, never silently dropped. Deeper checks that need the step-tool catalogue or the schedule math
live in `tasks/validate.py`.
"""

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from taskloom.domain.priority import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY
from taskloom.domain.timezones import legacy_zone_problem

MAX_STEPS = 50
MAX_NAME_CHARS = 200
# tasks.name_key: a lower-cased name (up to 2 characters per one: U+0130) plus the marker of a
# legacy duplicate (migration 0007).
NAME_KEY_CHARS = 500
MAX_DESCRIPTION_CHARS = 4000
MAX_TASK_TIMEOUT_S = 86400
MAX_STEP_TIMEOUT_S = 3600
MAX_CATCHUP_WINDOW_S = 366 * 86400
MAX_PAUSE_ON_FAILURE = 1000
NAME_PATTERN = r"\S"  # at least one visible character
STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
RESERVED_STEP_IDS = frozenset(
    {"items", "keys", "values", "get", "update", "pop", "popitem", "copy", "clear", "setdefault"}
)
EVENT_NAME_PATTERN = r"^[A-Za-z0-9_.:\-]{1,100}$"


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _not_bool(value: Any) -> Any:
    # JSON true is not 1: `"every": true` must not become a 1-second schedule.
    if isinstance(value, bool):
        raise ValueError(f"Give a number, not {str(value).lower()}")
    return value


def _not_bool_duration(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(
            f"Give a duration such as '30m' or a number of seconds, not {str(value).lower()}"
        )
    return value


Seconds = Annotated[float, BeforeValidator(_not_bool)]
Count = Annotated[int, BeforeValidator(_not_bool)]
Duration = Annotated[str | float, BeforeValidator(_not_bool_duration)]

# Limits sit before the validator, so the JSON schema states them (`minimum`, `maximum`) also
# where the value is optional (after it, pydantic leaks its internal `ge`/`le` keys instead).
StepTimeout = Annotated[float, Field(gt=0, le=MAX_STEP_TIMEOUT_S), BeforeValidator(_not_bool)]
TaskTimeout = Annotated[float, Field(gt=0, le=MAX_TASK_TIMEOUT_S), BeforeValidator(_not_bool)]
CatchupWindow = Annotated[int, Field(ge=1, le=MAX_CATCHUP_WINDOW_S), BeforeValidator(_not_bool)]
RunLimit = Annotated[int, Field(ge=1), BeforeValidator(_not_bool)]
FailureLimit = Annotated[int, Field(ge=1, le=MAX_PAUSE_ON_FAILURE), BeforeValidator(_not_bool)]
Priority = Annotated[int, Field(ge=MIN_PRIORITY, le=MAX_PRIORITY), BeforeValidator(_not_bool)]


def check_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        meant = legacy_zone_problem(value)
        if meant is not None:
            raise ValueError(meant) from exc
        raise ValueError(
            f"unknown timezone {value!r}; use an IANA name such as 'Europe/Berlin', "
            "'America/New_York' or 'UTC'"
        ) from exc
    return value


class CronTrigger(Frozen):
    """Fires when a 5-field cron expression (or 6, seconds first) matches, in `timezone`."""

    cron: str = Field(min_length=1, max_length=200, examples=["0 9 * * 1-5"])
    timezone: str | None = Field(
        default=None, description="IANA timezone; the server's default when omitted"
    )

    _tz = field_validator("timezone")(check_timezone)


class IntervalTrigger(Frozen):
    """Fires every `every` (seconds, or '30m', '1h30m', '2d'), anchored at `start_at` (default:
    the task's creation) so restarts do not drift it."""

    every: Duration = Field(examples=["30m", 3600])
    start_at: AwareDatetime | None = None
    timezone: str | None = Field(default=None, description="shown in answers; IANA name")

    _tz = field_validator("timezone")(check_timezone)


class OnceTrigger(Frozen):
    """Fires once, at `at` (ISO 8601 with an offset, or naive in `timezone`)."""

    at: datetime
    timezone: str | None = None

    _tz = field_validator("timezone")(check_timezone)


class EventTrigger(Frozen):
    """Fires when `emit_event` (or POST /events/{name}) names this event."""

    event: str = Field(pattern=EVENT_NAME_PATTERN)


def _trigger_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if not isinstance(value, dict):
        return None
    for key in ("cron", "every", "at", "event"):
        if key in value:
            return key
    return None


Trigger = Annotated[
    Annotated[CronTrigger, Tag("cron")]
    | Annotated[IntervalTrigger, Tag("every")]
    | Annotated[OnceTrigger, Tag("at")]
    | Annotated[EventTrigger, Tag("event")],
    Discriminator(
        _trigger_kind,
        custom_error_type="invalid_trigger",
        custom_error_message=(
            "a trigger needs exactly one of 'cron', 'every', 'at' or 'event', e.g. "
            '{"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"}, {"every": "30m"}, '
            '{"at": "2026-12-01T09:00:00+01:00"} or {"event": "deploy_finished"}; '
            "omit it for manual-only tasks"
        ),
    ),
]


class RetryPolicy(Frozen):
    """Attempts in all (1 = no retry), exponential backoff with jitter, capped at max_backoff_s."""

    attempts: Count = Field(default=1, ge=1, le=10)
    backoff_s: Seconds = Field(default=5.0, ge=0, le=3600)
    max_backoff_s: Seconds = Field(default=300.0, ge=0, le=86400)


class Step(Frozen):
    # One tool call in a chain; `args` are Jinja2 templates over earlier steps' outputs. A
    # comment, not a docstring: create_task's description says it, and tools/list is paid for
    # by every chat.

    id: str = Field(pattern=STEP_ID_PATTERN, description="unique within the task, e.g. 'fetch'")
    tool: str = Field(
        min_length=1,
        max_length=200,
        description="a built-in step tool (see list_step_tools) or '<server>/<tool>'",
    )
    args: dict[str, Any] = Field(default_factory=dict)
    timeout_s: StepTimeout | None = None
    retry: RetryPolicy | None = None
    on_error: Literal["fail", "continue"] = "fail"
    # Templates, bounded by the task's size limit (a maxLength would cost every chat bytes).
    when: str | None = Field(default=None, description="skip unless true")
    foreach: str | None = Field(default=None, description="a list: run per {{ item }}")

    @field_validator("id")
    @classmethod
    def _not_a_mapping_method(cls, value: str) -> str:
        # `steps.items` would reach dict.items in a template, never the step.
        if value in RESERVED_STEP_IDS:
            raise ValueError(f"{value!r} is reserved; pick another step id, e.g. '{value}_step'")
        return value


class NotifyPolicy(Frozen):
    on: Literal["always", "failure", "change", "never", "lifecycle"] = "failure"
    webhook_url: str | None = Field(default=None, max_length=2000)
    desktop: bool = False
    # Apprise URLs (ntfy://, tgram://, mailtos://, ...), each literal or '{{ secrets.NAME }}'.
    urls: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list, max_length=10
    )


class SummaryPolicy(Frozen):
    enabled: bool = False
    model: str | None = Field(default=None, max_length=200)
    max_tokens: Count = Field(default=150, ge=16, le=2000)


def instruction_task(data: Any) -> Any:
    """`instruction` (and `tools`) without `steps` become one `agent` step: a task may be just
    an instruction to a model with the step tools it may call."""
    if not isinstance(data, dict):
        return data
    if data.get("instruction") is None:
        if data.get("tools"):
            raise ValueError("tools go with instruction; give the instruction too")
        # Given, so that min_length checks it: a default would not be validated.
        return data if "steps" in data else {**data, "steps": []}
    if data.get("steps"):
        raise ValueError(
            "give either steps or instruction (one agent step), not both; put the instruction "
            'in a step {"tool": "agent", "args": {"instruction": ...}} to mix them'
        )
    data = {k: v for k, v in data.items() if k != "steps"}
    args = {"instruction": data.pop("instruction"), "tools": data.pop("tools", None) or []}
    data["steps"] = [{"id": "agent", "tool": "agent", "args": args}]
    return data


INSTRUCTION = Field(
    default=None,
    max_length=100_000,
    exclude=True,
    description="instead of steps: one agent step",
)
TOOLS = Field(default=None, exclude=True, description="step tools it may call")


CatchupPolicy = Literal["skip", "latest", "all"]
OverlapPolicy = Literal["skip", "queue", "allow"]


def name_key(name: str) -> str:
    """What makes two of an owner's task names the same: the name lower-cased by Python's
    `str.lower` (also for non-ASCII letters, which SQLite's lower() leaves alone). Stored beside
    the name (`tasks.name_key`, unique per owner) and looked up by `Store.task_named`; computed
    here only, never in SQL. At most `NAME_KEY_CHARS` long (lower-casing may lengthen a name)."""
    return name.lower()


def _visible_name(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("name must contain a visible character, e.g. 'Morning digest'")
        return value.strip()
    return value


# Constraints sit inside each annotation (not on the field), so a field made optional for the
# patch keeps them, and the JSON schema says them (`minimum`, not pydantic's internal `ge`).
TaskName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN),
    BeforeValidator(_visible_name),
]


class TaskStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"


class TaskFields(Frozen):
    """Everything a client may set on a task: the one definition `create_task`, `update_task`
    (`TaskPatch`, each field optional) and the stored `Task` are built from. Every limit is a
    constraint here, so the tools' schemas advertise exactly what validation enforces."""

    name: TaskName = Field(description="short human name, e.g. 'Morning BTC digest'")
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    # Not required by the schema: `instruction` may stand for the steps (see instruction_task,
    # which gives a task with neither an empty list, refused by min_length naming `steps`).
    steps: list[Step] = Field(
        default_factory=list,
        min_length=1,
        max_length=MAX_STEPS,
        description="the chain, run in order",
    )
    trigger: Trigger | None = Field(
        default=None, description="when to run; omit for manual-only (run_task)"
    )
    catchup: CatchupPolicy = "latest"
    catchup_window_s: CatchupWindow | None = None
    overlap: OverlapPolicy = "skip"
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_s: TaskTimeout | None = None
    notify: NotifyPolicy = Field(default_factory=NotifyPolicy)
    summary: SummaryPolicy = Field(default_factory=SummaryPolicy)
    end_at: AwareDatetime | None = None
    max_runs: RunLimit | None = None
    pause_on_failure: FailureLimit | None = None
    priority: Priority = Field(default=DEFAULT_PRIORITY, description="higher starts first")
    instruction: str | None = INSTRUCTION
    tools: list[str] | None = TOOLS

    _instruction = model_validator(mode="before")(instruction_task)


# create_task's shorthand for a one-agent-step task; update_task changes such a task through its
# steps (steps[0].args.instruction): tools/list is paid for by every chat.
SHORTHANDS = frozenset({"instruction", "tools"})

ENABLED_DOC = "false: paused (as pause_task); the task keeps this as its status"


class TaskSpec(TaskFields):
    """What `create_task` receives: the fields, and whether the task starts paused. `enabled`
    is input only: a task's state is stored once, as its `status`."""

    enabled: bool = Field(default=True, description=ENABLED_DOC)

    def fields(self) -> dict[str, Any]:
        """The task's fields (without `enabled`), as values for `Task`."""
        return {name: getattr(self, name) for name in TaskFields.model_fields}

    @property
    def status(self) -> TaskStatus:
        return TaskStatus.ACTIVE if self.enabled else TaskStatus.PAUSED


ClearableField = Literal[
    "trigger", "end_at", "max_runs", "timeout_s", "pause_on_failure", "catchup_window_s"
]


def optional_fields(
    model: type[BaseModel], exclude: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Each field of `model` but `exclude`, with its constraints and description, optional
    (default None)."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        kind: Any = info.annotation
        if info.metadata:
            kind = Annotated[(kind, *info.metadata)]
        more = {"description": info.description} if info.description else {}
        fields[name] = (kind | None, FieldInfo(default=None, **more))  # type: ignore[arg-type]
    return fields


if TYPE_CHECKING:
    _Patchable = Frozen
else:
    _Patchable = create_model(
        "_Patchable", __base__=Frozen, **optional_fields(TaskFields, exclude=SHORTHANDS)
    )


class TaskPatch(_Patchable):
    """What `update_task` receives: `TaskFields`, each optional; only the fields that are set
    change; `clear` names optional fields to remove (e.g. the trigger, making the task
    manual-only)."""

    enabled: bool | None = Field(default=None, description=ENABLED_DOC)
    clear: list[ClearableField] = Field(
        default_factory=list,
        description="optional fields to remove, e.g. ['trigger'] for manual-only",
    )

    def changes(self) -> dict[str, Any]:
        """The fields set (each to its new value) and the fields cleared (to None)."""
        changed = {name: getattr(self, name) for name in self.model_fields_set - {"clear"}}
        return changed | dict.fromkeys(self.clear)


class FieldWarning(Frozen):
    """Something accepted that will fail at run time unless the operator sets it up (a secret,
    the API key, a host the guard refuses): shown with create, update and dry run answers."""

    field: str
    message: str


class Task(TaskFields):
    """The stored aggregate."""

    id: str
    owner: str = "local"
    timezone: str = Field(description="the timezone the trigger is evaluated in")
    status: TaskStatus = TaskStatus.ACTIVE
    revision: int = 1
    created_at: AwareDatetime
    updated_at: AwareDatetime
    next_fire_at: AwareDatetime | None = None
    last_attempt_at: AwareDatetime | None = None
    last_run_at: AwareDatetime | None = None
    last_run_status: str | None = None
    last_summary: str | None = None
    last_error: str | None = None
    run_count: int = 0
    consecutive_failures: int = 0
    managed_by: str | None = Field(
        default=None,
        description="the file set (`taskloom tasks apply --set`) that keeps this task in files; "
        "null: made by a client or `taskloom tasks create`",
    )

    @property
    def anchor(self) -> datetime:
        """Where an interval's grid starts: its start_at, else the task's creation."""
        start = getattr(self.trigger, "start_at", None)
        return start if isinstance(start, datetime) else self.created_at

    def spec(self) -> TaskSpec:
        """The task as `create_task` would take it: its fields, and enabled unless paused.
        Built without validating again: the task's fields were validated as these same
        `TaskFields`, and are immutable."""
        fields = {name: getattr(self, name) for name in TaskFields.model_fields}
        return TaskSpec.model_construct(**fields, enabled=self.status != TaskStatus.PAUSED)


def trigger_kind(trigger: Any) -> str:
    """'cron' | 'every' | 'at' | 'event' | 'manual'."""
    return _trigger_kind(trigger) or "manual"
