"""Schedule math as tables: cron, intervals, once, DST, leap days, catch-up windows."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskloom.domain.tasks import CronTrigger, EventTrigger, IntervalTrigger, OnceTrigger, Trigger
from taskloom.domain.triggers import (
    fires_between,
    next_fire_time,
    next_fire_times,
    parse_duration,
    trigger_timezone,
    validate_trigger,
)
from taskloom.errors import InvalidInput

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def at(text: str) -> datetime:
    """An aware instant from ISO 8601 with an offset ('Z' for UTC)."""
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value


def shown(fires: list[datetime]) -> list[str]:
    assert all(fire.tzinfo is UTC for fire in fires)
    return [f"{fire:%Y-%m-%dT%H:%M:%S}Z" for fire in fires]


def cron_fires(cron: str, tz: str, after: str, count: int) -> list[str]:
    trigger = CronTrigger(cron=cron)
    return shown(next_fire_times(trigger, after=at(after), tz=tz, anchor=ANCHOR, count=count))


def interval(every: str | float, **extra: Any) -> IntervalTrigger:
    return IntervalTrigger.model_validate({"every": every, **extra})


def once(when: str, timezone: str | None = None) -> OnceTrigger:
    return OnceTrigger.model_validate({"at": when, "timezone": timezone})


# -- cron syntax -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("*/15 * * * *", "2026-06-05T10:07:00Z", ["2026-06-05T10:15:00Z", "2026-06-05T10:30:00Z"]),
        ("0 9,17 * * *", "2026-06-05T10:00:00Z", ["2026-06-05T17:00:00Z", "2026-06-06T09:00:00Z"]),
        ("5-7 0 * * *", "2026-06-05T10:00:00Z", ["2026-06-06T00:05:00Z", "2026-06-06T00:06:00Z"]),
        ("10/20 0 * * *", "2026-06-05T10:00:00Z", ["2026-06-06T00:10:00Z", "2026-06-06T00:30:00Z"]),
        (
            "0 0 1 jan,JUL *",
            "2026-06-05T10:00:00Z",
            ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"],
        ),
        ("0 0 31 * *", "2026-03-31T10:00:00Z", ["2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z"]),
        ("@hourly", "2026-06-05T10:07:00Z", ["2026-06-05T11:00:00Z", "2026-06-05T12:00:00Z"]),
        ("@daily", "2026-12-31T10:00:00Z", ["2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z"]),
        ("@weekly", "2026-06-05T10:00:00Z", ["2026-06-07T00:00:00Z", "2026-06-14T00:00:00Z"]),
        ("@yearly", "2026-06-05T10:00:00Z", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
    ],
)
def test_cron_fires_at_the_listed_wall_times(cron: str, after: str, expected: list[str]) -> None:
    """A cron fires at each wall time its lists, ranges, steps, names and macros name."""
    assert cron_fires(cron, "UTC", after, 2) == expected


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        (
            "*/20 * * * * *",
            "2026-06-05T10:00:00Z",
            ["2026-06-05T10:00:20Z", "2026-06-05T10:00:40Z"],
        ),
        ("30 0 9 * * *", "2026-06-05T10:00:00Z", ["2026-06-06T09:00:30Z", "2026-06-07T09:00:30Z"]),
        (
            "0,30 * * * * *",
            "2026-06-05T10:00:45Z",
            ["2026-06-05T10:01:00Z", "2026-06-05T10:01:30Z"],
        ),
    ],
)
def test_six_fields_start_with_seconds(cron: str, after: str, expected: list[str]) -> None:
    """A 6-field cron reads its first field as seconds."""
    assert cron_fires(cron, "UTC", after, 2) == expected


@pytest.mark.parametrize(
    ("cron", "expected_days"),
    [
        ("0 9 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("0 9 * * MON-FRI", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("0 0 * * 0", ["Sun"]),
        ("0 0 * * 7", ["Sun"]),
        ("0 0 * * sun", ["Sun"]),
        ("0 0 * * 6,0", ["Sat", "Sun"]),
        ("0 0 * * 5-7", ["Fri", "Sat", "Sun"]),
        ("0 0 * * fri-sun", ["Fri", "Sat", "Sun"]),
        ("0 0 * * */2", ["Tue", "Thu", "Sat", "Sun"]),
    ],
)
def test_weekday_numbers_follow_crontab(cron: str, expected_days: list[str]) -> None:
    """Day-of-week counts from Sunday as crontab does: 0 and 7 are Sunday, 1-5 Monday to Friday."""
    fires = next_fire_times(
        CronTrigger(cron=cron), after=at("2026-06-01T12:00:00Z"), tz="UTC", anchor=ANCHOR, count=7
    )
    days = {fire.strftime("%a") for fire in fires if fire < at("2026-06-08T12:00:00Z")}
    assert sorted(days) == sorted(expected_days)


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        # 2026-06-01 is a Monday: day 1 matches, then every Monday matches.
        ("0 0 1 * mon", ["2026-06-01", "2026-06-08", "2026-06-15", "2026-06-22", "2026-06-29"]),
        ("0 0 13 * 5", ["2026-06-05", "2026-06-12", "2026-06-13", "2026-06-19", "2026-06-26"]),
    ],
)
def test_both_day_fields_restricted_match_either(cron: str, expected: list[str]) -> None:
    """When day-of-month and day-of-week are both restricted, a day matching either fires."""
    fires = next_fire_times(
        CronTrigger(cron=cron), after=at("2026-05-31T12:00:00Z"), tz="UTC", anchor=ANCHOR, count=5
    )
    assert [f"{fire:%Y-%m-%d}" for fire in fires] == expected


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("0 0 * * mon", ["2026-06-01", "2026-06-08", "2026-06-15"]),
        ("0 0 */2 * mon", ["2026-06-01", "2026-06-15", "2026-06-29"]),
        ("0 0 1-7 * ?", ["2026-06-01", "2026-06-02", "2026-06-03"]),
    ],
)
def test_a_star_day_field_requires_both(cron: str, expected: list[str]) -> None:
    """When either day field starts with '*' (or '?'), a day must match both, as in Vixie cron."""
    fires = next_fire_times(
        CronTrigger(cron=cron), after=at("2026-05-31T12:00:00Z"), tz="UTC", anchor=ANCHOR, count=3
    )
    assert [f"{fire:%Y-%m-%d}" for fire in fires] == expected


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("2026-01-01T00:00:00Z", ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"]),
        ("2028-02-29T12:00:00Z", ["2032-02-29T12:00:00Z", "2036-02-29T12:00:00Z"]),
        ("2096-03-01T00:00:00Z", ["2104-02-29T12:00:00Z", "2108-02-29T12:00:00Z"]),
    ],
)
def test_leap_day_cron_waits_for_a_leap_year(after: str, expected: list[str]) -> None:
    """A cron on 29 February fires only in leap years (2100 is not one)."""
    assert cron_fires("0 12 29 2 *", "UTC", after, 2) == expected


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("2026-06-05T09:00:00Z", "2026-06-05T09:15:00Z"),
        ("2026-06-05T08:59:59.999999Z", "2026-06-05T09:00:00Z"),
        ("2026-06-05T09:00:00.000001Z", "2026-06-05T09:15:00Z"),
    ],
)
def test_next_fire_is_strictly_after(after: str, expected: str) -> None:
    """The next fire is the first listed instant strictly after `after`."""
    assert cron_fires("*/15 * * * *", "UTC", after, 1) == [expected]


@pytest.mark.parametrize(
    ("trigger", "tz", "expected"),
    [
        (CronTrigger(cron="0 9 * * *", timezone="Europe/Berlin"), "UTC", "2026-06-06T07:00:00Z"),
        (CronTrigger(cron="0 9 * * *"), "America/New_York", "2026-06-05T13:00:00Z"),
        (
            CronTrigger(cron="0 9 * * *", timezone="Asia/Kolkata"),
            "Europe/Berlin",
            "2026-06-06T03:30:00Z",
        ),
        (CronTrigger(cron="0 9 * * *", timezone="Australia/Sydney"), "UTC", "2026-06-05T23:00:00Z"),
    ],
)
def test_cron_runs_on_the_trigger_timezone_clock(trigger: Trigger, tz: str, expected: str) -> None:
    """A cron reads wall times in the trigger's timezone, else in the timezone passed in."""
    fire = next_fire_time(trigger, after=at("2026-06-05T12:00:00Z"), tz=tz, anchor=ANCHOR)
    assert fire is not None
    assert shown([fire]) == [expected]


# -- DST ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "after", "expected"),
    [
        # Berlin repeats 02:00-03:00 on 2026-10-25 and Sydney on 2026-04-05, not 01:30.
        ("Europe/Berlin", "2026-10-24T12:00:00Z", ["2026-10-24T23:30:00Z", "2026-10-26T00:30:00Z"]),
        (
            "Australia/Sydney",
            "2026-04-04T00:00:00Z",
            ["2026-04-04T14:30:00Z", "2026-04-05T15:30:00Z"],
        ),
    ],
)
def test_fall_back_leaves_unrepeated_times_alone(tz: str, after: str, expected: list[str]) -> None:
    """Across a fall-back a daily cron on an unrepeated wall time fires once a day at it."""
    assert cron_fires("30 1 * * *", tz, after, 2) == expected


@pytest.mark.parametrize(
    ("cron", "tz", "after", "expected"),
    [
        # 01:30 happens twice on 2026-11-01 in New York: 05:30 UTC (EDT), then 06:30 UTC (EST).
        (
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00Z",
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        ),
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-24T12:00:00Z",
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
        ),
        (
            "30 2 * * *",
            "Australia/Sydney",
            "2026-04-04T00:00:00Z",
            ["2026-04-04T15:30:00Z", "2026-04-05T16:30:00Z"],
        ),
    ],
)
def test_repeated_wall_time_fires_once_at_its_first_occurrence(
    cron: str, tz: str, after: str, expected: list[str]
) -> None:
    """A wall time the fall-back repeats fires once, at its first occurrence."""
    assert cron_fires(cron, tz, after, 2) == expected


@pytest.mark.parametrize(
    ("tz", "after", "expected"),
    [
        (
            "America/New_York",
            "2026-11-01T04:50:00Z",
            ["05:00", "05:15", "05:30", "05:45", "07:00", "07:15"],
        ),
        (
            "Europe/Berlin",
            "2026-10-24T23:50:00Z",
            ["00:00", "00:15", "00:30", "00:45", "02:00", "02:15"],
        ),
    ],
)
def test_repeated_hour_fires_each_listed_time_once(
    tz: str, after: str, expected: list[str]
) -> None:
    """In the repeated hour `*/15` fires 4 times, not 8: the second pass is skipped."""
    fires = next_fire_times(
        CronTrigger(cron="*/15 * * * *"), after=at(after), tz=tz, anchor=ANCHOR, count=6
    )
    assert [f"{fire:%H:%M}" for fire in fires] == expected


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("2026-11-01T05:45:00Z", "2026-11-01T07:00:00Z"),
        ("2026-11-01T06:20:00Z", "2026-11-01T07:00:00Z"),
    ],
)
def test_after_inside_the_second_pass_waits_for_the_next_new_time(
    after: str, expected: str
) -> None:
    """From inside the repeated hour's second pass, the next fire is the first unrepeated time."""
    assert cron_fires("*/15 * * * *", "America/New_York", after, 1) == [expected]


@pytest.mark.parametrize(
    ("tz", "after", "expected"),
    [
        ("Europe/Berlin", "2026-03-28T12:00:00Z", ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]),
        (
            "America/New_York",
            "2026-03-07T12:00:00Z",
            ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        ),
        (
            "Australia/Sydney",
            "2026-10-03T00:00:00Z",
            ["2026-10-03T16:00:00Z", "2026-10-04T15:30:00Z"],
        ),
    ],
)
def test_skipped_wall_time_fires_at_the_end_of_the_gap(
    tz: str, after: str, expected: list[str]
) -> None:
    """A wall time the spring-forward skips fires at the first instant after the gap."""
    assert cron_fires("30 2 * * *", tz, after, 2) == expected


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("0 2,3 * * *", ["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"]),
        ("0,30 2 * * *", ["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"]),
        ("*/30 * * * *", ["2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"]),
    ],
)
def test_gap_fires_once(cron: str, expected: list[str]) -> None:
    """Every listed time in or at the end of the gap shares one fire at the end of the gap."""
    fires = cron_fires(cron, "Europe/Berlin", "2026-03-29T00:00:00Z", len(expected))
    assert fires == expected


# -- intervals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("every", "expected"),
    [
        ("1h30m", ["2026-01-01T01:30:00Z", "2026-01-01T03:00:00Z", "2026-01-01T04:30:00Z"]),
        (600, ["2026-01-01T00:10:00Z", "2026-01-01T00:20:00Z", "2026-01-01T00:30:00Z"]),
        ("2d", ["2026-01-03T00:00:00Z", "2026-01-05T00:00:00Z", "2026-01-07T00:00:00Z"]),
    ],
)
def test_interval_first_fires_one_step_after_the_anchor(every: str, expected: list[str]) -> None:
    """An interval created at its anchor fires at anchor + every, then every step after."""
    fires = next_fire_times(interval(every), after=ANCHOR, tz="UTC", anchor=ANCHOR, count=3)
    assert shown(fires) == expected


@pytest.mark.parametrize(
    "restart",
    [
        "2026-01-01T03:00:00Z",
        "2026-01-01T03:00:01Z",
        "2026-01-01T04:29:59Z",
        "2026-01-01T05:00:00+01:00",
    ],
)
def test_interval_grid_survives_a_restart(restart: str) -> None:
    """After a restart the next fire comes from the anchor's grid, not from the restart time."""
    fire = next_fire_time(interval("1h30m"), after=at(restart), tz="UTC", anchor=ANCHOR)
    assert fire == at("2026-01-01T04:30:00Z")


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("2026-01-01T00:00:00Z", "2026-03-01T09:00:00Z"),
        ("2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z"),
        ("2026-03-02T09:30:00Z", "2026-03-02T10:00:00Z"),
    ],
)
def test_interval_start_at_is_the_first_fire(after: str, expected: str) -> None:
    """A future `start_at` is itself the first fire and anchors the grid over the `anchor` given."""
    trigger = interval("1h", start_at="2026-03-01T10:00:00+01:00")
    assert next_fire_time(trigger, after=at(after), tz="UTC", anchor=ANCHOR) == at(expected)


def test_interval_keeps_elapsed_time_across_dst() -> None:
    """A daily interval keeps 24-hour steps across DST, so its local time shifts by an hour."""
    trigger = interval("1d", timezone="Europe/Berlin")
    start = at("2026-03-28T08:00:00Z")
    fires = next_fire_times(trigger, after=start, tz="UTC", anchor=start, count=2)
    assert shown(fires) == ["2026-03-29T08:00:00Z", "2026-03-30T08:00:00Z"]


# -- once, event, manual -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "tz", "expected"),
    [
        (once("2026-12-01T09:00:00+01:00"), "America/New_York", "2026-12-01T08:00:00Z"),
        (once("2026-12-01T09:00:00", "Europe/Berlin"), "UTC", "2026-12-01T08:00:00Z"),
        (once("2026-12-01T09:00:00"), "America/New_York", "2026-12-01T14:00:00Z"),
        (once("2026-03-29T02:30:00", "Europe/Berlin"), "UTC", "2026-03-29T01:00:00Z"),
        (once("2026-11-01T01:30:00"), "America/New_York", "2026-11-01T05:30:00Z"),
    ],
)
def test_once_fires_at_its_instant(trigger: Trigger, tz: str, expected: str) -> None:
    """`at` fires once; a naive `at` is read in the trigger's timezone, else in the given one."""
    fires = next_fire_times(trigger, after=ANCHOR, tz=tz, anchor=ANCHOR, count=3)
    assert shown(fires) == [expected]


@pytest.mark.parametrize("after", ["2026-12-01T08:00:00Z", "2027-01-01T00:00:00Z"])
def test_once_not_after_the_given_instant_never_fires(after: str) -> None:
    """An `at` at or before `after` has no next fire."""
    trigger = once("2026-12-01T09:00:00+01:00")
    assert next_fire_time(trigger, after=at(after), tz="UTC", anchor=ANCHOR) is None


@pytest.mark.parametrize("trigger", [None, EventTrigger(event="deploy_finished")])
def test_manual_and_event_triggers_have_no_clock_fires(trigger: Trigger | None) -> None:
    """Manual tasks and event triggers never fire on a clock."""
    window: dict[str, Any] = {"start": ANCHOR, "end": ANCHOR + timedelta(days=400), "limit": 10}
    assert next_fire_time(trigger, after=ANCHOR, tz="UTC", anchor=ANCHOR) is None
    assert next_fire_times(trigger, after=ANCHOR, tz="UTC", anchor=ANCHOR, count=3) == []
    assert fires_between(trigger, tz="UTC", anchor=ANCHOR, **window) == []


# -- catch-up windows --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "limit", "expected"),
    [
        (CronTrigger(cron="0 * * * *"), 10, ["01", "02", "03", "04", "05"]),
        (CronTrigger(cron="0 * * * *"), 2, ["04", "05"]),
        (interval("1h"), 10, ["01", "02", "03", "04", "05"]),
        (interval("1h"), 3, ["03", "04", "05"]),
        (once("2026-01-01T05:00:00Z"), 10, ["05"]),
        (once("2026-01-01T00:00:00Z"), 10, []),
    ],
)
def test_fires_between_keeps_the_latest_up_to_the_limit(
    trigger: Trigger, limit: int, expected: list[str]
) -> None:
    """`fires_between` lists the most recent `limit` fires in (start, end], oldest first."""
    fires = fires_between(
        trigger, start=ANCHOR, end=at("2026-01-01T05:00:00Z"), tz="UTC", anchor=ANCHOR, limit=limit
    )
    assert [f"{fire:%H}" for fire in fires] == expected


def test_fires_between_a_long_downtime_returns_the_latest_fires() -> None:
    """A year of downtime under a per-second cron yields its last fires without walking them all."""
    fires = fires_between(
        CronTrigger(cron="* * * * * *"),
        start=at("2025-01-01T00:00:00Z"),
        end=at("2026-01-01T00:00:00Z"),
        tz="UTC",
        anchor=ANCHOR,
        limit=3,
    )
    assert shown(fires) == ["2025-12-31T23:59:58Z", "2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z"]


def test_fires_between_spans_dst_without_doubles() -> None:
    """Catch-up across a fall-back lists each repeated wall time once."""
    fires = fires_between(
        CronTrigger(cron="0 * * * *", timezone="America/New_York"),
        start=at("2026-11-01T03:30:00Z"),
        end=at("2026-11-01T08:30:00Z"),
        tz="UTC",
        anchor=ANCHOR,
        limit=10,
    )
    assert shown(fires) == [
        "2026-11-01T04:00:00Z",
        "2026-11-01T05:00:00Z",
        "2026-11-01T07:00:00Z",
        "2026-11-01T08:00:00Z",
    ]


def test_naive_instants_are_rejected() -> None:
    """Passing a naive instant is a programming error and raises ValueError."""
    naive = datetime.fromisoformat("2026-01-01T00:00:00")
    with pytest.raises(ValueError, match="after must be timezone-aware"):
        next_fire_time(CronTrigger(cron="* * * * *"), after=naive, tz="UTC", anchor=ANCHOR)


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 9 * *", "It has 4 fields"),
        ("0 9 * * * * *", "It has 7 fields"),
        ("60 9 * * *", "The minute field has '60'; use 0-59"),
        ("0 24 * * *", "The hour field has '24'; use 0-23"),
        ("0 9 0 * *", "The day-of-month field has '0'; use 1-31"),
        ("0 9 * 13 *", "The month field has '13'; use 1-12 or a name jan-dec"),
        ("0 9 * * 8", "The day-of-week field has '8'; use 0-7 or a name sun-sat"),
        ("0 9 * * monday", "The day-of-week field has 'monday'"),
        ("61 0 9 * * *", "The second field has '61'; use 0-59"),
        ("*/0 * * * *", "step 0"),
        ("0 17-9 * * *", "backwards range '17-9'"),
        ("0 9 * * 1;5", "'1;5', which is not a value, range or step"),
        ("? * * * *", "The minute field has '?'"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
    ],
)
def test_bad_cron_names_the_cron_field_and_value(cron: str, says: str) -> None:
    """A bad cron raises InvalidInput on trigger.cron naming the cron field, the value and an
    example."""
    with pytest.raises(InvalidInput) as caught:
        validate_trigger(CronTrigger(cron=cron))
    assert caught.value.field == "trigger.cron"
    assert caught.value.value == cron
    assert says in caught.value.message
    assert "'0 9 * * 1-5'" in caught.value.message


@pytest.mark.parametrize(
    "cron",
    ["@daily", "@MONTHLY", "0 0 ? * mon", "0 0 29 2 *", "0 0 30 2 mon", "0 0 * * 0-7", "0 0 1 1 *"],
)
def test_valid_crons_pass_validation(cron: str) -> None:
    """A well-formed cron that can fire passes validation."""
    validate_trigger(CronTrigger(cron=cron))


def test_validation_errors_use_the_given_field_prefix() -> None:
    """The `field` argument prefixes the reported field name."""
    with pytest.raises(InvalidInput) as caught:
        validate_trigger(interval("soon"), field="patch.trigger")
    assert caught.value.field == "patch.trigger.every"


def test_next_fire_time_rejects_a_bad_cron() -> None:
    """Computing fires for an unvalidated bad cron raises the same InvalidInput."""
    with pytest.raises(InvalidInput, match=r"trigger\.cron"):
        next_fire_time(CronTrigger(cron="0 25 * * *"), after=ANCHOR, tz="UTC", anchor=ANCHOR)


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30m", 1800),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("2d", 172800),
        ("90s", 90),
        ("1w", 604800),
        ("1500ms", 1.5),
        ("1.5h", 5400),
        ("2 hours", 7200),
        ("10 Minutes", 600),
        ("3600", 3600),
        (3600, 3600),
        (1.5, 1.5),
        ("1", 1),
    ],
)
def test_parse_duration_reads_seconds_and_units(value: str | float, seconds: float) -> None:
    """A duration is seconds or a sum of amounts with units ms, s, m, h, d, w."""
    assert parse_duration(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "'' is not a duration"),
        ("soon", "'soon' is not a duration"),
        ("1h30", "'1h30' is not a duration"),
        ("30x", "'30x' is not a duration"),
        ("-5m", "'-5m' is not a duration"),
        ("inf", "'inf' is not a duration"),
        (True, "True is not a duration"),
        ("0", "'0' is shorter than 1 second"),
        (-60, "-60 is shorter than 1 second"),
        ("500ms", "'500ms' is shorter than 1 second"),
        (0.5, "0.5 is shorter than 1 second"),
        ("400d", "'400d' is longer than 366 days"),
    ],
)
def test_parse_duration_rejects_bad_values(value: str | float, says: str) -> None:
    """A bad, zero, negative, sub-second or over-long duration raises ValueError naming it."""
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_duration(value)


@pytest.mark.parametrize("every", ["30x", "0", 0.25, "abc"])
def test_bad_every_names_the_field_and_value(every: str | float) -> None:
    """A bad interval raises InvalidInput on trigger.every with the value and accepted forms."""
    with pytest.raises(InvalidInput) as caught:
        validate_trigger(interval(every))
    assert caught.value.field == "trigger.every"
    assert caught.value.value == every
    assert "'1h30m'" in caught.value.message


# -- timezone ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (CronTrigger(cron="* * * * *", timezone="Europe/Berlin"), "Europe/Berlin"),
        (CronTrigger(cron="* * * * *"), "America/New_York"),
        (interval("1h", timezone="Asia/Tokyo"), "Asia/Tokyo"),
        (once("2026-12-01T09:00:00", "Australia/Sydney"), "Australia/Sydney"),
        (EventTrigger(event="deploy"), "America/New_York"),
        (None, "America/New_York"),
    ],
)
def test_trigger_timezone_prefers_the_triggers_own(trigger: Trigger | None, expected: str) -> None:
    """A trigger's own timezone wins over the default."""
    assert trigger_timezone(trigger, "America/New_York") == expected
