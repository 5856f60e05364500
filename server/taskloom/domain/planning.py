"""What one fire of a task turns into: pure planning, no I/O.

`plan_fire` is called inside the claim transaction (`store/claims.py`) with the task as the
database has it, so every process that races for the same fire plans from the same state and
exactly one of them gets to write the plan.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskloom.domain import triggers
from taskloom.domain.runs import Run, RunCause, RunStatus
from taskloom.domain.tasks import CronTrigger, IntervalTrigger, OnceTrigger, Task, TaskStatus
from taskloom.ids import new_id

# A fire claimed at most this late is on time (the timer and the claim take a moment); an older
# one was missed, and the catch-up policy decides about it. A catch-up window shorter than this
# shortens it too.
ON_TIME_GRACE = timedelta(seconds=5)
EARLY_TOLERANCE = timedelta(milliseconds=100)
CATCHUP_BOUND = 100
# Fires beyond the catch-up bound are counted for their summary row up to this many (a cron is
# counted by walking it; an interval by arithmetic, whatever the number).
COUNT_CAP = 10_000
NO_PROCESS = "no Taskloom process was running at this time"

NewRun = Callable[[RunCause, datetime, RunStatus], Run]
# Why a fire was not claimed at its time when something is known (e.g. the database was
# unreachable then); None: no process was running.
LateReason = Callable[[datetime], str | None]


def _no_known_cause(_: datetime) -> str | None:
    return None


@dataclass
class FirePlan:
    runs: list[Run] = field(default_factory=list)
    next_fire_at: datetime | None = None
    finished: bool = False
    # more fires were due than the catch-up bound: the oldest are accounted for by one summary
    # row (status missed, output.missed_fires = {count, first, last}) instead of a row each
    truncated: bool = False

    @property
    def to_start(self) -> list[Run]:
        return [r for r in self.runs if r.status == RunStatus.RUNNING]


@dataclass
class _Slots:
    """The task's runs in flight, as the overlap policy sees them."""

    busy: int
    queued: int


@dataclass(frozen=True)
class _Due:
    """The due fires a plan decides about, and the older ones beyond the catch-up bound."""

    fires: list[datetime]
    omitted_first: datetime | None = None
    omitted_last: datetime | None = None


def plan_fire(
    task: Task,
    now: datetime,
    *,
    busy: int,
    queued: int,
    new_run: NewRun,
    grace: timedelta = ON_TIME_GRACE,
    bound: int = CATCHUP_BOUND,
    why_late: LateReason = _no_known_cause,
) -> FirePlan:
    """Runs to record for the fires due by `now`, and the task's next fire time. Every due fire
    gets a row (run, queued, skipped or missed with the reason), or, beyond the catch-up bound,
    is counted in one summary row.

    Fires at most `grace` old are on time, each under the overlap policy (a claim that runs late
    finds several). When an older one is due, it was missed (no process was running, or
    `why_late` knows why): the catch-up policy decides over the most recent `bound` due fires."""
    due = _due_fires(task, now, bound)
    grace = _grace(task, grace)
    plan = FirePlan(truncated=due.omitted_first is not None)
    if due.omitted_first is not None and due.omitted_last is not None:
        plan.runs.append(_beyond_bound(task, due, new_run, bound, why_late))
    slots = _Slots(busy, queued)
    if any(now - fire > grace for fire in due.fires):
        plan.runs += _catch_up(task, due.fires, now, slots, new_run, grace, why_late)
    else:
        plan.runs += [
            _start(task, f, RunCause.SCHEDULE, slots, new_run, why_late(f)) for f in due.fires
        ]
    plan.next_fire_at, plan.finished = _next(task, max([now, *due.fires]))
    return plan


def _grace(task: Task, grace: timedelta) -> timedelta:
    if task.catchup_window_s:
        return min(grace, timedelta(seconds=task.catchup_window_s))
    return grace


def _due_fires(task: Task, now: datetime, bound: int, early: timedelta = EARLY_TOLERANCE) -> _Due:
    if task.trigger is None or task.next_fire_at is None:
        return _Due([])
    start = task.next_fire_at - timedelta(microseconds=1)
    end = now + early
    if task.end_at is not None:
        end = min(end, task.end_at)
    due = triggers.fires_between(
        task.trigger, start=start, end=end, tz=task.timezone, anchor=task.anchor, limit=bound + 1
    )
    if len(due) <= bound:
        return _Due(due)
    first = triggers.next_fire_time(task.trigger, after=start, tz=task.timezone, anchor=task.anchor)
    return _Due(due[1:], omitted_first=first, omitted_last=due[0])


def _beyond_bound(task: Task, due: _Due, new_run: NewRun, bound: int, why_late: LateReason) -> Run:
    """One missed row for every fire older than the bound: the count and the range, so each due
    fire is either a row of its own or inside this row's [first, last]."""
    first, last = due.omitted_first, due.omitted_last
    assert first is not None
    assert last is not None
    count = triggers.count_fires(
        task.trigger,
        start=first - timedelta(microseconds=1),
        end=last,
        tz=task.timezone,
        anchor=task.anchor,
        cap=COUNT_CAP,
    )
    run = new_run(RunCause.CATCHUP, first, RunStatus.MISSED)
    shown = f"{count} fires" if count is not None else f"more than {COUNT_CAP} fires"
    return run.model_copy(
        update={
            "finished_at": run.created_at,
            "output": {
                "missed_fires": {
                    "count": count,
                    "first": first.isoformat(),
                    "last": last.isoformat(),
                }
            },
            "error": f"Missed: {shown} from {first.isoformat()} to {last.isoformat()} "
            f"({why_late(last) or NO_PROCESS}); they are older than the {bound} most recent "
            "due fires the catch-up policy considers, so this one row records them all.",
        }
    )


def _catch_up(
    task: Task,
    due: list[datetime],
    now: datetime,
    slots: _Slots,
    new_run: NewRun,
    grace: timedelta,
    why_late: LateReason,
) -> list[Run]:
    """Missed runs for the fires the policy leaves out; the chosen ones as one chain, oldest
    first: the first under the overlap policy, the rest queued behind it."""
    window = timedelta(seconds=task.catchup_window_s or 0)
    on_time = [f for f in due if now - f <= grace]
    eligible = [f for f in due if not window or now - f <= window or f in on_time]
    chosen = {"skip": on_time, "latest": eligible[-1:], "all": eligible}[task.catchup]
    runs = [
        _missed(task, f, new_run, in_window=f in eligible, why=why_late(f))
        for f in due
        if f not in chosen
    ]
    for i, fire in enumerate(chosen):
        cause = RunCause.SCHEDULE if fire in on_time else RunCause.CATCHUP
        if i > 0:
            runs.append(new_run(cause, fire, RunStatus.QUEUED))
        else:
            runs.append(_start(task, fire, cause, slots, new_run, why_late(fire)))
    return runs


def event_run(task: Task, now: datetime, *, busy: int, queued: int, new_run: NewRun) -> Run:
    """The run an event starts for a listening task, under its overlap policy."""
    return _start(task, now, RunCause.EVENT, _Slots(busy, queued), new_run, None)


def overlap_status(task: Task, busy: int, queued: int) -> RunStatus | None:
    """What the task's overlap policy makes of a new run while `busy` of its runs go and
    `queued` wait: start it (running), queue it, or None: not now (a fire is recorded skipped,
    a manual start refused). The one place the policy is decided, for every cause."""
    if busy == 0 or task.overlap == "allow":
        return RunStatus.RUNNING
    if task.overlap == "queue" and queued == 0:
        return RunStatus.QUEUED
    return None


def _start(
    task: Task,
    fire: datetime,
    cause: RunCause,
    slots: _Slots,
    new_run: NewRun,
    late: str | None,
) -> Run:
    """A run for this fire under the overlap policy: started, queued, or recorded as skipped
    (as missed, with the cause, when the fire could not be claimed at its time: the overlap is
    then an effect of that cause, not the reason)."""
    status = overlap_status(task, slots.busy, slots.queued)
    if status == RunStatus.RUNNING:
        slots.busy += 1
    if status == RunStatus.QUEUED:
        slots.queued += 1
    if status is not None:
        return new_run(cause, fire, status)
    if late is not None:
        return _finished(new_run(cause, fire, RunStatus.MISSED), f"Missed: {late}.")
    run = new_run(cause, fire, RunStatus.SKIPPED)
    reason = "a run is already waiting" if task.overlap == "queue" else "the previous run"
    return _finished(
        run,
        f"Skipped: {reason} was still in progress (overlap policy "
        f"{task.overlap!r}; use 'queue' or 'allow' to run fires that overlap).",
    )


def _missed(
    task: Task, fire: datetime, new_run: NewRun, *, in_window: bool, why: str | None
) -> Run:
    run = new_run(RunCause.CATCHUP, fire, RunStatus.MISSED)
    if not in_window:
        policy = f"it is older than the catch-up window ({task.catchup_window_s} s)"
    elif task.catchup == "skip":
        policy = "the catch-up policy is 'skip'"
    else:
        policy = "the catch-up policy 'latest' runs only the most recent missed fire"
    return _finished(run, f"Missed: {why or NO_PROCESS}, and {policy}.")


def _finished(run: Run, error: str) -> Run:
    return run.model_copy(update={"finished_at": run.created_at, "error": error})


def _next(task: Task, after: datetime) -> tuple[datetime | None, bool]:
    """The fire after `after`, and whether the task has finished (no clock fire is left)."""
    if not isinstance(task.trigger, CronTrigger | IntervalTrigger | OnceTrigger):
        return None, False
    nxt = triggers.next_fire_time(task.trigger, after=after, tz=task.timezone, anchor=task.anchor)
    if nxt is None or (task.end_at is not None and nxt > task.end_at):
        return None, True
    return nxt, False


def unclaimed_fires(
    task: Task, now: datetime, *, why: str, bound: int = CATCHUP_BOUND
) -> list[Run]:
    """Missed runs for the fires of `task` (as stored) due by `now` that no process claimed,
    for an edit or a pause that is about to move the task's next fire past them: no claim
    would ever see them afterwards. `why` says what happened, e.g. "no Taskloom process had
    claimed it when the task was paused at ..."; beyond `bound`, one summary row as in
    `plan_fire`."""
    if task.status != TaskStatus.ACTIVE:
        return []
    due = _due_fires(task, now, bound, early=timedelta(0))

    def new_run(kind: RunCause, fire: datetime, status: RunStatus) -> Run:
        run = Run(id=new_id("run", now), task_id=task.id, status=status, cause=kind,
                  fire_time=fire, created_at=now)  # fmt: skip
        return _finished(run, f"Missed: {why}.")

    runs = [new_run(RunCause.CATCHUP, fire, RunStatus.MISSED) for fire in due.fires]
    if due.omitted_first is not None:
        runs.insert(0, _beyond_bound(task, due, new_run, bound, lambda _: why))
    return runs
