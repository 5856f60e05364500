"""The storage boundary: every query the services make, as one protocol, and its value types.

The services (tasks, runs, scheduling, the API) know the store only as `Store`; `taskloom.store`
implements it over SQLite and PostgreSQL and is built in `app.py` alone. What the store decides
under its write lock it decides by calling the pure domain (`plan_fire`, `retry_run`,
`apply_run`), never by calling back into a service. Every failure of the database reaches the
services as a `taskloom.errors` exception: `StoreOutage` (unreachable or busy: try again),
`StoreUnavailable` (it refused), `Conflict` (a uniqueness rule or a stale revision).
"""

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from taskloom.domain.outcome import Outcome
from taskloom.domain.planning import FirePlan, LateReason, NewRun
from taskloom.domain.revisions import TaskRevision
from taskloom.domain.runs import Run, RunCause, RunStatus
from taskloom.domain.tasks import Task
from taskloom.errors import InvalidInput
from taskloom.ids import new_id

T = TypeVar("T")

# (task, its runs running, its runs queued) -> the run to record, or raises to refuse. Called
# inside the admission's write transaction: it must be pure (no I/O, no waiting).
MakeRun = Callable[[Task, int, int], Run]
# The runs a task change records for the stored task's due fires it leaves unclaimed.
Unclaimed = Callable[[Task], list[Run]] | None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; `next_cursor` continues it (None: this was the last page)."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, prefix: str) -> str | None:
    """The id a cursor of a `prefix` listing (`tsk` or `run`) continues after; anything else,
    such as a list_tasks cursor given to task_history, is refused rather than read as a filter."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        value = ""
    if not re.fullmatch(rf"{prefix}_[0-9a-z]{{26}}", value):
        listing = "list_tasks" if prefix == "tsk" else "task_history"
        raise InvalidInput(
            "cursor", cursor,
            f"It is not a cursor {listing} gave: pass the next_cursor of the previous "
            f"{listing} answer unchanged, or omit cursor for the first page.",
        )  # fmt: skip
    return value


def _no_known_cause(_: datetime) -> str | None:
    return None


@dataclass(frozen=True)
class FireContext:
    """What a fire claim needs to plan its runs inside the claim transaction: when it was asked
    (`now`), who will hold the runs it starts and for how long, the clock their records are
    stamped with, and why a late fire was late when the caller knows (`why_late`, pure)."""

    now: datetime
    holder: str
    lease: timedelta
    clock: Callable[[], datetime]
    why_late: LateReason = _no_known_cause

    def new_run(self, task: Task) -> NewRun:
        def make(cause: RunCause, fire: datetime, status: RunStatus) -> Run:
            return stamped_run(
                task, cause, self.clock(), holder=self.holder, lease=self.lease,
                fire_time=fire, status=status,
            )  # fmt: skip

        return make


def stamped_run(
    task: Task,
    cause: RunCause,
    now: datetime,
    *,
    holder: str,
    lease: timedelta,
    fire_time: datetime | None = None,
    attempt: int = 1,
    event: dict[str, object] | None = None,
    status: RunStatus = RunStatus.RUNNING,
) -> Run:
    """A new run made at `now`; a running one is held by `holder` for `lease`."""
    held = status == RunStatus.RUNNING
    return Run(
        id=new_id("run", now),
        task_id=task.id,
        status=status,
        cause=cause,
        fire_time=fire_time,
        attempt=attempt,
        created_at=now,
        started_at=now if held else None,
        event=event,
        lease_owner=holder if held else None,
        lease_expires_at=now + lease if held else None,
    )


@dataclass(frozen=True)
class Claimed:
    """A fire this process won: the task as the claim read it, and what the fire became."""

    task: Task
    plan: FirePlan


# Per task of a claim: Claimed (ours), or the task's current next fire time (someone else, or
# an edit, moved it on; None: nothing scheduled).
ClaimResult = Claimed | datetime | None


@dataclass(frozen=True)
class ProcessInfo:
    id: str
    hostname: str
    pid: int
    role: str
    started_at: datetime
    heartbeat_at: datetime


@dataclass(frozen=True)
class Quotas:
    """A principal's limits, checked in the transaction that records its run."""

    concurrent: int
    per_minute: int
    queued: int


@dataclass(frozen=True)
class Lease:
    run_id: str
    task_id: str
    holder: str | None
    expires_at: datetime | None


# Per-task health in the figures: the busiest tasks among the newest BUSIEST_WINDOW ended runs,
# each judged by its own newest HEALTH_RUNS ended runs (recent health, read in bounded time).
BUSIEST_WINDOW = 1000
HEALTH_RUNS = 100


@dataclass(frozen=True)
class TaskFigures:
    task_id: str
    name: str
    runs: int
    succeeded: int
    mean_duration_ms: float | None


@dataclass(frozen=True)
class Figures:
    """Read-only figures for `scheduler_status` and `taskloom status`."""

    queued: int
    queued_due: int
    running: list[Lease]
    next_fires: list[tuple[str, str, datetime]]
    per_task: list[TaskFigures]
    tasks_by_status: dict[str, int]


@dataclass(frozen=True)
class RunPoint:
    """A run without its output or steps: enough for charts, timelines and lateness."""

    run_id: str
    task_id: str
    status: str
    trigger: str
    fire_time: datetime | None
    started_at: datetime | None
    duration_ms: int | None


@dataclass(frozen=True)
class Gauges:
    """Counts for /metrics and the dashboard, counted in SQL (no rows loaded)."""

    queued: int
    queued_due: int
    running: int
    tasks_by_status: dict[str, int]


@dataclass(frozen=True)
class Cutoffs:
    """A retention policy at one instant: finished runs that ended before `before` go (failed
    and interrupted ones before `failed_before`); None keeps them forever. The newest
    `keep_last` finished runs of each task always stay."""

    before: datetime | None
    failed_before: datetime | None
    keep_last: int


@dataclass(frozen=True)
class Prunable:
    """What a retention policy would remove of one task's runs."""

    task_id: str
    runs: int
    failed: int
    oldest: datetime | None
    newest: datetime | None


@dataclass(frozen=True)
class Footprint:
    """The database's size and history, for `taskloom status`."""

    database_bytes: int | None
    free_bytes: int | None  # SQLite: pages on the free list (given back by a vacuum)
    runs: int
    oldest_run_at: datetime | None
    auto_vacuum: str | None  # SQLite: none, full or incremental


class Store(Protocol):
    """Every query the services make. `owner=None` means every owner (an operator's view)."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None: ...

    async def close(self) -> None: ...

    async def schema_revision(self) -> str | None: ...

    # -- tasks -------------------------------------------------------------------------------

    async def add_task(
        self, task: Task, *, max_per_owner: int, revision: TaskRevision | None = None
    ) -> None:
        """Insert; `Conflict` once the owner has `max_per_owner` tasks. `revision`: the audit
        trail's record of the change, numbered and appended in the same transaction (both are
        saved or neither is); likewise for `save_task` and `delete_task`."""
        ...

    async def get_task(self, task_id: str, owner: str | None = None) -> Task | None: ...

    async def task_named(self, owner: str, name: str) -> str | None:
        """The id of `owner`'s task called `name` (ignoring case), or None."""
        ...

    async def list_tasks(
        self,
        *,
        owner: str | None,
        status: str | None = None,
        name_contains: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Task]:
        """Oldest first; a cursor another listing gave is `InvalidInput`."""
        ...

    async def save_task(
        self,
        task: Task,
        *,
        expected_revision: int | None = None,
        unclaimed: Unclaimed = None,
        revision: TaskRevision | None = None,
    ) -> Task:
        """Write the definition (never the fields finished runs own); `Conflict` when the task
        is gone or its revision is no longer `expected_revision`. `unclaimed(stored)` gives the
        runs to record in the same transaction for the stored task's due fires that the new
        next fire leaves behind; the task is locked as a fire's claim locks it, so a claim
        comes wholly before or after. `revision`: as for `add_task`."""
        ...

    async def delete_task(
        self, task_id: str, *, delete_runs: bool, revision: TaskRevision | None = None
    ) -> int:
        """Remove the task; returns how many runs went with it. `revision`: as for `add_task`."""
        ...

    async def tasks_revision(self) -> int:
        """A counter every change of a task's definition moves (what timers are rebuilt on)."""
        ...

    # -- runs --------------------------------------------------------------------------------

    async def add_run(self, run: Run, *, owner: str) -> None:
        """Insert a run and its steps; `Conflict` for a second run of one fire and attempt."""
        ...

    async def start_run(self, run: Run, *, owner: str) -> None:
        """Insert a run the caller already holds, stamping the task's last attempt."""
        ...

    async def get_run(self, run_id: str, owner: str | None = None) -> Run | None: ...

    async def list_runs(
        self,
        *,
        owner: str | None,
        task_id: str | None = None,
        statuses: Sequence[RunStatus] = (),
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[Run]:
        """Newest first, without step results."""
        ...

    async def update_run_status(
        self, run_id: str, status: RunStatus, *, when: datetime, error: str | None = None
    ) -> bool:
        """End a queued or running run; False when it had already ended."""
        ...

    async def last_finished_run(self, task_id: str, *, before: str) -> Run | None:
        """The task's newest succeeded or failed run older than run id `before`."""
        ...

    # -- recording the runs this process holds -----------------------------------------------

    async def begin_run(self, run: Run, *, holder: str, now: datetime, until: datetime) -> bool:
        """True, and the lease renewed to `until`, only while `holder` still holds the run."""
        ...

    async def save_progress(self, run: Run, *, holder: str) -> bool:
        """Write a running run's steps; False when `holder` no longer holds it."""
        ...

    async def finish_run(
        self, run: Run, *, holder: str, outcome: Outcome, follow_up: Run | None = None
    ) -> bool:
        """Record a finished run, its effect on the task and its retry, while `holder` holds
        it; False (nothing written) otherwise."""
        ...

    # -- admission ---------------------------------------------------------------------------

    async def admit_manual(
        self, task_id: str, owner: str | None, now: datetime, quotas: Quotas, make: MakeRun
    ) -> tuple[Task, Run]:
        """Record the run `make` plans, within the owner's quotas (`QuotaExceeded`)."""
        ...

    async def admit_event(
        self, name: str, owner: str | None, now: datetime, quotas: Quotas, make: MakeRun
    ) -> list[tuple[Task, Run]]:
        """One run per active task listening to `name`; over a slot quota it is skipped."""
        ...

    # -- scheduling --------------------------------------------------------------------------

    async def scheduled(self) -> list[tuple[str, datetime]]:
        """Every active task's next fire time."""
        ...

    async def claim_fires(
        self, due: dict[str, datetime], context: FireContext
    ) -> dict[str, ClaimResult]:
        """Record once, for each task whose timer went off at `due[task_id]`, what the fire
        turns into (`plan_fire`), all in one transaction."""
        ...

    async def claim_queued(
        self, holder: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[tuple[Task, Run]]:
        """Take up to `limit` due queued runs for `holder`, oldest first."""
        ...

    async def renew_leases(self, holder: str, run_ids: Sequence[str], until: datetime) -> set[str]:
        """Extend `holder`'s leases; returns the ids it still holds."""
        ...

    async def sweep_expired(self, now: datetime) -> list[Run]:
        """Record runs whose lease expired as interrupted, queueing their retries
        (`retry_run`); returns them."""
        ...

    # -- processes and figures ---------------------------------------------------------------

    async def heartbeat(self, info: ProcessInfo) -> None: ...

    async def forget_process(self, process_id: str) -> None: ...

    async def forget_dead(self, before: datetime) -> list[str]:
        """Remove the rows of processes silent since `before`; returns their ids."""
        ...

    async def processes(self, alive_since: datetime) -> list[ProcessInfo]: ...

    async def figures(self, now: datetime, *, owner: str | None, top: int = 20) -> Figures: ...

    # -- the dashboard's and the metrics' reads ----------------------------------------------

    async def recent_runs(
        self, task_ids: list[str], *, per_task: int, owner: str | None
    ) -> dict[str, list[RunPoint]]:
        """The newest `per_task` runs of each task, newest first (no outputs, no steps)."""
        ...

    async def recent_starts(self, *, owner: str | None, limit: int) -> list[RunPoint]:
        """The newest started runs of a scheduled instant (`schedule`, `catchup`)."""
        ...

    async def gauges(self, now: datetime, *, owner: str | None = None) -> Gauges:
        """Queued (and due), running runs and tasks by status, counted in SQL."""
        ...

    async def next_fires(self, *, owner: str | None, limit: int) -> list[tuple[str, str, datetime]]:
        """(task id, name, next fire) of the active tasks that fire soonest."""
        ...

    # -- retention (store/retention.py) and notes on runs (store/notes.py) --------------------

    async def tasks_with_runs(self) -> list[str]:
        """Every task id that has runs, deleted tasks' included."""
        ...

    async def keep_from(self, task_id: str, keep_last: int) -> str | None:
        """The id of the task's `keep_last`-th newest finished run (it and newer ones stay), or
        None when all its finished runs stay."""
        ...

    async def prune_batch(
        self, task_id: str, cutoffs: Cutoffs, keep_from: str | None, batch: int
    ) -> int:
        """Delete up to `batch` of the task's prunable runs and their step results in one
        short transaction (never a queued or running run); returns how many went."""
        ...

    async def prunable(self, task_id: str, cutoffs: Cutoffs, keep_from: str | None) -> Prunable:
        """What `prune_batch` would remove of the task's runs, counted, nothing removed."""
        ...

    async def footprint(self) -> Footprint: ...

    async def vacuum(self) -> None:
        """Give free space back to the file system now (SQLite: a full VACUUM, which locks
        the database while it runs; PostgreSQL: a plain VACUUM of the run tables)."""
        ...

    async def note_on_run(self, run_id: str, note: str) -> bool:
        """Append a line to a run's error text (e.g. a notification not delivered)."""
        ...
