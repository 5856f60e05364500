"""The Jinja2 environment templates run in: sandboxed, strict about undefined values, bounded.

Jinja2's sandbox blocks attribute tricks and caps `range()`, but not `"x" * 10**9`, `9 ** 9**9`,
`'a'|center(10**9)` or `'%0999999999d' % 1`, each of which builds a huge value from tiny input.
Those operators, filters and string methods are checked here before they allocate anything; the
worker process a template runs in bounds the rest (memory, CPU time) at the OS level.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, filters, pass_environment, pass_eval_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

MAX_REPEAT_LENGTH = 1_000_000
MAX_EXPONENT = 1_000
MAX_JSON_INDENT = 64
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?")
_NUMBER = re.compile(r"\d+")


class BoundedOperators:
    """Mixin for a Jinja2 sandbox: refuses operators, filters and string methods that would
    build huge values. Shared by the `render` tool and the runner's argument templates."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters.update(BOUNDED_FILTERS)  # type: ignore[attr-defined]

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            check_repeat(left, right)
            check_repeat(right, left)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        elif operator == "+":
            _check_concat(left, right)
        return super().call_binop(context, operator, left, right)  # type: ignore[misc]

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja2 swaps `str.format` for its own formatter at lookup; this checks widths first."""
        wrapped: Callable[..., str] | None = super().wrap_str_format(value)  # type: ignore[misc]
        if wrapped is None:
            return None
        template = str(value.__self__)

        def checked(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if args and isinstance(args[0], dict) else {}
            _check_format(template, (*args, *mapping.values()), kwargs)
            return wrapped(*args, **kwargs)

        return checked

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(owner, getattr(obj, "__name__", ""), args, kwargs)
        return super().call(context, obj, *args, **kwargs)  # type: ignore[misc]


class KeysBeforeAttributes:
    """Mixin for a Jinja2 sandbox: `a.b` on a mapping is its key `b` when there is one, before
    any attribute. JSON has keys named `items`, `keys` or `values`, and an author who writes
    `output.json.items` means the key, never the dict's method. Other lookups keep the sandbox's
    own checks."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                pass
        return super().getattr(obj, attribute)  # type: ignore[misc]


class BoundedEnvironment(KeysBeforeAttributes, BoundedOperators, SandboxedEnvironment):
    """The `render` tool's environment."""


def refuse(what: str) -> SecurityError:
    return SecurityError(
        f"{what} would build more than {MAX_REPEAT_LENGTH:,} items or characters (a fixed "
        "limit); build the value in smaller pieces"
    )


def weight(value: Any, budget: int) -> int:
    """The size of `value` in characters and items, counted through nested containers (shared
    references counted each time, as serialising would); stops counting past `budget`."""
    if isinstance(value, str | bytes):
        return len(value)
    if not isinstance(value, list | tuple | dict):
        return 1
    total = len(value)
    items: Iterable[Any] = value.items() if isinstance(value, dict) else value
    for item in items:
        if total > budget:
            break
        total += weight(item, budget - total)
    return total


def check_repeat(sequence: Any, times: Any) -> None:
    """Refuses `sequence * times` when the result, nested values included, is too big."""
    if not isinstance(sequence, str | bytes | list | tuple) or not isinstance(times, int):
        return
    if times <= 1:
        return
    budget = MAX_REPEAT_LENGTH // times
    if weight(sequence, budget) > budget:
        raise refuse(f"repeating a value {times:,} times")


def _check_power(base: Any, exponent: Any) -> None:
    integers = isinstance(base, int) and isinstance(exponent, int)
    if integers and abs(base) > 1 and exponent > MAX_EXPONENT:
        raise SecurityError(f"{base} ** {exponent} is too large (exponent over {MAX_EXPONENT})")


def _check_concat(left: Any, right: Any) -> None:
    both_text = isinstance(left, str) and isinstance(right, str)
    both_lists = isinstance(left, list | tuple) and isinstance(right, list | tuple)
    if (both_text or both_lists) and len(left) + len(right) > MAX_REPEAT_LENGTH:
        raise refuse("joining two values with +")


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_REPEAT_LENGTH:
        raise refuse(f"{what} to width {width:,}")


def _check_percent(template: str, values: Any) -> None:
    """`template % values`: refuses widths and precisions over the limit, given or `*`."""
    for match in _PERCENT_SPEC.finditer(template):
        for group in match.groups():
            if group == "*":
                items = values if isinstance(values, tuple) else (values,)
                for item in items:
                    _check_width(item, "formatting with %")
            elif group is not None:
                _check_width(int(group), "formatting with %")


def _check_format(template: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """`template.format(...)`: refuses widths over the limit, literal or nested (`{:{w}}`)."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # str.format reports the syntax error itself
    for _, _, spec, _ in fields:
        if not spec:
            continue
        for number in _NUMBER.findall(spec):
            _check_width(int(number), "formatting with format()")
        if "{" in spec:
            for value in (*args, *kwargs.values()):
                _check_width(value, "formatting with format()")


def _check_join(separator: str, value: Any) -> list[Any]:
    items = list(value)
    budget = MAX_REPEAT_LENGTH - len(separator) * max(len(items) - 1, 0)
    if budget < 0 or weight(items, budget) > budget:
        raise refuse(f"joining {len(items):,} items")
    return items


def _check_replace(text: str, old: str, new: str, count: Any = None) -> None:
    if len(new) <= len(old):
        return
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    if len(text) + found * (len(new) - len(old)) > MAX_REPEAT_LENGTH:
        raise refuse(f"replacing {found:,} occurrences")


def _check_str_method(text: str, name: str, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
    first = args[0] if args else next(iter(kw.values()), None)
    if name in ("center", "ljust", "rjust", "zfill"):
        _check_width(first, name)
    elif name == "expandtabs" and isinstance(first, int):
        _check_width(text.count("\t") * first + len(text), name)
    elif name == "join" and args:
        _check_join(text, args[0])
    elif name == "replace" and len(args) >= 2:
        _check_replace(text, str(args[0]), str(args[1]), args[2] if len(args) > 2 else None)


# -- bounded versions of Jinja2's filters ------------------------------------------------------


def _center(value: str, width: int = 80) -> str:
    _check_width(width, "center")
    return filters.do_center(value, width)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    lines = str(s).count("\n") + 1
    size = width if isinstance(width, int) else len(width)
    _check_width(len(str(s)) + lines * size, "indent")
    return filters.do_indent(s, width, first, blank)


@pass_environment
def _wordwrap(
    environment: Any,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    lines = len(s) // max(width, 1) + s.count("\n") + 1
    separator = len(wrapstring) if wrapstring else 1
    _check_width(len(s) + lines * separator, "wordwrap")
    return filters.do_wordwrap(
        environment, s, width, break_long_words, wrapstring, break_on_hyphens
    )


@pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = _check_join(str(d), value)
    return str(filters.do_join(eval_ctx, items, d, attribute))


@pass_eval_context
def _replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    _check_replace(str(s), str(old), str(new), count)
    return filters.do_replace(eval_ctx, s, old, new, count)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_percent(str(value), tuple(args) if args else kwargs)
    return filters.do_format(value, *args, **kwargs)


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Any:
    _check_width(linecount, "batch")
    return filters.do_batch(value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    _check_width(slices, "slice")
    return filters.do_slice(value, slices, fill_with)


def check_json_indent(indent: Any) -> None:
    if isinstance(indent, int) and indent > MAX_JSON_INDENT:
        raise SecurityError(f"tojson indent {indent} is over {MAX_JSON_INDENT} (a fixed limit)")


@pass_eval_context
def _tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> Any:
    check_json_indent(indent)
    return str(filters.do_tojson(eval_ctx, value, indent))


BOUNDED_FILTERS: dict[str, Any] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "join": _join,
    "replace": _replace,
    "format": _format,
    "batch": _batch,
    "slice": _slice,
    "tojson": _tojson,
}


@cache
def environment() -> BoundedEnvironment:
    """The shared environment: autoescape off (output is text, not HTML), undefined is an error."""
    return BoundedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
