"""`next_match` against a plain reference: walk the calendar one day at a time and take the
first listed time of the first matching day. The matcher skips ahead (to the next listed month,
day, time of day); it must land where the plain walk does, for either day rule, month lists,
seconds, short months and leap days."""

import random
from datetime import datetime, timedelta

import pytest

from taskloom.domain.cron import CronSpec, next_match, parse_cron

CRONS = [
    "0 9 1 1 *",
    "0 0 31 * *",
    "0 0 29 2 *",
    "30 12 * * 1-5",
    "*/15 8-10 13 * 5",
    "0 0 1,15 * mon",
    "5 4 * jun-aug sun",
    "0 0 ? * 0",
    "15,45 * 28-31 * *",
    "0 0 */10 */3 *",
    "10 6 31 jan,mar,dec *",
    "0 12 * feb,nov fri",
    "*/20 15,45 10 * * *",
    "30 */7 * * * 1",
]


def reference(spec: CronSpec, start: datetime) -> datetime | None:
    """The first listed time at or after `start`, found by visiting every day."""
    start = start.replace(microsecond=0) + timedelta(seconds=1 if start.microsecond else 0)
    day = start.replace(hour=0, minute=0, second=0)
    for _ in range(366 * 9):
        if day.month in spec.months and spec.day_matches(day.date()):
            for hour in spec.hours:
                for minute in spec.minutes:
                    for second in spec.seconds:
                        at = day.replace(hour=hour, minute=minute, second=second)
                        if at >= start:
                            return at
        day += timedelta(days=1)
    return None


@pytest.mark.parametrize("cron", CRONS)
def test_next_match_lands_where_a_day_by_day_walk_does(cron: str) -> None:
    spec = parse_cron(cron)
    rnd = random.Random(cron)
    for _ in range(40):
        # Naive on purpose: cron matches the wall clock, with no time zone.
        start = datetime(2024, 1, 1) + timedelta(seconds=rnd.randrange(4 * 365 * 86400))  # noqa: DTZ001
        start += timedelta(microseconds=rnd.choice([0, 1, 500_000]))
        assert next_match(spec, start) == reference(spec, start), (cron, start)
