"""Checks of what a step's arguments say in Jinja2 and JMESPath, before anything runs: names a
template cannot know (`step.fetch`, `run.fire_at`) and JMESPath that does not parse.

Syntax errors and references to other steps are found by `runs/templating.py`; these checks
run after those pass.
"""

from collections.abc import Iterator
from functools import cache, lru_cache
from typing import Any

from jinja2 import Environment, TemplateSyntaxError, meta, nodes

from taskloom.domain.tasks import Step
from taskloom.domain.templates import has_template, template_leaves
from taskloom.errors import InvalidInput
from taskloom.tasks.suggest import did_you_mean

ROOTS = ("steps", "task", "run", "secrets", "event", "prev")
# The keys of the fixed mappings templates see (runs/runner.py builds them).
KEYS = {
    "task": ("id", "name", "timezone"),
    "run": ("id", "trigger", "attempt", "fire_time", "started_at"),
    "prev": ("id", "status", "output", "error", "summary", "fire_time", "finished_at"),
}
STEP_KEYS = ("output", "status", "error")
# What a `foreach` step's templates see besides ROOTS.
LOOP_NAMES = ("item", "index")


@cache
def _parser() -> Environment:
    return Environment()


@lru_cache(maxsize=1024)
def _parse(source: str) -> nodes.Template:
    return _parser().parse(source)


def check_expressions(where: str, step: Step, raw_args: frozenset[str]) -> list[InvalidInput]:
    """Problems in `step`'s templates (except the arguments its tool renders itself) and in an
    `extract` step's literal JMESPath expression."""
    problems = _check_jmespath(where, step)
    loop = LOOP_NAMES if step.foreach is not None else ()
    for path, source in template_leaves(
        {k: v for k, v in step.args.items() if k not in raw_args}, "args"
    ):
        try:
            parsed = _parse(source)
        except TemplateSyntaxError:
            continue  # reported with its line by the reference check
        problems += _unknown_roots(f"{where}.{path}", parsed, loop)
        problems += _unknown_keys(f"{where}.{path}", parsed)
    return problems


def uses_name(args: dict[str, Any], name: str) -> bool:
    """Whether any template in `args` reads the variable `name` (e.g. `event`)."""
    for _, source in template_leaves(args, "args"):
        try:
            if name in meta.find_undeclared_variables(_parse(source)):
                return True
        except TemplateSyntaxError:
            continue
    return False


def _check_jmespath(where: str, step: Step) -> list[InvalidInput]:
    expression = step.args.get("expression")
    if step.tool != "extract" or not isinstance(expression, str) or has_template(expression):
        return []
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(expression)
    except JMESPathError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fix = (
            f"It is not valid JMESPath: {reason}. Fix its syntax, e.g. 'items[0].name' or "
            '"items[?price < `20`].name" (https://jmespath.org/specification.html).'
        )
        return [InvalidInput(f"{where}.args.expression", expression, fix)]
    return []


def _unknown_roots(
    where: str, parsed: nodes.Template, loop: tuple[str, ...] = ()
) -> list[InvalidInput]:
    known = (*ROOTS, *loop, *_parser().globals)
    return [
        InvalidInput(
            where,
            name,
            f"Templates cannot see {name!r}.{did_you_mean(name, known)} They see "
            f"{', '.join(ROOTS)} (e.g. {{{{ steps.<step id>.output }}}}).",
        )
        for name in sorted(meta.find_undeclared_variables(parsed))
        if name not in known
    ]


def _unknown_keys(where: str, parsed: nodes.Template) -> list[InvalidInput]:
    problems = []
    for label, key, known in _fixed_lookups(parsed):
        if key not in known:
            fix = f"{label} has no {key!r}.{did_you_mean(key, known)} It has: {', '.join(known)}."
            problems.append(InvalidInput(where, f"{label}.{key}", fix))
    return problems


def _fixed_lookups(parsed: nodes.Template) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(`task`, `nme`, known keys) for each `task.nme`, and (`steps.x`, key, ...) for each
    `steps.x.key`, written with dots or with constant subscripts."""
    for node in parsed.find_all((nodes.Getattr, nodes.Getitem)):
        if not isinstance(node, nodes.Getattr | nodes.Getitem):
            continue
        key = _key(node)
        inner = node.node
        if key is None:
            continue
        if isinstance(inner, nodes.Name) and inner.name in KEYS:
            yield inner.name, key, KEYS[inner.name]
        elif isinstance(inner, nodes.Getattr | nodes.Getitem) and _is_steps(inner.node):
            step_id = _key(inner)
            if step_id is not None:
                yield f"steps.{step_id}", key, STEP_KEYS


def _key(node: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    value = node.arg.value if isinstance(node.arg, nodes.Const) else None
    return value if isinstance(value, str) else None


def _is_steps(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "steps"
