"""Tasks and runs for the store tests, stamped from one instant so ids sort as they are made."""

from datetime import UTC, datetime, timedelta

from taskloom.domain.runs import Run, RunStatus, RunTrigger, StepResult, StepStatus
from taskloom.domain.storage import Store
from taskloom.domain.tasks import Task, TaskSpec
from taskloom.ids import new_id

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def make_task(n: int = 0, owner: str = "local", **extra: object) -> Task:
    """A daily task named `task n`, made n ms after T0; `extra` sets any other field."""
    spec = TaskSpec.model_validate(
        {
            "name": f"task {n}",
            "steps": [{"id": "a", "tool": "wait", "args": {"seconds": 0}}],
            "trigger": {"cron": "0 9 * * *", "timezone": "Europe/Berlin"},
        }
    )
    at = T0 + timedelta(milliseconds=n)
    fields: dict[str, object] = {
        **dict(spec),
        "id": new_id("tsk", at),
        "owner": owner,
        "timezone": "Europe/Berlin",
        "created_at": at,
        "updated_at": at,
        "next_fire_at": at + timedelta(hours=1),
    }
    return Task.model_validate({**fields, **extra})


def make_run(task: Task, n: int = 0, status: RunStatus = RunStatus.SUCCEEDED) -> Run:
    at = T0 + timedelta(seconds=n)
    return Run(
        id=new_id("run", at),
        task_id=task.id,
        status=status,
        trigger=RunTrigger.SCHEDULE,
        fire_time=at,
        created_at=at,
        started_at=at,
        finished_at=at + timedelta(milliseconds=5),
        duration_ms=5,
        output={"n": n},
        steps=[
            StepResult(
                id="a", index=0, tool="wait", status=StepStatus.SUCCEEDED, args={"seconds": 0},
                output={"waited_s": 0}, started_at=at, finished_at=at, duration_ms=0, attempts=1,
            )
        ],
    )  # fmt: skip


def running_run(task: Task, n: int = 0, *, holder: str, lease_s: float = 60) -> Run:
    """A run of `task` held by `holder`, its lease ending `lease_s` after T0 + n s."""
    return as_running(make_run(task, n), holder=holder, lease_s=lease_s)


def as_running(run: Run, *, holder: str, lease_s: float = 60) -> Run:
    """`run` (same id) as it is while `holder` executes it, its lease `lease_s` from its start."""
    assert run.started_at is not None
    return run.model_copy(
        update={
            "status": RunStatus.RUNNING,
            "finished_at": None,
            "duration_ms": None,
            "output": None,
            "steps": [],
            "lease_owner": holder,
            "lease_expires_at": run.started_at + timedelta(seconds=lease_s),
        }
    )


def queued_run(task: Task, n: int = 0, **changes: object) -> Run:
    """A queued run of `task` (a retry by default), due from T0."""
    return make_run(task, n).model_copy(
        update={
            "status": RunStatus.QUEUED,
            "trigger": RunTrigger.RETRY,
            "attempt": 2,
            "started_at": None,
            "finished_at": None,
            "duration_ms": None,
            "output": None,
            "steps": [],
            **changes,
        }
    )


async def stored_task(store: Store, n: int = 0, owner: str = "local", **extra: object) -> Task:
    task = make_task(n, owner, **extra)
    await store.add_task(task, max_per_owner=100)
    return task
