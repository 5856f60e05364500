"""Rendering a step's `args`: Jinja2 templates over earlier steps' outputs, in a sandbox.

A string that is exactly one expression (`"{{ steps.fetch.output.json }}"`) keeps its type; other
templates render to text; other values pass through. Templates see secret values; `Secrets.redact`
hides them in whatever is stored or logged afterwards (README, "Limits and isolation").
"""

import functools
import json
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import quote, quote_plus

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing
from markupsafe import Markup

from taskloom.errors import TaskloomError
from taskloom_tools.template_sandbox import (
    BoundedOperators,
    KeysBeforeAttributes,
    check_json_indent,
)

MAX_RENDERED_CHARS = 1024 * 1024
MIN_SECRET_LENGTH = 4
_SHOWN_CHARS = 200
_SHOWN_KEYS = 20
_SINGLE_EXPRESSION = re.compile(r"\A\{\{[-+]?(.*?)[-+]?\}\}\Z", re.DOTALL)


class TemplateError(TaskloomError):
    """A step's args template cannot be parsed or evaluated; the message says where and why."""

    def __init__(
        self, detail: str, *, step_id: str = "", path: str = "", expression: str = ""
    ) -> None:
        where = ", ".join(part for part in (f"step {step_id!r}" if step_id else "", path) if part)
        shown = f"template {_clip(expression)!r} failed: " if expression else ""
        super().__init__(f"{where}: {shown}{detail}" if where else f"{shown}{detail}")
        self.step_id = step_id
        self.path = path
        self.expression = expression
        self.detail = detail


class Secrets:
    """Resolved secret values by name; `redact` hides them in what is stored or logged."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self._names = _names_by_form(self._values)
        forms = sorted(self._names, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, forms))) if forms else None

    def __repr__(self) -> str:
        return f"Secrets(names={sorted(self._values)!r})"

    @property
    def mapping(self) -> Mapping[str, str]:
        """The values by name, read-only: what templates see as `secrets`."""
        return MappingProxyType(self._values)

    def redact(self, value: Any) -> Any:
        """A copy of `value` with every secret value (>= 4 chars) in its strings replaced by
        `[secret:NAME]`, through nested dicts (keys too), lists and tuples."""
        if self._pattern is None:
            return value  # no secret to hide: skip walking a large value
        if isinstance(value, str):
            return self._redact_text(value)
        if isinstance(value, Mapping):
            return {self.redact(key): self.redact(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.redact(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.redact(item) for item in value)
        return value

    def _redact_text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda match: f"[secret:{self._names[match.group(0)]}]", text)


def has_template(value: str) -> bool:
    """Whether `value` contains Jinja2 syntax and so is rendered rather than passed through."""
    return "{{" in value or "{%" in value


def any_template(value: Any) -> bool:
    """Whether any string inside `value` (dicts and lists walked) is a template."""
    return next(template_leaves(value, ""), None) is not None


def resolve_args(
    args: dict[str, Any],
    context: Mapping[str, Any],
    *,
    step_id: str,
    secrets: Secrets | None = None,
) -> dict[str, Any]:
    """`args` with every template string rendered against `context` (steps, task, run, secrets,
    event). `secrets` fills `context["secrets"]` when that is absent. Raises `TemplateError`, its
    message redacted of secret values."""
    variables = dict(context)
    if secrets is not None:
        variables.setdefault("secrets", secrets.mapping)
    variables.setdefault("secrets", {})
    scope = _Scope(step_id, variables, secrets)
    return {key: _resolve(value, f"args.{key}", scope) for key, value in args.items()}


def referenced_steps(value: Any, *, step_id: str = "", where: str = "args") -> set[str]:
    """The step ids the templates in `value` name as `steps.X` or `steps['X']`. Raises
    `TemplateError` for a template that does not compile (`where` labels the root of the path)."""
    return _referenced("steps", value, step_id, where)


def used_steps(value: Any) -> set[str] | None:
    """The step ids the templates in `value` read (`steps.X`, `steps['X']`), or None when one
    uses `steps` otherwise (a loop over it, a dynamic key, a syntax error): then all of them."""
    names: set[str] = set()
    for _, source in template_leaves(value, "args"):
        try:
            template = _parse(source)
        except TemplateSyntaxError:
            return None
        loads = [n for n in template.find_all(nodes.Name) if n.name == "steps" and n.ctx == "load"]
        lookups = template.find_all((nodes.Getattr, nodes.Getitem))
        keys = [_static_key(n) for n in lookups if isinstance(n, nodes.Getattr | nodes.Getitem)]
        direct = [key for node, key in keys if _is_name(node, "steps")]
        if len(direct) != len(loads) or None in direct:
            return None
        names.update(key for key in direct if key is not None)
    return names


def _static_key(node: nodes.Getattr | nodes.Getitem) -> tuple[nodes.Node, str | None]:
    if isinstance(node, nodes.Getattr):
        return node.node, node.attr
    key = node.arg.value if isinstance(node.arg, nodes.Const) else None
    return node.node, key if isinstance(key, str) else None


def referenced_secrets(value: Any, *, step_id: str = "", where: str = "args") -> set[str]:
    """The secret names the templates in `value` use as `secrets.X` or `secrets['X']`."""
    return _referenced("secrets", value, step_id, where)


class _Undefined(StrictUndefined):
    """Fails on any use, saying what the object that lacked the key did have."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint is not None or self._undefined_obj is missing:
            return super()._undefined_message
        owner = type(self._undefined_obj).__name__
        name = self._undefined_name
        return f"{owner} has no {_member(name)} {name!r}; {_available(self._undefined_obj)}"


class _Environment(KeysBeforeAttributes, BoundedOperators, ImmutableSandboxedEnvironment):
    """The sandbox, plus bounds on the two operators that can build huge values from tiny input,
    with a mapping's keys looked up before its attributes."""


@functools.cache
def _environment() -> _Environment:
    env = _Environment(undefined=_Undefined, keep_trailing_newline=True, autoescape=False)
    env.filters["tojson"] = _tojson
    env.filters["fromjson"] = _fromjson
    return env


def _tojson(value: Any, indent: int | None = None) -> str:
    # Jinja's own tojson escapes <, >, & and ' for HTML; args go to APIs, not pages.
    check_json_indent(indent)
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def _fromjson(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"fromjson: the value is not JSON ({exc})") from None


@functools.lru_cache(maxsize=1024)
def _parse(source: str) -> nodes.Template:
    return _environment().parse(source)


@functools.lru_cache(maxsize=1024)
def _compile(source: str) -> Template | TemplateExpression:
    env = _environment()
    inner = _single_expression(source)
    if inner is not None:
        # Parentheses let a bare tuple (`{{ a, b }}`) parse as one expression, as in a template.
        return env.compile_expression(f"({inner})", undefined_to_none=False)
    return env.from_string(source)


def _single_expression(source: str) -> str | None:
    match = _SINGLE_EXPRESSION.match(source)
    if match is None:
        return None
    body = _parse(source).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    return None if isinstance(body[0].nodes[0], nodes.TemplateData) else match.group(1)


class _Scope(NamedTuple):
    step_id: str
    variables: dict[str, Any]
    secrets: Secrets | None

    def error(self, exc: Exception, path: str, source: str) -> TemplateError:
        known = dict(self.secrets.mapping) if self.secrets else {}
        values = self.variables["secrets"]
        if isinstance(values, Mapping):
            known.update((k, v) for k, v in values.items() if isinstance(v, str))
        redactor = Secrets(known)
        detail = redactor.redact(_detail(exc, source, self.variables))
        shown = redactor.redact(source)
        return TemplateError(detail, step_id=self.step_id, path=path, expression=shown)


def _resolve(value: Any, path: str, scope: _Scope) -> Any:
    if isinstance(value, str):
        return _resolve_text(value, path, scope) if has_template(value) else value
    if isinstance(value, dict):
        return {key: _resolve(item, f"{path}.{key}", scope) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, f"{path}[{index}]", scope) for index, item in enumerate(value)]
    return value


def _resolve_text(source: str, path: str, scope: _Scope) -> Any:
    try:
        return _evaluate(source, scope.variables)
    except MemoryError:
        raise  # a worker's memory limit: the sandbox names it with its setting
    except Exception as exc:  # any failure here is the template's, reported as data
        # `from None`: the original's message may hold a secret value.
        raise scope.error(exc, path, source) from None


def _evaluate(source: str, variables: Mapping[str, Any]) -> Any:
    compiled = _compile(source)
    if isinstance(compiled, TemplateExpression):
        return _native(compiled(variables))
    size = 0
    parts = []
    for chunk in compiled.generate(variables):
        size += len(chunk)
        if size > MAX_RENDERED_CHARS:
            raise SecurityError(f"the rendered text is over the {MAX_RENDERED_CHARS} char limit")
        parts.append(chunk)
    return "".join(parts)


def _native(value: Any) -> Any:
    """A plain copy of an expression's value: JSON-like containers, no Undefined hidden inside."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, str) and len(value) > MAX_RENDERED_CHARS:
        raise SecurityError(f"the value is over the {MAX_RENDERED_CHARS} char limit")
    if isinstance(value, dict):
        return {key: _native(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_native(item) for item in value]
    return value


class _Missing(NamedTuple):
    key: Any
    text: str


def _detail(exc: Exception, source: str, variables: Mapping[str, Any]) -> str:
    if isinstance(exc, TemplateSyntaxError):
        return _syntax_detail(exc, source)
    if isinstance(exc, SecurityError):
        return f"not allowed: {exc}"
    if isinstance(exc, UndefinedError):
        return _explain_missing(source, variables, str(exc)) or str(exc)
    return str(exc) or type(exc).__name__


def _syntax_detail(exc: TemplateSyntaxError, source: str) -> str:
    line = f" (line {exc.lineno})" if "\n" in source else ""
    return f"syntax error: {exc.message}{line}"


def _explain_missing(source: str, variables: Mapping[str, Any], message: str) -> str | None:
    """Names the failing path (`steps.fetch.output has no attribute 'jsn'`) when one of the
    template's plain lookup chains fails at the key Jinja complained about."""
    template = _parse(source)
    local = {name.name for name in template.find_all(nodes.Name) if name.ctx != "load"}
    for root, segments in _chains(template):
        missing_key = None if root in local else _walk(root, segments, variables)
        if missing_key is not None and repr(missing_key.key) in message:
            return missing_key.text
    return None


def _chains(template: nodes.Template) -> Iterator[tuple[str, list[Any]]]:
    """Each `name.attr[const]...` lookup chain in the template, as (name, keys)."""
    for node in template.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        keys: list[Any] = []
        while isinstance(node, nodes.Getattr | nodes.Getitem):
            if isinstance(node, nodes.Getattr):
                keys.append(node.attr)
            elif isinstance(node.arg, nodes.Const):
                keys.append(node.arg.value)
            else:
                break
            node = node.node
        if isinstance(node, nodes.Name):
            yield node.name, keys[::-1]


def _walk(root: str, keys: list[Any], variables: Mapping[str, Any]) -> _Missing | None:
    if root not in variables:
        return _Missing(root, f"{root!r} is undefined; available: {', '.join(variables)}")
    env = _environment()
    value, label = variables[root], root
    for key in keys:
        found = env.getattr(value, key) if isinstance(key, str) else env.getitem(value, key)
        if isinstance(found, Undefined):
            return _Missing(key, _missing_text(label, key, value))
        value, label = found, f"{label}.{key}" if isinstance(key, str) else f"{label}[{key!r}]"
    return None


def _missing_text(label: str, key: Any, container: Any) -> str:
    if label == "secrets":
        return f"secret {key!r} is not set: set TASKLOOM_SECRET_{key} or add it to the secrets file"
    text = f"{label} has no {_member(key)} {key!r}; {_available(container)}"
    return text + " (a step sees only the steps before it)" if label == "steps" else text


def _member(key: Any) -> str:
    return "attribute" if isinstance(key, str) else "item"


def _available(value: Any) -> str:
    if isinstance(value, Mapping):
        keys = [str(key) for key in list(value)[:_SHOWN_KEYS]]
        more = ", ..." if len(value) > _SHOWN_KEYS else ""
        return f"available: {', '.join(keys)}{more}" if keys else "it is empty"
    if isinstance(value, list | tuple):
        return f"it is a list of {len(value)} items"
    return "it is null" if value is None else f"it is a {type(value).__name__}"


def _referenced(root: str, value: Any, step_id: str, where: str) -> set[str]:
    names: set[str] = set()
    for path, source in template_leaves(value, where):
        try:
            _compile(source)  # also catches what only compiling finds, such as unknown filters
        except TemplateSyntaxError as exc:
            detail = _syntax_detail(exc, source)
            raise TemplateError(detail, step_id=step_id, path=path, expression=source) from None
        names |= _names_under(_parse(source), root)
    return names


def _names_under(template: nodes.Template, root: str) -> set[str]:
    names = {node.attr for node in template.find_all(nodes.Getattr) if _is_name(node.node, root)}
    for node in template.find_all(nodes.Getitem):
        key = node.arg.value if isinstance(node.arg, nodes.Const) else None
        if _is_name(node.node, root) and isinstance(key, str):
            names.add(key)
    return names


def _is_name(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name


def template_leaves(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Each template string in `value` (nested dicts and lists) with its path under `path`."""
    if isinstance(value, str) and has_template(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from template_leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from template_leaves(item, f"{path}[{index}]")


def _names_by_form(values: Mapping[str, str]) -> dict[str, str]:
    """Each form a secret can take in an output (as is, URL- or JSON-encoded) -> its name."""
    names: dict[str, str] = {}
    for name, value in sorted(values.items()):
        if len(value) < MIN_SECRET_LENGTH:
            continue
        forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
        for form in forms:
            names.setdefault(form, name)
    return names


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."
