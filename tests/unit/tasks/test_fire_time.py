"""A fire time as answers show it: in the task's timezone and in UTC (remembered per instant)."""

from datetime import UTC, datetime, timedelta, timezone

from taskloom.tasks.service import fire_time


def test_local_and_utc_text() -> None:
    at = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 in Berlin, an hour before DST starts
    shown = fire_time(at, "Europe/Berlin")
    assert shown.local == "2026-03-29T01:30:00+01:00"
    assert shown.utc == "2026-03-29T00:30:00+00:00"
    later = fire_time(at + timedelta(hours=1), "Europe/Berlin")
    assert later.local == "2026-03-29T03:30:00+02:00"


def test_the_same_instant_with_another_offset_keeps_its_own_text() -> None:
    utc = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    plus_two = utc.astimezone(timezone(timedelta(hours=2)))
    assert utc == plus_two  # equal datetimes: a cache keyed by the datetime alone would mix them
    assert fire_time(utc, "UTC").utc == "2026-01-05T09:00:00+00:00"
    assert fire_time(plus_two, "UTC").utc == "2026-01-05T11:00:00+02:00"
    assert fire_time(plus_two, "UTC").local == "2026-01-05T09:00:00+00:00"


def test_the_timezone_is_part_of_it() -> None:
    at = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert fire_time(at, "UTC").local == "2026-07-01T12:00:00+00:00"
    assert fire_time(at, "America/New_York").local == "2026-07-01T08:00:00-04:00"
