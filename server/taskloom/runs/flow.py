"""Flow control of one step: `when` (run it only if a condition holds) and `foreach` (run it once
per item of a list, its output the list of the items' outputs).

Both are templates, evaluated in a sandbox worker like a step's arguments, over the same context
but without secrets (a condition or a list computed from a secret would carry it past redaction).
The functions named `*_in_worker` run inside the worker.
"""

import pickle
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskloom.domain.runs import StepResult, StepStatus
from taskloom.domain.tasks import Step
from taskloom.domain.templates import TemplateError, resolve_args
from taskloom.runs.evaluation import Packed, bound_value, is_small, unpack

# Text a condition may render to that still means false.
FALSE_TEXTS = frozenset({"", "false", "0", "no", "none", "null"})


@dataclass(frozen=True)
class FlowValue:
    """A `when` or `foreach` template's value, or why it could not be had."""

    value: Any = None
    error: str | None = None


def evaluate_in_worker(step_id: str, field: str, source: str, context: dict[str, Any]) -> FlowValue:
    """The value of a step's `when` or `foreach` template (no secrets in scope)."""
    try:
        value = resolve_args({field: source}, unpack(context), step_id=step_id)[field]
    except TemplateError as exc:
        return FlowValue(error=exc.message.replace(f"args.{field}", field))
    if field == "foreach":
        return _checked_list(step_id, value)
    return FlowValue(value=is_true(value))


def _checked_list(step_id: str, value: Any) -> FlowValue:
    if isinstance(value, list):
        return FlowValue(value=value)
    shown = type(value).__name__
    return FlowValue(
        error=f"Step {step_id!r}: foreach must resolve to a list, not {shown}; e.g. "
        "'{{ steps.fetch.output.json.items }}'."
    )


def is_true(value: Any) -> bool:
    """A condition's truth: Python's, except that rendered text such as 'false' or '0' is false."""
    if isinstance(value, str):
        return value.strip().lower() not in FALSE_TEXTS
    return bool(value)


def too_many(step: Step, count: int, limit: int) -> str:
    return (
        f"Step {step.id!r}: foreach gave {count} items, over the limit of {limit} "
        "(TASKLOOM_MAX_FOREACH_ITEMS); filter the list first (e.g. an extract step) or raise "
        "the setting."
    )


def skipped(step: Step, index: int, reason: str, now: datetime) -> StepResult:
    return StepResult(
        id=step.id,
        index=index,
        tool=step.tool,
        status=StepStatus.SKIPPED,
        reason=reason,
        started_at=now,
        finished_at=now,
        duration_ms=0,
    )


def combine(step: Step, index: int, results: list[StepResult], now: datetime) -> StepResult:
    """One step's result from its items' results: failed at the first failed item (the items
    after it are not run), else succeeded; attempts and calls summed up."""
    failed = next((r for r in results if r.status != StepStatus.SUCCEEDED), None)
    calls = [c for r in results for c in r.calls or []]
    error = None
    if failed is not None:
        error = f"item {len(results) - 1}: {failed.error}"
    return StepResult(
        id=step.id,
        index=index,
        tool=step.tool,
        status=StepStatus.FAILED if failed is not None else StepStatus.SUCCEEDED,
        args={"foreach": [r.args for r in results]} if results else None,
        error=error,
        started_at=results[0].started_at if results else now,
        finished_at=results[-1].finished_at if results else now,
        duration_ms=sum(r.duration_ms or 0 for r in results),
        attempts=sum(r.attempts for r in results),
        calls=calls or None,
    )


def all_small(outputs: list[Any]) -> bool:
    return len(outputs) <= 32 and all(not isinstance(o, Packed) and is_small(o) for o in outputs)


def gather_in_worker(outputs: list[Any], stored: list[Any], max_bytes: int) -> tuple[Packed, Any]:
    """The items' whole outputs as one packed list for later steps, and the stored list bounded
    as one value."""
    opened = [pickle.loads(o.data) if isinstance(o, Packed) else o for o in outputs]
    return Packed(pickle.dumps(opened, protocol=pickle.HIGHEST_PROTOCOL)), bound_value(
        stored, max_bytes
    )
