"""Flow control of one step: `when` (run it only if a condition holds) and `foreach` (run it once
per item of a list, its output the list of the items' outputs).

Both are templates, evaluated in a sandbox worker like a step's arguments, over the same context
but without secrets (a condition or a list computed from a secret would carry it past redaction).
The functions named `*_in_worker` run inside the worker.
"""

import pickle
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskloom.clock import Clock
from taskloom.domain.runs import StepResult, StepStatus
from taskloom.domain.tasks import Step
from taskloom.domain.templates import TemplateError, resolve_args, used_steps
from taskloom.runs.evaluation import Packed, bound_value, is_small, limit_message, unpack
from taskloom.runs.sandbox import LimitExceeded, Sandbox

# Runs the step once (with the loop variables as last set); its result and whole output.
Once = Callable[[], Awaitable[tuple[StepResult, Any]]]
Context = Callable[[set[str] | None], dict[str, Any]]
Loop = Callable[[dict[str, Any]], None]

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


@dataclass
class FlowRunner:
    """Runs one step under its `when` and `foreach`, the step itself run by the runner."""

    sandbox: Sandbox
    clock: Clock
    max_items: int
    max_bytes: int
    step_timeout_s: float

    async def run(
        self, step: Step, index: int, *, once: Once, context: Context, loop: Loop
    ) -> tuple[StepResult, Any]:
        if step.when is not None:
            checked = await self._value(step, "when", step.when, context)
            if checked.error is not None:
                return self._failed(step, index, checked.error), None
            if not checked.value:
                reason = f"when was false: {step.when}"
                return skipped(step, index, reason, self.clock.now()), None
        if step.foreach is None:
            return await once()
        listed = await self._value(step, "foreach", step.foreach, context)
        if listed.error is not None:
            return self._failed(step, index, listed.error), None
        if len(listed.value) > self.max_items:
            return self._failed(
                step, index, too_many(step, len(listed.value), self.max_items)
            ), None
        return await self._each(step, index, listed.value, once, loop)

    async def _each(
        self, step: Step, index: int, items: list[Any], once: Once, loop: Loop
    ) -> tuple[StepResult, Any]:
        results, outputs = [], []
        for position, item in enumerate(items):
            loop({"item": item, "index": position})
            try:
                result, output = await once()
            finally:
                loop({})
            results.append(result)
            outputs.append(output)
            if result.status != StepStatus.SUCCEEDED:
                break
        combined = combine(step, index, results, self.clock.now())
        combined = combined.model_copy(update={"args": bound_value(combined.args, self.max_bytes)})
        if combined.status != StepStatus.SUCCEEDED:
            return combined, None
        stored = [r.output for r in results]
        if all_small(outputs):
            return combined.model_copy(update={"output": stored}), outputs
        packed, bounded = await self.sandbox.call(
            gather_in_worker, outputs, stored, self.max_bytes, timeout_s=self._timeout(step)
        )
        return combined.model_copy(update={"output": bounded}), packed

    async def _value(self, step: Step, field: str, source: str, context: Context) -> FlowValue:
        seen = context(used_steps({field: source}))
        timeout = self._timeout(step)
        try:
            value: FlowValue = await self.sandbox.call(
                evaluate_in_worker, step.id, field, source, seen, timeout_s=timeout
            )
        except (LimitExceeded, TimeoutError) as exc:
            activity = f"evaluating its {field}"
            return FlowValue(error=limit_message(step.id, step.tool, exc, activity, timeout))
        except Exception as exc:  # e.g. a value nested too deeply to serialise
            return FlowValue(error=f"Step {step.id!r} failed evaluating its {field}: {exc}")
        return value

    def _failed(self, step: Step, index: int, error: str) -> StepResult:
        now = self.clock.now()
        return StepResult(
            id=step.id, index=index, tool=step.tool, status=StepStatus.FAILED, error=error,
            started_at=now, finished_at=now, duration_ms=0,
        )  # fmt: skip

    def _timeout(self, step: Step) -> float:
        return step.timeout_s or self.step_timeout_s
