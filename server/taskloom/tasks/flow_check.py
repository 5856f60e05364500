"""Checks of a step's `when` and `foreach` templates: they compile, read only earlier steps, and
name no secret (a condition or list computed from a secret would carry it past redaction)."""

from taskloom.domain.tasks import Step
from taskloom.domain.templates import TemplateError, referenced_secrets, referenced_steps
from taskloom.errors import InvalidInput


def check_flow(where: str, step: Step, earlier: set[str]) -> list[InvalidInput]:
    problems = []
    for name in ("when", "foreach"):
        source = getattr(step, name)
        if source is None:
            continue
        field = f"{where}.{name}"
        try:
            refs = referenced_steps({name: source}, where=name)
            secrets = referenced_secrets({name: source}, where=name)
        except TemplateError as exc:
            problems.append(InvalidInput(field, source, f"Fix the template: {exc}"))
            continue
        if secrets:
            fix = "when and foreach may not read secrets; test a step's output instead."
            problems.append(InvalidInput(field, source, fix))
        for ref in sorted(refs - earlier):
            fix = f"{name} may only read earlier steps' outputs; there is no earlier step {ref!r}."
            problems.append(InvalidInput(field, f"steps.{ref}", fix))
    return problems
