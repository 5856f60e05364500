"""The closest known name for a mistyped or guessed one: a field, a step tool, an argument.

Models guess field names from other schedulers (`schedule`, `interval`, `tz`); those map to ours
by a small synonym table; anything else goes to the closest spelling (difflib).
"""

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from taskloom.domain.tasks import (
    CronTrigger,
    EventTrigger,
    IntervalTrigger,
    NotifyPolicy,
    OnceTrigger,
    RetryPolicy,
    Step,
    SummaryPolicy,
    TaskPatch,
)
from taskloom.errors import InvalidInput, InvalidInputs

# The model at each place of a task (list indexes left out) whose fields an unknown key sits beside.
NESTED: dict[tuple[str, ...], type[BaseModel]] = {
    ("steps",): Step,
    ("steps", "retry"): RetryPolicy,
    ("trigger", "cron"): CronTrigger,
    ("trigger", "every"): IntervalTrigger,
    ("trigger", "at"): OnceTrigger,
    ("trigger", "event"): EventTrigger,
    ("retry",): RetryPolicy,
    ("notify",): NotifyPolicy,
    ("summary",): SummaryPolicy,
}

SYNONYMS = {
    "schedule": "trigger",
    "when": "trigger",
    "triggers": "trigger",
    "crontab": "cron",
    "cron_expression": "cron",
    "expression": "cron",
    "interval": "every",
    "period": "every",
    "frequency": "every",
    "run_at": "at",
    "date": "at",
    "datetime": "at",
    "tz": "timezone",
    "time_zone": "timezone",
    "zone": "timezone",
    "start": "start_at",
    "starts_at": "start_at",
    "end": "end_at",
    "until": "end_at",
    "ends_at": "end_at",
    "stop_at": "end_at",
    "expires_at": "end_at",
    "limit": "max_runs",
    "count": "max_runs",
    "times": "max_runs",
    "arguments": "args",
    "params": "args",
    "parameters": "args",
    "input": "args",
    "inputs": "args",
    "tool_name": "tool",
    "action": "tool",
    "name": "id",
    "step_id": "id",
    "timeout": "timeout_s",
    "retries": "retry",
    "enable": "enabled",
    "active": "enabled",
    "title": "name",
    "notification": "notify",
    "notifications": "notify",
    "webhook": "webhook_url",
    "url": "webhook_url",
}


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name `name` most likely meant, or None when nothing is close."""
    choices = list(known)
    synonym = SYNONYMS.get(name.lower())
    if synonym in choices:
        return synonym
    lowered = {choice.lower(): choice for choice in choices}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' Did you mean 'x'?' when one is close; else an empty string."""
    guess = closest(name, known)
    return f" Did you mean {guess!r}?" if guess else ""


def fields_beside(parent: tuple[str, ...], top_level: Iterable[str] = ()) -> list[str]:
    """The field names valid at `parent` (a path without list indexes): the tool's own
    arguments at the top, else the task model's fields at that place."""
    if not parent:
        return [*top_level, *TaskPatch.model_fields]
    model = NESTED.get(parent)
    return list(model.model_fields) if model is not None else []


# -- pydantic's errors in our voice ------------------------------------------------------------

UNKNOWN_FIELD = frozenset({"unexpected_keyword_argument", "extra_forbidden"})


def format_validation_error(
    exc: ValidationError, prefix: str = "", arguments: Iterable[str] = ()
) -> InvalidInputs:
    """Pydantic's errors in our voice; an unknown field gets the closest known one (`arguments`:
    the tool's own argument names)."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not str(p).startswith("function-")]
        # A trigger's tag repeats its key (`trigger.every.every`): show it once.
        path = ".".join(str(p) for i, p in enumerate(loc) if i == 0 or p != loc[i - 1])
        msg = str(err["msg"]).removeprefix("Value error, ") + "."
        if err["type"] in UNKNOWN_FIELD and loc:
            msg = _unknown_field(loc, arguments)
        problems.append(InvalidInput(f"{prefix}{path}" or "arguments", err.get("input"), msg))
    return InvalidInputs(problems)


def _unknown_field(loc: list[Any], arguments: Iterable[str]) -> str:
    parent = tuple(str(p) for p in loc[:-1] if not isinstance(p, int))
    known = fields_beside(parent, arguments)
    name = str(loc[-1])
    if not known:
        return "Unknown field; remove it."
    hint = did_you_mean(name, known)
    return f"Unknown field.{hint}" if hint else f"Unknown field; known here: {', '.join(known)}."
