"""Checks a task definition needs beyond its pydantic shape: tools exist, arguments fit their
schemas, references point at earlier steps, the trigger parses and will fire, the name is free.
All problems are reported at once, each naming the field, the bad value and the fix. What the
operator may still fix (a secret, the API key, a refused host) is accepted with a warning
(`tasks/readiness.py`)."""

from datetime import datetime
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from taskloom.domain import triggers
from taskloom.domain.cron import HORIZON_YEARS
from taskloom.domain.tasks import (
    CronTrigger,
    FieldWarning,
    NotifyPolicy,
    OnceTrigger,
    Step,
    TaskFields,
)
from taskloom.domain.templates import TemplateError, has_template, referenced_steps
from taskloom.domain.timezones import legacy_zone_problem
from taskloom.domain.triggers import validate_trigger
from taskloom.errors import InvalidInput, InvalidInputs
from taskloom.step_tools import StepCatalog, StepToolInfo
from taskloom.tasks.agent_check import check_agent_tools
from taskloom.tasks.channels import check_channels
from taskloom.tasks.expressions import check_expressions
from taskloom.tasks.flow_check import check_flow
from taskloom.tasks.readiness import Surroundings, readiness_warnings
from taskloom.tasks.secret_use import check_task_secrets
from taskloom.tasks.suggest import did_you_mean

MAX_SPEC_BYTES = 256 * 1024


async def validate_task(
    fields: TaskFields, catalog: StepCatalog, around: Surroundings | None = None
) -> list[FieldWarning]:
    """Raise `InvalidInputs` listing every mistake; return the warnings of what was accepted
    but needs the operator (none without `around`)."""
    problems: list[InvalidInput] = []
    problems += _check_size(fields)
    problems += await validate_steps(fields.steps, catalog)
    trigger_problems = _check_trigger(fields)
    problems += trigger_problems
    problems += _check_notify(fields.notify)
    problems += _check_step_timeouts(fields)
    if around is not None:
        problems += [] if trigger_problems else _check_schedule(fields, around)
    name_at = len(problems)  # a taken name is listed here, after the schedule's mistakes
    problems += check_task_secrets(fields)
    channel_problems, channel_warnings = await check_channels(fields)
    problems += channel_problems
    if around is not None and (problems or not around.name_on_write):
        problems[name_at:name_at] = await check_name(fields, around)
    if problems:
        raise InvalidInputs(problems)
    if around is None:
        return []
    return await readiness_warnings(fields, around) + channel_warnings


async def validate_steps(steps: list[Step], catalog: StepCatalog) -> list[InvalidInput]:
    problems: list[InvalidInput] = []
    seen: set[str] = set()
    for i, step in enumerate(steps):
        where = f"steps[{i}]"
        if step.id in seen:
            problems.append(
                InvalidInput(f"{where}.id", step.id, "Step ids must be unique; rename this one.")
            )
        references = _check_references(where, step, seen, [s.id for s in steps])
        problems += references
        problems += check_flow(where, step, seen)
        seen.add(step.id)
        info = await catalog.find(step.tool)
        if info is None:
            problems.append(await _unknown_tool(where, step.tool, catalog))
            continue
        problems += check_args(where, step.args, info, catalog)
        problems += await check_agent_tools(where, step, catalog)
        if not references:
            tool = catalog.builtin(step.tool)
            problems += check_expressions(where, step, tool.raw_args if tool else frozenset())
    return problems


def _check_references(
    where: str, step: Step, earlier: set[str], all_ids: list[str]
) -> list[InvalidInput]:
    try:
        refs = referenced_steps(step.args)
    except TemplateError as exc:
        return [InvalidInput(f"{where}.args", step.args, f"Fix the template: {exc}")]
    problems = []
    for ref in sorted(refs - earlier):
        if ref == step.id:
            fix = "A step cannot use its own output; refer to an earlier step."
        elif ref in all_ids:
            fix = f"Step {ref!r} runs later; a step may only use the outputs of earlier steps."
        else:
            known = ", ".join(sorted(earlier)) or "none yet"
            fix = f"There is no step {ref!r}. Earlier steps: {known}."
        problems.append(InvalidInput(f"{where}.args", f"steps.{ref}", fix))
    return problems


async def _unknown_tool(where: str, name: str, catalog: StepCatalog) -> InvalidInput:
    names = [t.name for t in await catalog.list(include_upstream="/" in name)]
    hint = f"Built-in tools: {', '.join(sorted(n for n in names if '/' not in n))}."
    if "/" in name:
        hint = (
            f"No upstream MCP server offers {name!r}. Call list_step_tools to see the "
            "'<server>/<tool>' names available (upstream servers come from TASKLOOM_MCP_CONFIG)."
        )
    return InvalidInput(
        f"{where}.tool", name, f"Use a known step tool.{did_you_mean(name, names)} {hint}"
    )


def check_args(
    where: str, args: dict[str, Any], info: StepToolInfo, catalog: StepCatalog
) -> list[InvalidInput]:
    """Unknown and missing arguments always; types only for literal (non-template) values."""
    schema = info.input_schema
    props: dict[str, Any] = schema.get("properties", {})
    problems = []
    for key in args:
        if props and key not in props and schema.get("additionalProperties") is not True:
            problems.append(
                InvalidInput(
                    f"{where}.args.{key}",
                    args[key],
                    f"{info.name} takes no argument {key!r}.{did_you_mean(key, props)} "
                    f"It takes: {', '.join(props)}.",
                )
            )
    for key in schema.get("required", []):
        if key not in args:
            problems.append(
                InvalidInput(
                    f"{where}.args.{key}", None, f"{info.name} needs {key!r}; add it to args."
                )
            )
    tool = catalog.builtin(info.name)
    if tool is not None:
        problems += _check_literal_types(where, args, tool.args_model)
    if tool is not None and not problems and not _templated(args):
        problems += _check_whole_args(where, args, tool.args_model)
    return problems


def _check_literal_types(where: str, args: dict[str, Any], model: Any) -> list[InvalidInput]:
    problems = []
    for key, value in args.items():
        field = model.model_fields.get(key)
        if field is None or _templated(value):
            continue
        try:
            _field_adapter(model, key).validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            problems.append(InvalidInput(f"{where}.args.{key}", value, f"{reason}."))
    return problems


@lru_cache(maxsize=1024)
def _field_adapter(model: Any, key: str) -> TypeAdapter[Any]:
    """The validator of one argument of a step tool, built once per tool and argument (building
    one costs ~30 times what validating a value with it does)."""
    return TypeAdapter(model.model_fields[key].rebuild_annotation())


def _check_whole_args(where: str, args: dict[str, Any], model: Any) -> list[InvalidInput]:
    """Rules across arguments (e.g. json or body, not both), when every value is literal."""
    try:
        model.model_validate(args)
    except ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        return [InvalidInput(f"{where}.args", args, f"{reason}.")]
    return []


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return has_template(value)
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False


def _check_notify(notify: NotifyPolicy) -> list[InvalidInput]:
    url = notify.webhook_url
    if url and not url.startswith(("http://", "https://")) and "{" not in url:
        return [
            InvalidInput(
                "notify.webhook_url",
                url,
                "Give an http:// or https:// URL, or a secret reference '{{ secrets.NAME }}'.",
            )
        ]
    return []


def _check_size(fields: TaskFields) -> list[InvalidInput]:
    size = len(fields.model_dump_json().encode())  # compact UTF-8, as it is stored and sent
    if size > MAX_SPEC_BYTES:
        return [
            InvalidInput(
                "task",
                f"<{size} bytes>",
                f"A task definition may be at most {MAX_SPEC_BYTES} bytes; move large data "
                "into a step that fetches it.",
            )
        ]
    return []


def _check_trigger(fields: TaskFields) -> list[InvalidInput]:
    if fields.trigger is None:
        return []
    try:
        validate_trigger(fields.trigger)
    except InvalidInput as exc:
        return [exc]
    return []


def _check_step_timeouts(fields: TaskFields) -> list[InvalidInput]:
    if fields.timeout_s is None:
        return []
    return [
        InvalidInput(
            f"steps[{i}].timeout_s",
            step.timeout_s,
            f"It is longer than the whole task's timeout_s ({fields.timeout_s:g} s), which "
            "would stop the step first; shorten it or raise the task's timeout_s.",
        )
        for i, step in enumerate(fields.steps)
        if step.timeout_s is not None and step.timeout_s > fields.timeout_s
    ]


# -- will it ever fire? --------------------------------------------------------------------------


def _check_schedule(fields: TaskFields, around: Surroundings) -> list[InvalidInput]:
    problems: list[InvalidInput] = []
    if fields.trigger is not None and around.is_new("trigger"):
        problems += _check_zone(fields.trigger)
        problems += _check_first_fire(fields, around)
    if fields.end_at is not None and (around.is_new("end_at") or around.is_new("trigger")):
        problems += _check_end(fields, around)
    return problems


def _check_zone(trigger: Any) -> list[InvalidInput]:
    zone = getattr(trigger, "timezone", None)
    problem = legacy_zone_problem(zone) if zone else None
    if problem is None:
        return []
    return [InvalidInput("trigger.timezone", zone, f"{problem}.")]


def _first_fire(fields: TaskFields, around: Surroundings) -> datetime | None:
    tz = triggers.trigger_timezone(fields.trigger, around.settings.timezone)
    return triggers.next_fire_time(fields.trigger, after=around.now, tz=tz, anchor=around.now)


def _check_first_fire(fields: TaskFields, around: Surroundings) -> list[InvalidInput]:
    trigger = fields.trigger
    if not isinstance(trigger, CronTrigger | OnceTrigger) or _first_fire(fields, around):
        return []
    if isinstance(trigger, OnceTrigger):
        return [
            InvalidInput(
                "trigger.at",
                trigger.at.isoformat(),
                f"It is in the past (now: {around.now.isoformat(timespec='seconds')}), so the "
                "task would never fire. Give a future instant, or use run_task to run it now.",
            )
        ]
    return [
        InvalidInput(
            "trigger.cron",
            trigger.cron,
            f"It matches no date in the next {HORIZON_YEARS} years (e.g. 30 "
            "February), so the task would never fire. Check the day-of-month and month fields "
            "with preview_schedule.",
        )
    ]


def _check_end(fields: TaskFields, around: Surroundings) -> list[InvalidInput]:
    end = fields.end_at
    assert end is not None
    if end <= around.now:
        fix = (
            f"It is in the past (now: {around.now.isoformat(timespec='seconds')}), so the task "
            "would never fire. Give a future end_at, or clear it for no end."
        )
        return [InvalidInput("end_at", end.isoformat(), fix)]
    first = _first_fire(fields, around) if fields.trigger is not None else None
    if first is not None and first > end:
        fix = (
            f"The trigger's first fire is {first.isoformat()}, after end_at, so the task would "
            "never fire. Move end_at later or the trigger earlier."
        )
        return [InvalidInput("end_at", end.isoformat(), fix)]
    return []


async def check_name(fields: TaskFields, around: Surroundings) -> list[InvalidInput]:
    """The mistake of a name the owner's other task already has (ignoring case), if so."""
    if around.name_taken is None or not around.is_new("name"):
        return []
    other = await around.name_taken(fields.name)
    if other is None or other == around.task_id:
        return []
    return [
        InvalidInput(
            "name",
            fields.name,
            f"You already have a task with this name ({other}). Pick another name, or change "
            f"that task with update_task(task_id={other!r}, ...).",
        )
    ]
