"""Schedule math for triggers: pure functions of the trigger and the instants passed in.

Nothing here reads the clock or does I/O. Every instant returned is aware and in UTC; every instant
passed in must be aware.

- **cron** (see `scheduling/cron.py` for the syntax) is evaluated on the wall clock of the trigger's
  IANA timezone. A listed wall time that occurs twice (DST fall-back) fires once, at its first
  occurrence: `*/15 * * * *` fires 4 times in the repeated hour, not 8. A listed wall time that does
  not exist (spring-forward gap) fires at the first instant after the gap, once: `30 2 * * *` in
  Europe/Berlin on 2026-03-29 fires at 03:00 local (01:00 UTC), and `0 2,3 * * *` fires once there.
- **every** is elapsed time on the grid `anchor + k * every` for k >= 0, where the anchor is
  `trigger.start_at` when set, else the `anchor` argument (the task's creation time). The grid is
  computed from the anchor, never from "now", so restarts do not drift it. Fires are strictly after
  `after`, so a task created now first fires one interval from now, while a future `start_at` is
  itself the first fire. `every: "1d"` keeps 24 h steps across DST; use cron for a wall-clock time.
- **at** fires once; a naive `at` is read in the trigger's timezone (fall-back: first occurrence;
  gap: the first instant after it).
- **event** and manual tasks (no trigger) never fire on a clock.
"""

import math
import re
from collections import deque
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from taskloom.domain.cron import EXAMPLE, CronError, CronSpec, next_match, parse_cron
from taskloom.domain.tasks import CronTrigger, EventTrigger, IntervalTrigger, OnceTrigger, Trigger
from taskloom.errors import InvalidInput

MIN_INTERVAL = timedelta(seconds=1)
MAX_INTERVAL = timedelta(days=366)
_UNITS = {
    **dict.fromkeys(("ms", "msec", "millisecond", "milliseconds"), 0.001),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
    **dict.fromkeys(("w", "wk", "week", "weeks"), 604800.0),
}
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)([a-z]+)")
DURATION_HELP = (
    "Use a number of seconds (3600) or amounts with units ms, s, m, h, d, w such as '90s', "
    "'30m', '1h30m', '2d' or '1w'."
)


# -- durations ---------------------------------------------------------------------------------


def parse_duration(value: str | float) -> timedelta:
    """'30m', '1h30m', '2d', '90s', '1w', '1500ms', 3600 or '3600' (seconds) as a timedelta of at
    least 1 second; ValueError saying what to send otherwise."""
    seconds = _duration_seconds(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a duration. {DURATION_HELP}")
    if seconds < MIN_INTERVAL.total_seconds():
        raise ValueError(f"{value!r} is shorter than 1 second. {DURATION_HELP}")
    if seconds > MAX_INTERVAL.total_seconds():
        raise ValueError(
            f"{value!r} is longer than {MAX_INTERVAL.days} days; use a cron or an 'at' trigger."
        )
    return timedelta(seconds=seconds)


def _duration_seconds(value: str | float) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration. {DURATION_HELP}")
    if isinstance(value, int | float):
        return float(value)
    text = "".join(value.lower().split())
    try:
        return float(text)
    except ValueError:
        pass
    total, position = 0.0, 0
    for amount in _AMOUNT.finditer(text):
        if amount.start() != position or amount[2] not in _UNITS:
            break
        total += float(amount[1]) * _UNITS[amount[2]]
        position = amount.end()
    if position == 0 or position != len(text):
        raise ValueError(f"{value!r} is not a duration. {DURATION_HELP}")
    return total


# -- validation and timezone -------------------------------------------------------------------


def validate_trigger(trigger: Trigger, *, field: str = "trigger") -> None:
    """Raise InvalidInput naming `<field>.cron` or `<field>.every`, the bad value and the fix."""
    if isinstance(trigger, CronTrigger):
        _cron_spec(trigger, field)
    elif isinstance(trigger, IntervalTrigger):
        _interval(trigger, field)


def _cron_spec(trigger: CronTrigger, field: str = "trigger") -> CronSpec:
    try:
        return parse_cron(trigger.cron)
    except CronError as exc:
        raise InvalidInput(f"{field}.cron", trigger.cron, f"{exc}. {EXAMPLE}") from exc


def _interval(trigger: IntervalTrigger, field: str = "trigger") -> timedelta:
    try:
        return parse_duration(trigger.every)
    except ValueError as exc:
        fix = str(exc).removeprefix(f"{trigger.every!r} ")
        raise InvalidInput(f"{field}.every", trigger.every, f"It {fix}") from exc


def trigger_timezone(trigger: Trigger | None, default_tz: str) -> str:
    """The IANA zone the trigger is evaluated and displayed in: its own, else `default_tz`."""
    if isinstance(trigger, CronTrigger | IntervalTrigger | OnceTrigger) and trigger.timezone:
        return trigger.timezone
    return default_tz


def describe_trigger(trigger: Trigger | None, default_tz: str) -> str:
    """A trigger in words, for people: 'cron 0 8 * * 1-5, Europe/Berlin', 'every 30m',
    'once at 2026-12-01 09:00, Europe/Berlin', 'on event deploy_finished' or 'manual'."""
    if isinstance(trigger, EventTrigger):
        return f"on event {trigger.event}"
    if trigger is None:
        return "manual"
    tz = trigger_timezone(trigger, default_tz)
    if isinstance(trigger, CronTrigger):
        return f"cron {trigger.cron}, {tz}"
    if isinstance(trigger, IntervalTrigger):
        every = trigger.every if isinstance(trigger.every, str) else f"{trigger.every:g}s"
        start = trigger.start_at
        since = f" from {start.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M}, {tz}" if start else ""
        return f"every {every}{since}"
    at = _once_instant(trigger, ZoneInfo(tz)).astimezone(ZoneInfo(tz))
    return f"once at {at:%Y-%m-%d %H:%M}, {tz}"


# -- next fires --------------------------------------------------------------------------------


def next_fire_time(
    trigger: Trigger | None, *, after: datetime, tz: str, anchor: datetime
) -> datetime | None:
    """The first fire strictly after `after`, in UTC; None for manual and event triggers and for
    an `at` that is not after `after`. Raises InvalidInput for a bad cron or duration."""
    _require_aware(after=after, anchor=anchor)
    zone = ZoneInfo(trigger_timezone(trigger, tz))
    if isinstance(trigger, CronTrigger):
        return _next_cron(_cron_spec(trigger), after, zone)
    if isinstance(trigger, IntervalTrigger):
        return _next_interval(trigger, after, anchor)
    if isinstance(trigger, OnceTrigger):
        fire = _once_instant(trigger, zone)
        return fire if fire > after else None
    return None


def next_fire_times(
    trigger: Trigger | None, *, after: datetime, tz: str, anchor: datetime, count: int
) -> list[datetime]:
    """Up to `count` successive fires strictly after `after`, in UTC, oldest first."""
    fires: list[datetime] = []
    if isinstance(trigger, CronTrigger):  # the cron and its zone read once, not per fire
        _require_aware(after=after, anchor=anchor)
        spec, zone = _cron_spec(trigger), ZoneInfo(trigger_timezone(trigger, tz))
        fire: datetime | None = after
        while len(fires) < count and fire is not None:
            fire = _next_cron(spec, fire, zone)
            fires += [fire] if fire is not None else []
        return fires
    while len(fires) < count:
        previous = fires[-1] if fires else after
        fire = next_fire_time(trigger, after=previous, tz=tz, anchor=anchor)
        if fire is None:
            break
        fires.append(fire)
    return fires


def fires_between(
    trigger: Trigger | None,
    *,
    start: datetime,
    end: datetime,
    tz: str,
    anchor: datetime,
    limit: int,
) -> list[datetime]:
    """The fires in (start, end], in UTC, oldest first; when there are more than `limit`, the
    most recent `limit` of them (catch-up cares about the latest missed fires)."""
    _require_aware(start=start, end=end, anchor=anchor)
    if limit < 1 or end <= start:
        return []
    zone = ZoneInfo(trigger_timezone(trigger, tz))
    if isinstance(trigger, CronTrigger):
        return _cron_between(_cron_spec(trigger), start, end, zone, limit)
    if isinstance(trigger, IntervalTrigger):
        return _interval_between(trigger, start, end, anchor, limit)
    if isinstance(trigger, OnceTrigger):
        fire = _once_instant(trigger, zone)
        return [fire] if start < fire <= end else []
    return []


def count_fires(
    trigger: Trigger | None, *, start: datetime, end: datetime, tz: str, anchor: datetime, cap: int
) -> int | None:
    """How many fires fall in (start, end]; None when a cron has more than `cap` of them (a cron
    is counted by walking its fires, an interval by arithmetic)."""
    _require_aware(start=start, end=end, anchor=anchor)
    if end <= start:
        return 0
    if isinstance(trigger, IntervalTrigger):
        every, origin = _interval(trigger), trigger.start_at or anchor
        if end < origin:
            return 0
        first = 0 if start < origin else (start - origin) // every + 1
        return max(0, (end - origin) // every - first + 1)
    count, fire = 0, start
    while count <= cap:
        nxt = next_fire_time(trigger, after=fire, tz=tz, anchor=anchor)
        if nxt is None or nxt > end:
            return count
        count, fire = count + 1, nxt
    return None


def _require_aware(**instants: datetime) -> None:
    for name, value in instants.items():
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got {value.isoformat()}")


# -- cron --------------------------------------------------------------------------------------


def _next_cron(spec: CronSpec, after: datetime, zone: ZoneInfo) -> datetime | None:
    # Wall times map to instants monotonically, so no listed wall time up to the local time of
    # `after` can fire after it (that one itself maps to `after`, or an hour before it in the
    # repeated hour); later ones may still map to or before it (the repeated hour).
    start = after.astimezone(zone).replace(tzinfo=None) + timedelta(microseconds=1)
    candidate = next_match(spec, start)
    while candidate is not None:
        fire = wall_to_instant(candidate, zone)
        if fire > after:
            return fire
        candidate = next_match(spec, candidate + timedelta(seconds=1))
    return None


def _cron_between(
    spec: CronSpec, start: datetime, end: datetime, zone: ZoneInfo, limit: int
) -> list[datetime]:
    # Widen a window back from `end` until it holds `limit` fires, so a long downtime under a
    # dense cron does not walk every fire since `start`.
    span = timedelta(minutes=1)
    while True:
        lower = start if span >= end - start else end - span
        kept: deque[datetime] = deque(maxlen=limit)
        fire = _next_cron(spec, lower, zone)
        while fire is not None and fire <= end:
            kept.append(fire)
            fire = _next_cron(spec, fire, zone)
        if len(kept) == limit or lower == start:
            return list(kept)
        span *= 4


def wall_to_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant a naive wall time in `zone` fires at: its first occurrence when the clock
    repeats it, the end of the gap when the clock skips it."""
    if zone.key == "UTC":  # no gap, no repeated hour
        return wall.replace(tzinfo=UTC)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    return _gap_end(wall, zone)


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    # In a gap, fold=1 reads the wall time with the offset after the jump (an instant before it)
    # and fold=0 with the offset before (an instant after it); bisect for the jump itself.
    low = math.floor(wall.replace(tzinfo=zone, fold=1).timestamp())
    high = math.floor(wall.replace(tzinfo=zone, fold=0).timestamp())
    offset_after = datetime.fromtimestamp(high, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


# -- intervals and once ------------------------------------------------------------------------


def _next_interval(trigger: IntervalTrigger, after: datetime, anchor: datetime) -> datetime:
    every, origin = _interval(trigger), trigger.start_at or anchor
    if after < origin:
        return origin.astimezone(UTC)
    return (origin + ((after - origin) // every + 1) * every).astimezone(UTC)


def _interval_between(
    trigger: IntervalTrigger, start: datetime, end: datetime, anchor: datetime, limit: int
) -> list[datetime]:
    every, origin = _interval(trigger), trigger.start_at or anchor
    if end < origin:
        return []
    first = 0 if start < origin else (start - origin) // every + 1
    last = (end - origin) // every
    steps = range(max(first, last - limit + 1), last + 1)
    return [(origin + k * every).astimezone(UTC) for k in steps]


def _once_instant(trigger: OnceTrigger, zone: ZoneInfo) -> datetime:
    if trigger.at.tzinfo is not None and trigger.at.utcoffset() is not None:
        return trigger.at.astimezone(UTC)
    return wall_to_instant(trigger.at.replace(tzinfo=None), zone)
