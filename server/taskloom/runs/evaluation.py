"""A step's user-controlled computation, as a sandbox worker runs it (see `sandbox.py`).

One round trip per step: the worker renders the step's argument templates, runs the tool itself
when it is pure computation (`render`, `extract`), redacts secrets and bounds what is stored.
Step outputs travel as `Packed` pickles: the parent keeps them opaque, so a big output is never
rebuilt or serialised on the event loop, only inside a worker.
"""

import functools
import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from taskloom.domain.templates import Secrets, TemplateError, resolve_args
from taskloom.runs.sandbox import LimitExceeded
from taskloom.runs.storable import Unstorable, find_unstorable, storable_copy
from taskloom_tools.catalog import builtin_tools

ARGS_HINT = "The arguments were larger than TASKLOOM_MAX_OUTPUT_BYTES; only a preview is kept."
OUTPUT_HINT = "The output was larger than TASKLOOM_MAX_OUTPUT_BYTES; only a preview is kept."
_SMALL_ITEMS = 32
_SMALL_CHARS = 4096


class Packed(NamedTuple):
    """A step output pickled by a worker; only workers unpickle it."""

    data: bytes


@dataclass(frozen=True)
class StepJob:
    """Everything a worker needs to evaluate one step."""

    step_id: str
    tool: str
    args: dict[str, Any]
    raw_args: frozenset[str]
    context: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict)
    max_output_bytes: int = 65536
    compute: bool = False  # the tool is pure computation: run it in the worker too


@dataclass(frozen=True)
class StepValues:
    """A worker's answer: the resolved args (for a tool the parent calls), what is stored, and
    for a computed tool its output (whole, packed, for later steps) or its error."""

    error: str | None = None
    args: dict[str, Any] | None = None
    stored_args: Any = None
    output: Packed | None = None
    stored_output: Any = None
    computed: bool = False


def bound_value(value: Any, max_bytes: int, hint: str = OUTPUT_HINT) -> Any:
    """The value itself when its JSON is small enough; otherwise a marked, truncated preview."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    size = len(text.encode())
    if size <= max_bytes:
        return value
    return {
        "truncated": True,
        "original_bytes": size,
        "preview": text.encode()[:max_bytes].decode(errors="ignore"),
        "hint": hint,
    }


def evaluate_step(job: StepJob) -> StepValues:
    """Resolve the step's templates and, for a computed tool, run it; never raises for the
    step's own mistakes (they come back as `error`)."""
    secrets = _secrets(tuple(sorted(job.secrets.items())))
    context = unpack(job.context)
    templated = {k: v for k, v in job.args.items() if k not in job.raw_args}
    try:
        rendered = resolve_args(templated, context, step_id=job.step_id, secrets=secrets)
    except TemplateError as exc:
        return StepValues(error=exc.message)
    args = {**{k: v for k, v in job.args.items() if k in job.raw_args}, **rendered}
    # Only JSON reaches the tool and the record: anything else fails this step, here.
    if (bad := find_unstorable(args, "args")) is not None:
        shown = bound_value(secrets.redact(storable_copy(args)), job.max_output_bytes, ARGS_HINT)
        return StepValues(error=unstorable_message(job.step_id, bad), stored_args=shown)
    stored_args = bound_value(secrets.redact(args), job.max_output_bytes, ARGS_HINT)
    if not job.compute:
        return StepValues(args=args, stored_args=stored_args)
    try:
        output = _run_tool(job, args, {**context, "secrets": secrets.mapping})
    except MemoryError:
        raise  # the worker's limit, reported by the sandbox with its setting
    except Exception as exc:  # the tool's failure is the step's, reported as data
        return StepValues(error=describe_failure(job, exc), stored_args=stored_args, computed=True)
    packed, stored, error = store_output(output, job.secrets, job.max_output_bytes, job.step_id)
    return StepValues(
        error=error, stored_args=stored_args, output=packed, stored_output=stored, computed=True
    )


def store_output(
    output: Any, secrets: dict[str, str], max_bytes: int, step_id: str
) -> tuple[Packed | None, Any, str | None]:
    """The whole output packed for later steps, its bounded stored form, and the error when
    JSON cannot hold it. Both are redacted: a secret echoed back (by a server, an upstream tool)
    must not reach a later template that could transform it."""
    redactor = _secrets(tuple(sorted(secrets.items())))
    if (bad := find_unstorable(output, "output")) is not None:
        shown = bound_value(redactor.redact(storable_copy(output)), max_bytes)
        return None, shown, unstorable_message(step_id, bad)
    redacted = redactor.redact(output)
    stored = bound_value(redacted, max_bytes)
    return Packed(pickle.dumps(redacted, protocol=pickle.HIGHEST_PROTOCOL)), stored, None


def unstorable_message(step_id: str, bad: Unstorable) -> str:
    return (
        f"Step {step_id!r}: {bad.describe()}. A template probably names a method or object "
        "instead of a value (such as `.keys` of a dict that has no key 'keys'); refer to a key "
        "that exists."
    )


def unpack(context: Mapping[str, Any]) -> dict[str, Any]:
    """`context` with every step's packed output opened."""
    steps = context.get("steps") or {}
    opened = {key: _open_step(entry) for key, entry in steps.items()}
    return {**context, "steps": opened}


def limit_message(
    step_id: str, tool: str, exc: LimitExceeded | TimeoutError, activity: str, timeout_s: float
) -> str:
    """A step's error for a sandbox limit: the step, the limit and the setting that raises it."""
    if isinstance(exc, TimeoutError):
        return f"Step {step_id!r} timed out after {timeout_s:g} s; raise its timeout_s."
    return (
        f"Step {step_id!r} ({tool}) {exc.detail} while {activity}; the limit is set by "
        f"{exc.setting}."
    )


def is_small(value: Any) -> bool:
    """Whether `value` is a scalar or a short flat container: cheap to store on the event loop,
    so it skips a round trip to a worker."""
    if isinstance(value, dict):
        return len(value) <= _SMALL_ITEMS and all(map(_is_scalar, value.values()))
    if isinstance(value, list):
        return len(value) <= _SMALL_ITEMS and all(map(_is_scalar, value))
    return _is_scalar(value)


def _is_scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= _SMALL_CHARS
    return value is None or isinstance(value, bool | int | float)


def describe_failure(job: StepJob, exc: Exception) -> str:
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        return message
    if isinstance(exc, ValueError):
        return str(exc)
    return f"Step {job.step_id!r} ({job.tool}) failed unexpectedly: {type(exc).__name__}: {exc}"


def _run_tool(job: StepJob, args: dict[str, Any], context: Mapping[str, Any]) -> Any:
    tool = _tools()[job.tool]
    if tool.compute is None:
        raise RuntimeError(f"{job.tool} is not a computed tool")
    return tool.compute(tool.parse_args(args), context)


def _open_step(entry: Any) -> Any:
    if isinstance(entry, Mapping) and isinstance(entry.get("output"), Packed):
        return {**entry, "output": pickle.loads(entry["output"].data)}
    return entry


@functools.cache
def _tools() -> dict[str, Any]:
    return builtin_tools()


@functools.lru_cache(maxsize=64)
def _secrets(items: tuple[tuple[str, str], ...]) -> Secrets:
    return Secrets(dict(items))
