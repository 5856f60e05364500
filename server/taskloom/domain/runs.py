"""Runs and step results: what happened, kept for the user to read."""

from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    MISSED = "missed"

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class RunCause(StrEnum):
    """Why a run exists (not the task's `Trigger`, which says when the task fires)."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    EVENT = "event"
    CATCHUP = "catchup"
    RETRY = "retry"


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolCall(Frozen):
    """One tool call an `agent` step's model made, recorded like a step (redacted, bounded)."""

    turn: int = Field(ge=1, description="the model request that asked for it")
    tool: str
    status: Literal["succeeded", "failed", "refused"]
    args: Any = None
    output: Any = None
    error: str | None = None
    started_at: AwareDatetime | None = None
    duration_ms: int | None = None


class StepResult(Frozen):
    id: str = Field(description="the step's id in the task")
    index: int = Field(ge=0)
    tool: str
    status: StepStatus
    args: dict[str, Any] | None = Field(default=None, description="resolved, secrets redacted")
    output: Any = None
    error: str | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    duration_ms: int | None = None
    attempts: int = 0
    reason: str | None = Field(default=None, description="why a step was skipped (`when`)")
    calls: list[ToolCall] | None = Field(default=None, description="an agent's tool calls")


class Run(Frozen):
    # `cause` is stored and answered as `trigger`, the name clients and templates know.
    model_config = ConfigDict(
        extra="forbid", frozen=True, serialize_by_alias=True, validate_by_name=True
    )

    id: str
    task_id: str
    status: RunStatus
    cause: RunCause = Field(
        alias="trigger", description="why the run exists: schedule, manual, event, catchup, retry"
    )
    fire_time: AwareDatetime | None = Field(
        default=None, description="the scheduled instant this run belongs to (UTC)"
    )
    attempt: int = 1
    created_at: AwareDatetime
    not_before: AwareDatetime | None = Field(
        default=None, description="a queued run waits until then (retry backoff)"
    )
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    duration_ms: int | None = None
    output: Any = None
    summary: str | None = None
    error: str | None = None
    event: dict[str, Any] | None = Field(default=None, description="payload of an event trigger")
    lease_owner: str | None = None
    lease_expires_at: AwareDatetime | None = None
    steps: list[StepResult] = Field(default_factory=list)
