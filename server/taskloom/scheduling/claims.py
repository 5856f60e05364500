"""What one fire of a task turns into: pure planning, no I/O.

`plan_fire` is called inside the claim transaction (`store/claims.py`) with the task as the
database has it, so every process that races for the same fire plans from the same state and
exactly one of them gets to write the plan.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskloom.ids import new_id
from taskloom.runs.model import Run, RunStatus, RunTrigger
from taskloom.runs.runner import backoff_delay
from taskloom.scheduling import triggers
from taskloom.tasks.model import CronTrigger, IntervalTrigger, OnceTrigger, Task

ON_TIME_GRACE = timedelta(seconds=60)
EARLY_TOLERANCE = timedelta(milliseconds=100)
CATCHUP_BOUND = 100

NewRun = Callable[[RunTrigger, datetime, RunStatus], Run]


@dataclass
class FirePlan:
    runs: list[Run] = field(default_factory=list)
    next_fire_at: datetime | None = None
    finished: bool = False
    truncated: bool = False  # more fires were due than the catch-up bound; the oldest are left out

    @property
    def to_start(self) -> list[Run]:
        return [r for r in self.runs if r.status == RunStatus.RUNNING]


@dataclass
class _Slots:
    """The task's runs in flight, as the overlap policy sees them."""

    busy: int
    queued: int


def plan_fire(
    task: Task,
    now: datetime,
    *,
    busy: int,
    queued: int,
    new_run: NewRun,
    grace: timedelta = ON_TIME_GRACE,
    bound: int = CATCHUP_BOUND,
) -> FirePlan:
    """Runs to record for the fires due by `now`, and the task's next fire time.

    Fires at most `grace` old are on time, each under the overlap policy (a claim that runs late
    finds several). When an older one is due, no process was running then: the catch-up policy
    decides over the most recent `bound` due fires."""
    due, truncated = _due_fires(task, now, bound)
    plan = FirePlan(truncated=truncated)
    slots = _Slots(busy, queued)
    if any(now - fire > grace for fire in due):
        plan.runs = _catch_up(task, due, now, slots, new_run, grace)
    else:
        plan.runs = [_start(task, f, RunTrigger.SCHEDULE, slots, new_run) for f in due]
    plan.next_fire_at, plan.finished = _next(task, max([now, *due]))
    return plan


def _due_fires(task: Task, now: datetime, bound: int) -> tuple[list[datetime], bool]:
    if task.trigger is None or task.next_fire_at is None:
        return [], False
    start = task.next_fire_at - timedelta(microseconds=1)
    end = now + EARLY_TOLERANCE
    if task.end_at is not None:
        end = min(end, task.end_at)
    due = triggers.fires_between(
        task.trigger, start=start, end=end, tz=task.timezone, anchor=task.anchor, limit=bound + 1
    )
    return due[-bound:], len(due) > bound


def _catch_up(
    task: Task,
    due: list[datetime],
    now: datetime,
    slots: _Slots,
    new_run: NewRun,
    grace: timedelta,
) -> list[Run]:
    """Missed runs for the fires the policy leaves out; the chosen ones as one chain, oldest
    first: the first under the overlap policy, the rest queued behind it."""
    window = timedelta(seconds=task.catchup_window_s or 0)
    eligible = [f for f in due if not window or now - f <= max(window, grace)]
    chosen = {
        "skip": [f for f in due if now - f <= grace],
        "latest": eligible[-1:],
        "all": eligible,
    }[task.catchup]
    runs = [_missed(task, f, new_run, in_window=f in eligible) for f in due if f not in chosen]
    for i, fire in enumerate(chosen):
        kind = RunTrigger.SCHEDULE if now - fire <= grace else RunTrigger.CATCHUP
        if i > 0:
            runs.append(new_run(kind, fire, RunStatus.QUEUED))
        else:
            runs.append(_start(task, fire, kind, slots, new_run))
    return runs


def event_run(task: Task, now: datetime, *, busy: int, queued: int, new_run: NewRun) -> Run:
    """The run an event starts for a listening task, under its overlap policy."""
    return _start(task, now, RunTrigger.EVENT, _Slots(busy, queued), new_run)


def _start(task: Task, fire: datetime, kind: RunTrigger, slots: _Slots, new_run: NewRun) -> Run:
    """A run for this fire under the overlap policy: started, queued, or recorded as skipped."""
    if slots.busy == 0 or task.overlap == "allow":
        slots.busy += 1
        return new_run(kind, fire, RunStatus.RUNNING)
    if task.overlap == "queue" and slots.queued == 0:
        slots.queued += 1
        return new_run(kind, fire, RunStatus.QUEUED)
    run = new_run(kind, fire, RunStatus.SKIPPED)
    reason = "a run is already waiting" if task.overlap == "queue" else "the previous run"
    return run.model_copy(
        update={
            "finished_at": run.created_at,
            "error": f"Skipped: {reason} was still in progress (overlap policy "
            f"{task.overlap!r}; use 'queue' or 'allow' to run fires that overlap).",
        }
    )


def _missed(task: Task, fire: datetime, new_run: NewRun, *, in_window: bool) -> Run:
    run = new_run(RunTrigger.CATCHUP, fire, RunStatus.MISSED)
    if not in_window:
        why = f"it is older than the catch-up window ({task.catchup_window_s} s)"
    elif task.catchup == "skip":
        why = "the catch-up policy is 'skip'"
    else:
        why = "the catch-up policy 'latest' runs only the most recent missed fire"
    return run.model_copy(
        update={
            "finished_at": run.created_at,
            "error": f"Missed: no Taskloom process was running at this time, and {why}.",
        }
    )


def _next(task: Task, after: datetime) -> tuple[datetime | None, bool]:
    """The fire after `after`, and whether the task has finished (no clock fire is left)."""
    if not isinstance(task.trigger, CronTrigger | IntervalTrigger | OnceTrigger):
        return None, False
    nxt = triggers.next_fire_time(task.trigger, after=after, tz=task.timezone, anchor=task.anchor)
    if nxt is None or (task.end_at is not None and nxt > task.end_at):
        return None, True
    return nxt, False


def retry_run(task: Task, run: Run, now: datetime) -> Run | None:
    """The next attempt of a failed or interrupted run, queued after a backoff, if the task's
    retry policy has attempts left."""
    if run.status not in (RunStatus.FAILED, RunStatus.INTERRUPTED):
        return None
    if run.attempt >= task.retry.attempts:
        return None
    delay = backoff_delay(task.retry, run.attempt)
    return Run(
        id=new_id("run", now),
        task_id=task.id,
        status=RunStatus.QUEUED,
        trigger=RunTrigger.RETRY,
        fire_time=run.fire_time,
        attempt=run.attempt + 1,
        created_at=now,
        not_before=now + timedelta(seconds=delay),
        event=run.event,
    )
