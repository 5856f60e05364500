"""What the pages show, shaped from the services' answers: triggers in words, times in the
task's timezone, success rates and charts, step values bounded with the rest one click away."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from taskloom.answers import TaskSummary
from taskloom.dashboard import charts
from taskloom.domain.runs import Run, StepResult
from taskloom.domain.storage import RunPoint

# A step's arguments or output show this many characters first; "show more" loads MORE_CHARS
# at a time (each request answers at most that many).
PREVIEW_CHARS = 2000
MORE_CHARS = 20000
# A task's definition is shown up to this many characters (get_task shows all of it).
DEFINITION_CHARS = 20000
ENDED = ("succeeded", "failed", "interrupted", "cancelled")


def when(at: datetime | None, tz: str) -> str:
    if at is None:
        return "-"
    return at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")


def fire_words(at: str, tz: str) -> str:
    """A fire time from an answer (ISO 8601) as the page shows times."""
    return when(datetime.fromisoformat(at), tz)


def trigger_words(trigger: dict[str, Any] | None, tz: str) -> str:
    """A trigger as a sentence, with the timezone it is evaluated in."""
    if not trigger:
        return "Manual only (run now)"
    if "cron" in trigger:
        return f"{_cron_words(str(trigger['cron']))} ({tz})"
    if "every" in trigger:
        return f"Every {_duration_words(trigger['every'])}"
    if "at" in trigger:
        at = datetime.fromisoformat(str(trigger["at"]))
        return f"Once, at {when(at if at.tzinfo else at.replace(tzinfo=ZoneInfo(tz)), tz)}"
    if "event" in trigger:
        return f"When the event {trigger['event']!r} is emitted"
    return json.dumps(trigger)


def _cron_words(expression: str) -> str:
    from cron_descriptor import Options, get_description

    options = Options()
    options.use_24hour_time_format = True
    try:
        return str(get_description(expression, options))
    except Exception:  # the library's own error types vary; the expression itself still reads
        return f"cron {expression}"


def _duration_words(every: Any) -> str:
    if isinstance(every, str):
        return every
    seconds = float(every)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def points(runs: list[RunPoint], tz: str) -> list[charts.Point]:
    """Runs newest first, as chart points oldest first."""
    return [
        charts.Point(
            label=f"{when(r.started_at or r.fire_time, tz)}: {r.status}"
            + (f", {r.duration_ms} ms" if r.duration_ms is not None else ""),
            status=r.status,
            duration_ms=r.duration_ms,
        )
        for r in reversed(runs)
    ]


def success_rate(runs: list[RunPoint]) -> str:
    ended = [r for r in runs if r.status in ENDED]
    if not ended:
        return "-"
    good = sum(r.status == "succeeded" for r in ended)
    return f"{good / len(ended):.0%} of {len(ended)}"


@dataclass(frozen=True)
class TaskRow:
    task: TaskSummary
    trigger: str
    next_fire: str
    last_run: str
    success: str
    sparkline: Markup


def task_rows(tasks: list[TaskSummary], recent: dict[str, list[RunPoint]]) -> list[TaskRow]:
    rows = []
    for t in tasks:
        runs = recent.get(t.id, [])
        nxt = datetime.fromisoformat(t.next_fire.local) if t.next_fire else None
        rows.append(
            TaskRow(
                task=t,
                trigger=trigger_words(t.trigger, t.timezone),
                next_fire=when(nxt, t.timezone),
                last_run=when(t.last_run_at, t.timezone),
                success=success_rate(runs),
                sparkline=charts.sparkline(points(runs, t.timezone)),
            )
        )
    return rows


def as_text(value: Any) -> str:
    """A stored value as the page shows it: strings as they are, the rest as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Shown:
    """The head of a value and how much of it is left for "show more"."""

    head: str
    total: int

    @property
    def more(self) -> bool:
        return self.total > len(self.head)


def shown(value: Any) -> Shown | None:
    if value is None:
        return None
    text = as_text(value)
    return Shown(text[:PREVIEW_CHARS], len(text))


def step_value(step: StepResult, field: str) -> Any:
    return step.args if field == "args" else step.output


def waterfall(run: Run, tz: str) -> Markup:
    spans = [
        charts.Span(
            label=f"{s.id} ({s.tool}): {s.status.value}"
            + (f", {s.duration_ms} ms" if s.duration_ms is not None else ""),
            status=s.status.value,
            started_at=s.started_at,
            duration_ms=s.duration_ms,
        )
        for s in run.steps
    ]
    total = run.duration_ms
    if total is None:  # still running: the axis ends at the latest step's end
        ends = [
            (s.started_at - run.started_at).total_seconds() * 1000 + (s.duration_ms or 0)
            for s in run.steps
            if s.started_at and run.started_at
        ]
        total = int(max([*ends, 1]))
    return charts.waterfall(spans, run.started_at, total)
