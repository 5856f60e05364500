"""`plan_fire` as tables: a task as the database has it, a fixed `now`, the runs and next fire."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskloom.domain import triggers
from taskloom.domain.planning import CATCHUP_BOUND, FirePlan, plan_fire, unclaimed_fires
from taskloom.domain.retry import retry_run
from taskloom.domain.runs import Run, RunCause, RunStatus
from taskloom.domain.tasks import CronTrigger, Task

DAY = datetime(2026, 3, 2, tzinfo=UTC)
HOURLY = {"every": "1h", "start_at": DAY.isoformat()}


def at(clock: str) -> datetime:
    """'12:00' or '12:00:05' on the test day, UTC."""
    parts = [int(p) for p in clock.split(":")]
    return DAY.replace(hour=parts[0], minute=parts[1], second=parts[2] if len(parts) > 2 else 0)


def make_task(next_fire: str = "12:00", **fields: Any) -> Task:
    values: dict[str, Any] = {
        "id": "tsk_1",
        "name": "t",
        "steps": [{"id": "pause", "tool": "wait", "args": {"seconds": 0}}],
        "trigger": HOURLY,
        "timezone": "UTC",
        "created_at": DAY,
        "updated_at": DAY,
        "next_fire_at": at(next_fire),
        **fields,
    }
    return Task.model_validate(values)


def new_run(kind: RunCause, fire: datetime, status: RunStatus) -> Run:
    return Run(
        id=f"run_{fire:%H%M%S}",
        task_id="tsk_1",
        status=status,
        cause=kind,
        fire_time=fire,
        created_at=DAY,
    )


def plan(task: Task, now: str, busy: int = 0, queued: int = 0, **kw: Any) -> FirePlan:
    return plan_fire(task, at(now), busy=busy, queued=queued, new_run=new_run, **kw)


def shown(result: FirePlan) -> tuple[list[str], str | None, bool]:
    """Each run as 'HH:MM:SS status trigger', the next fire as 'HH:MM:SS', finished."""
    runs = [f"{r.fire_time:%H:%M:%S} {r.status.value} {r.cause.value}" for r in result.runs]
    nxt = f"{result.next_fire_at:%H:%M:%S}" if result.next_fire_at else None
    return runs, nxt, result.finished


AFTER_DOWNTIME = {"next_fire_at": at("09:00")}
EVERY_10S = {
    "trigger": {"every": "10s", "start_at": DAY.isoformat()},
    "next_fire_at": at("11:59:20"),
}

CASES: list[tuple[str, dict[str, Any], str, dict[str, Any], list[str], str | None, bool]] = [
    # id, task fields, now, plan kwargs, runs, next fire, finished
    ("on-time", {}, "12:00:00", {}, ["12:00:00 running schedule"], "13:00:00", False),
    ("late-claim", {}, "12:00:04", {}, ["12:00:00 running schedule"], "13:00:00", False),
    (
        "late-claim-finds-two-fires-on-time",
        {"trigger": {"every": "2s", "start_at": DAY.isoformat()}, "next_fire_at": at("11:59:58")},
        "12:00:01",
        {},
        ["11:59:58 running schedule", "12:00:00 skipped schedule"],
        "12:00:02",
        False,
    ),
    (
        "a-fire-older-than-the-grace-was-missed",
        {"catchup": "skip"},
        "12:00:30",
        {},
        ["12:00:00 missed catchup"],
        "13:00:00",
        False,
    ),
    (
        "a-catch-up-window-shorter-than-the-grace-is-kept",
        {**EVERY_10S, "catchup": "all", "catchup_window_s": 15},
        "12:00:00",
        {},
        [
            *(f"11:59:{s}0 missed catchup" for s in (2, 3, 4)),
            "11:59:50 running catchup",
            "12:00:00 queued schedule",
        ],
        "12:00:10",
        False,
    ),
    ("not-due-yet", {}, "11:59:00", {}, [], "12:00:00", False),
    (
        "catchup-skip",
        {**AFTER_DOWNTIME, "catchup": "skip"},
        "12:30:00",
        {},
        [f"{h}:00:00 missed catchup" for h in ("09", "10", "11", "12")],
        "13:00:00",
        False,
    ),
    (
        "catchup-latest",
        {**AFTER_DOWNTIME, "catchup": "latest"},
        "12:30:00",
        {},
        [*(f"{h}:00:00 missed catchup" for h in ("09", "10", "11")), "12:00:00 running catchup"],
        "13:00:00",
        False,
    ),
    (
        "catchup-all",
        {**AFTER_DOWNTIME, "catchup": "all"},
        "12:30:00",
        {},
        ["09:00:00 running catchup", *(f"{h}:00:00 queued catchup" for h in ("10", "11", "12"))],
        "13:00:00",
        False,
    ),
    (
        "catchup-all-within-window",
        {**AFTER_DOWNTIME, "catchup": "all", "catchup_window_s": 2 * 3600},
        "12:30:00",
        {},
        [
            "09:00:00 missed catchup",
            "10:00:00 missed catchup",
            "11:00:00 running catchup",
            "12:00:00 queued catchup",
        ],
        "13:00:00",
        False,
    ),
    (
        "catchup-latest-outside-window",
        {**AFTER_DOWNTIME, "catchup": "latest", "catchup_window_s": 600},
        "12:30:00",
        {},
        [f"{h}:00:00 missed catchup" for h in ("09", "10", "11", "12")],
        "13:00:00",
        False,
    ),
    (
        "catchup-skip-runs-the-fire-that-is-on-time",
        {"catchup": "skip", "next_fire_at": at("11:00")},
        "12:00:03",
        {},
        ["11:00:00 missed catchup", "12:00:00 running schedule"],
        "13:00:00",
        False,
    ),
    (
        "catchup-all-up-to-the-bound",
        {**AFTER_DOWNTIME, "catchup": "all"},
        "12:30:00",
        {"bound": 2},
        ["09:00:00 missed catchup", "11:00:00 running catchup", "12:00:00 queued catchup"],
        "13:00:00",
        False,
    ),
    ("overlap-skip", {}, "12:00:00", {"busy": 1}, ["12:00:00 skipped schedule"], "13:00:00", False),
    (
        "overlap-queue",
        {"overlap": "queue"},
        "12:00:00",
        {"busy": 1},
        ["12:00:00 queued schedule"],
        "13:00:00",
        False,
    ),
    (
        "overlap-queue-full",
        {"overlap": "queue"},
        "12:00:00",
        {"busy": 1, "queued": 1},
        ["12:00:00 skipped schedule"],
        "13:00:00",
        False,
    ),
    (
        "overlap-allow",
        {"overlap": "allow"},
        "12:00:00",
        {"busy": 3},
        ["12:00:00 running schedule"],
        "13:00:00",
        False,
    ),
    (
        "once-fires-and-finishes",
        {"trigger": {"at": at("12:00").isoformat()}},
        "12:00:01",
        {},
        ["12:00:00 running schedule"],
        None,
        True,
    ),
    (
        "once-not-due-stays",
        {"trigger": {"at": at("12:00").isoformat()}},
        "11:59:00",
        {},
        [],
        "12:00:00",
        False,
    ),
    (
        "end-at-after-the-last-fire",
        {"end_at": at("12:30")},
        "12:00:00",
        {},
        ["12:00:00 running schedule"],
        None,
        True,
    ),
    ("end-at-before-the-fire", {"end_at": at("11:30")}, "12:00:00", {}, [], None, True),
    (
        "cron-in-its-timezone",
        {"trigger": {"cron": "0 13 * * *", "timezone": "Europe/Berlin"}},
        "12:00:00",
        {},
        ["12:00:00 running schedule"],
        "12:00:00",
        False,
    ),
]


@pytest.mark.parametrize(
    ("fields", "now", "kwargs", "runs", "next_fire", "finished"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_plan_fire(
    fields: dict[str, Any],
    now: str,
    kwargs: dict[str, Any],
    runs: list[str],
    next_fire: str | None,
    finished: bool,
) -> None:
    """plan_fire records the due fires per the task's policies and names the next fire."""
    assert shown(plan(make_task(**fields), now, **kwargs)) == (runs, next_fire, finished)


def test_truncated_catch_up_is_flagged() -> None:
    """A catch-up with more due fires than the bound says that older fires were left out."""
    result = plan(make_task("09:00", catchup="all"), "12:30:00", bound=2)
    assert result.truncated


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        pytest.param({"catchup": "skip"}, "the catch-up policy is 'skip'", id="skip"),
        pytest.param({"catchup": "latest"}, "runs only the most recent", id="latest"),
        pytest.param(
            {"catchup": "all", "catchup_window_s": 600}, "older than the catch-up window", id="win"
        ),
    ],
)
def test_missed_run_says_why(fields: dict[str, Any], reason: str) -> None:
    """A missed run's error names the reason the catch-up policy left it out."""
    first = plan(make_task("09:00", **fields), "12:30:00").runs[0]
    assert (first.status, reason in (first.error or "")) == (RunStatus.MISSED, True)


def test_skipped_run_is_finished_with_the_reason() -> None:
    """A fire skipped by the overlap policy is recorded finished, with the policy named."""
    run = plan(make_task("12:00"), "12:00:00", busy=1).runs[0]
    assert run.finished_at is not None
    assert "overlap policy 'skip'" in (run.error or "")


@pytest.mark.parametrize(
    ("status", "attempt", "attempts", "retried"),
    [
        pytest.param(RunStatus.INTERRUPTED, 1, 2, True, id="interrupted-with-attempts-left"),
        pytest.param(RunStatus.FAILED, 1, 2, True, id="failed-with-attempts-left"),
        pytest.param(RunStatus.FAILED, 2, 2, False, id="no-attempts-left"),
        pytest.param(RunStatus.SUCCEEDED, 1, 3, False, id="succeeded"),
        pytest.param(RunStatus.SKIPPED, 1, 3, False, id="skipped"),
    ],
)
def test_retry_run(status: RunStatus, attempt: int, attempts: int, retried: bool) -> None:
    """A failed or interrupted run with attempts left gets a queued retry of the same fire."""
    task = make_task("12:00", retry={"attempts": attempts, "backoff_s": 10})
    run = new_run(RunCause.SCHEDULE, at("12:00"), status).model_copy(update={"attempt": attempt})
    again = retry_run(task, run, at("12:05"))
    assert (again is not None) == retried
    if again is not None:
        assert (again.status, again.cause, again.fire_time) == (
            RunStatus.QUEUED,
            RunCause.RETRY,
            at("12:00"),
        )
        assert again.attempt == attempt + 1
        assert at("12:05:05") <= (again.not_before or at("00:00")) <= at("12:05:10")


def accounted(result: FirePlan) -> list[datetime]:
    """Every fire instant the plan's rows account for: their own, and the ranges of summaries."""
    fires: list[datetime] = []
    for run in result.runs:
        summary = (run.output or {}).get("missed_fires") if isinstance(run.output, dict) else None
        if summary is None:
            assert run.fire_time is not None
            fires.append(run.fire_time)
            continue
        first, last = (datetime.fromisoformat(summary[k]) for k in ("first", "last"))
        span = int((last - first).total_seconds())
        assert summary["count"] == span + 1  # a one-second task: one fire a second
        fires += [first + timedelta(seconds=k) for k in range(span + 1)]
    return sorted(fires)


@pytest.mark.parametrize("policy", ["skip", "latest", "all"])
def test_every_fire_beyond_the_bound_is_accounted_for(policy: str) -> None:
    """After 124 s of downtime of a one-second task, each due fire has a row or is counted in
    the one summary row of the fires older than the catch-up bound."""
    every_second = {"every": "1s", "start_at": DAY.isoformat()}
    task = make_task("11:57:56", trigger=every_second, catchup=policy)
    result = plan(task, "12:00:00")
    due = [at("11:57:56") + timedelta(seconds=k) for k in range(125)]
    assert accounted(result) == due
    assert len(result.runs) == CATCHUP_BOUND + 1


def test_the_summary_row_names_the_count_and_the_range() -> None:
    """The fires left out by the bound are one missed row with their count, first and last."""
    summary = plan(make_task("09:00", catchup="all"), "12:30:00", bound=2).runs[0]
    assert (summary.status, summary.fire_time, summary.output) == (
        RunStatus.MISSED,
        at("09:00"),
        {
            "missed_fires": {
                "count": 2,
                "first": "2026-03-02T09:00:00+00:00",
                "last": "2026-03-02T10:00:00+00:00",
            }
        },
    )
    assert "2 fires from" in (summary.error or "")


def test_a_cron_beyond_the_bound_is_counted() -> None:
    """A minutely cron's fires beyond the bound are counted in its summary row."""
    task = make_task("09:00", trigger={"cron": "* * * * *"}, catchup="skip")
    summary = plan(task, "12:30:00", bound=2).runs[0].output["missed_fires"]
    assert (summary["count"], summary["last"]) == (209, "2026-03-02T12:28:00+00:00")


@pytest.mark.parametrize(("cap", "count"), [(1000, 209), (100, None)])
def test_count_fires_gives_up_past_its_cap(cap: int, count: int | None) -> None:
    """Counting a cron's fires walks at most `cap` of them; past it the count is unknown."""
    found = triggers.count_fires(
        CronTrigger(cron="* * * * *"),
        start=at("08:59:59"),
        end=at("12:28"),
        tz="UTC",
        anchor=DAY,
        cap=cap,
    )
    assert found == count


OUTAGE = "the database was unreachable from 11:59 to 12:01"


def outage(fire: datetime) -> str | None:
    return OUTAGE if at("11:59") <= fire <= at("12:01") else None


def test_a_fire_late_because_of_an_outage_is_missed_with_that_reason() -> None:
    """A fire skipped for an overlap that the outage caused is recorded missed, saying why."""
    run = plan(make_task("12:00"), "12:00:01", busy=1, why_late=outage).runs[0]
    assert (run.status, run.error) == (RunStatus.MISSED, f"Missed: {OUTAGE}.")


def test_a_stale_fire_of_an_outage_names_the_outage() -> None:
    """A fire left out by the catch-up policy after an outage names the outage, not downtime."""
    run = plan(make_task("12:00", catchup="skip"), "12:01:00", why_late=outage).runs[0]
    assert run.status == RunStatus.MISSED
    assert (run.error or "").startswith(f"Missed: {OUTAGE}, and the catch-up policy is 'skip'")


def test_unclaimed_fires_left_behind_by_a_pause_are_each_accounted_for() -> None:
    """The unclaimed fires due by a pause, even beyond the catch-up bound, each have a missed
    row or lie in the one summary row, and every row says why."""
    every_second = {"every": "1s", "start_at": DAY.isoformat()}
    task = make_task("11:57:56", trigger=every_second)
    runs = unclaimed_fires(task, at("12:00:00"), why="the task was paused")
    due = [at("11:57:56") + timedelta(seconds=k) for k in range(125)]
    assert accounted(FirePlan(runs=runs)) == due
    assert {r.status for r in runs} == {RunStatus.MISSED}
    assert all("the task was paused" in (r.error or "") for r in runs)


def test_a_paused_task_has_no_unclaimed_fires() -> None:
    """A task that is not active leaves no fire behind."""
    task = make_task("09:00", status="paused")
    assert unclaimed_fires(task, at("12:00:00"), why="edited") == []
