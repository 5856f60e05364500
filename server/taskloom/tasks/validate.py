"""Checks a task definition needs beyond its pydantic shape: tools exist, arguments fit their
schemas, references point at earlier steps, the trigger parses. All problems are reported at once,
each naming the field, the bad value and the fix."""

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from taskloom.errors import InvalidInput, InvalidInputs
from taskloom.runs.secret_use import check_task_secrets
from taskloom.runs.templating import TemplateError, has_template, referenced_steps
from taskloom.scheduling.triggers import validate_trigger
from taskloom.step_tools import StepCatalog, StepToolInfo
from taskloom.tasks.model import NotifyPolicy, Step, TaskFields

MAX_SPEC_BYTES = 256 * 1024


async def validate_task(fields: TaskFields, catalog: StepCatalog) -> None:
    problems: list[InvalidInput] = []
    problems += _check_size(fields)
    problems += await validate_steps(fields.steps, catalog)
    if fields.trigger is not None:
        try:
            validate_trigger(fields.trigger)
        except InvalidInput as exc:
            problems.append(exc)
    problems += _check_notify(fields.notify)
    problems += check_task_secrets(fields)
    if problems:
        raise InvalidInputs(problems)


async def validate_steps(steps: list[Step], catalog: StepCatalog) -> list[InvalidInput]:
    problems: list[InvalidInput] = []
    seen: set[str] = set()
    for i, step in enumerate(steps):
        where = f"steps[{i}]"
        if step.id in seen:
            problems.append(
                InvalidInput(f"{where}.id", step.id, "Step ids must be unique; rename this one.")
            )
        problems += _check_references(where, step, seen, [s.id for s in steps])
        seen.add(step.id)
        info = await catalog.find(step.tool)
        if info is None:
            problems.append(await _unknown_tool(where, step.tool, catalog))
        else:
            problems += check_args(where, step.args, info, catalog)
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
    names = [t.name for t in await catalog.list(include_upstream=False)]
    hint = f"Built-in tools: {', '.join(sorted(names))}."
    if "/" in name:
        hint = (
            f"No upstream MCP server offers {name!r}. Call list_step_tools to see the "
            "'<server>/<tool>' names available (upstream servers come from TASKLOOM_MCP_CONFIG)."
        )
    return InvalidInput(f"{where}.tool", name, f"Use a known step tool. {hint}")


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
                    f"{info.name} takes no argument {key!r}; it takes: {', '.join(props)}.",
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
    return problems


def _check_literal_types(where: str, args: dict[str, Any], model: Any) -> list[InvalidInput]:
    problems = []
    for key, value in args.items():
        field = model.model_fields.get(key)
        if field is None or _templated(value):
            continue
        try:
            TypeAdapter(field.rebuild_annotation()).validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            problems.append(InvalidInput(f"{where}.args.{key}", value, f"{reason}."))
    return problems


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
    size = len(json.dumps(fields.model_dump(mode="json")))
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
