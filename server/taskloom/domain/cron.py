"""Cron expressions: parsing and matching on the wall clock, with no time zones involved.

Standard crontab syntax (Vixie cron): 5 fields `minute hour day-of-month month day-of-week`, or 6
with a leading seconds field. Each field is a comma list of `*`, `N`, `N-M`, with an optional
`/step` (`N/step` means `N-max/step`); months and weekdays also take names (`jan`, `mon-fri`).
Day-of-week counts from Sunday: 0 and 7 are Sunday, 1-5 is Monday to Friday. `?` means `*` in the
day fields, and `@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly`, `@yearly`/`@annually` work.

Day-of-month and day-of-week combine as in Vixie cron: when both are restricted a day matches if
*either* matches (`0 0 1 * mon` is the 1st and every Monday); when either field starts with `*` (as
`*` or `*/2`) both must match.

APScheduler 3's cron trigger is not used: it numbers weekdays from Monday, fires a wall time twice
across a DST fall-back, and places a skipped wall time half an hour late in the gap.
"""

import re
from bisect import bisect_left, bisect_right
from calendar import monthrange
from dataclasses import dataclass
from datetime import MAXYEAR, date, datetime, timedelta
from functools import lru_cache

EXAMPLE = (
    "A cron has 5 fields 'minute hour day-of-month month day-of-week' (or 6 with a leading "
    "seconds field), e.g. '0 9 * * 1-5' for 09:00 Monday to Friday or '*/15 * * * *' for every "
    "15 minutes; day-of-week 0 or 7 is Sunday."
)
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# Years searched for the next match: covers the 8-year leap-day gap around 2100 and the longest
# wait for a date to fall on a given weekday.
HORIZON_YEARS = 30
_ITEM = re.compile(r"^(?:(?P<star>[*?])|(?P<lo>\w+)(?:-(?P<hi>\w+))?)(?:/(?P<step>\d+))?$")


@dataclass(frozen=True)
class FieldKind:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0


SECOND = FieldKind("second", 0, 59)
MINUTE = FieldKind("minute", 0, 59)
HOUR = FieldKind("hour", 0, 23)
DAY = FieldKind("day-of-month", 1, 31)
MONTH = FieldKind("month", 1, 12, MONTHS, 1)
WEEKDAY = FieldKind("day-of-week", 0, 7, WEEKDAYS, 0)


@dataclass(frozen=True)
class CronSpec:
    """The sorted values each field allows; weekdays as 0=Sunday..6=Saturday."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]
    either_day: bool  # both day fields restricted: Vixie's OR rule

    @property
    def every_weekday(self) -> bool:
        return len(self.weekdays) == 7

    def day_matches(self, day: date) -> bool:
        dom = day.day in self.days
        dow = (day.weekday() + 1) % 7 in self.weekdays
        return (dom or dow) if self.either_day else (dom and dow)


class CronError(ValueError):
    """A cron expression does not parse; the message names the cron field and the bad part."""


@lru_cache(maxsize=512)
def parse_cron(expression: str) -> CronSpec:
    """Parse a crontab expression; raises CronError saying which field is wrong."""
    text = MACROS.get(expression.strip().lower(), expression)
    parts = text.split()
    if len(parts) == 5:
        parts = ["0", *parts]
    elif len(parts) != 6:
        raise CronError(f"It has {len(parts)} fields")
    kinds = (SECOND, MINUTE, HOUR, DAY, MONTH, WEEKDAY)
    seconds, minutes, hours, days, months, weekdays = (
        _parse_field(part, kind) for part, kind in zip(parts, kinds, strict=True)
    )
    spec = CronSpec(
        seconds=seconds,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=tuple(sorted({day % 7 for day in weekdays})),
        either_day=not parts[3].startswith(("*", "?")) and not parts[5].startswith(("*", "?")),
    )
    if not can_fire(spec):
        raise CronError("No month has that day-of-month, so it never fires")
    return spec


def _parse_field(text: str, kind: FieldKind) -> tuple[int, ...]:
    values: set[int] = set()
    for item in text.lower().split(","):
        values.update(_parse_item(item, kind))
    return tuple(sorted(values))


def _parse_item(item: str, kind: FieldKind) -> range:
    match = _ITEM.match(item)
    if match is None or (match["star"] == "?" and kind not in (DAY, WEEKDAY)):
        raise CronError(f"The {kind.name} field has {item!r}, which is not a value, range or step")
    step = int(match["step"] or 1)
    if step < 1:
        raise CronError(f"The {kind.name} field has step 0 in {item!r}; use 1 or more")
    if match["star"]:
        return range(kind.low, kind.high + 1, step)
    low = _value(match["lo"], kind)
    high = _range_end(match["hi"], low, kind, bool(match["step"]))
    if high < low:
        raise CronError(f"The {kind.name} field has the backwards range {item!r}")
    return range(low, high + 1, step)


def _range_end(text: str | None, low: int, kind: FieldKind, stepped: bool) -> int:
    if text is None:
        return kind.high if stepped else low
    high = _value(text, kind)
    # 'fri-sun' means Friday to Sunday: Sunday closes a weekday range as 7.
    return 7 if kind is WEEKDAY and high == 0 and low > 0 else high


def _value(text: str, kind: FieldKind) -> int:
    if text in kind.names:
        return kind.names.index(text) + kind.name_base
    if not text.isdigit() or not kind.low <= int(text) <= kind.high:
        names = f" or a name {kind.names[0]}-{kind.names[-1]}" if kind.names else ""
        raise CronError(f"The {kind.name} field has {text!r}; use {kind.low}-{kind.high}{names}")
    return int(text)


def can_fire(spec: CronSpec) -> bool:
    """Whether some date matches: any weekday occurs in every month, but a day-of-month need not."""
    if spec.either_day:
        return True
    longest = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}
    return any(spec.days[0] <= longest.get(month, 31) for month in spec.months)


def next_match(spec: CronSpec, start: datetime) -> datetime | None:
    """The first naive wall-clock time at or after `start` that the cron lists, or None when
    there is none within HORIZON_YEARS."""
    current = _ceil_second(start)
    limit = min(start.year + HORIZON_YEARS, MAXYEAR - 1)
    while current.year <= limit:
        later = _advance(spec, current)
        if later == current:
            return current
        current = later
    return None


def _advance(spec: CronSpec, at: datetime) -> datetime:
    """`at` when it matches, else a later time with no match in between."""
    if at.month not in spec.months:
        return _next_month(spec, at)
    if not spec.day_matches(at.date()):
        return _next_day(spec, at)
    return _time_of_day(spec, at) or _next_day(spec, at)


def _time_of_day(spec: CronSpec, at: datetime) -> datetime | None:
    """The first listed time of day at or after `at`'s, on `at`'s day; None when the day has
    none left (one step instead of one per second, minute and hour passed on the way)."""
    for hour in spec.hours[bisect_left(spec.hours, at.hour) :]:
        if hour > at.hour:
            return at.replace(hour=hour, minute=spec.minutes[0], second=spec.seconds[0])
        for minute in spec.minutes[bisect_left(spec.minutes, at.minute) :]:
            if minute > at.minute:
                return at.replace(minute=minute, second=spec.seconds[0])
            index = bisect_left(spec.seconds, at.second)
            if index < len(spec.seconds):
                return at.replace(second=spec.seconds[index])
    return None


def _next_day(spec: CronSpec, at: datetime) -> datetime:
    """The start of the next matching day in `at`'s month, else of the next month: one step
    instead of one per day (a yearly cron would otherwise take ~30 steps per fire)."""
    last = monthrange(at.year, at.month)[1]
    if spec.every_weekday and not spec.either_day:  # the day of the month alone decides
        index = bisect_right(spec.days, at.day)
        if index < len(spec.days) and spec.days[index] <= last:
            return _day_start(at).replace(day=spec.days[index])
        return _next_month(spec, at)
    today = at.date()
    for day in range(at.day + 1, last + 1):
        if spec.day_matches(today.replace(day=day)):
            return _day_start(at).replace(day=day)
    return _next_month(spec, at)


def _next_month(spec: CronSpec, at: datetime) -> datetime:
    """The start of the next month the cron lists, this year or else the next: one step instead
    of one per month (a yearly cron would otherwise take up to 11)."""
    index = bisect_right(spec.months, at.month)
    if index < len(spec.months):
        return _day_start(at).replace(month=spec.months[index], day=1)
    return _day_start(at).replace(year=at.year + 1, month=spec.months[0], day=1)


def _day_start(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_second(at: datetime) -> datetime:
    if at.microsecond == 0:
        return at
    return at.replace(microsecond=0) + timedelta(seconds=1)
