"""The Jinja2 environment templates run in: sandboxed, strict about undefined values, bounded.

Jinja2's sandbox blocks attribute tricks and caps `range()`, but not `"x" * 10**9` or `9 ** 9**9`,
which would stall the worker; those two operators are checked here.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

MAX_REPEAT_LENGTH = 1_000_000
MAX_EXPONENT = 1_000


class BoundedOperators:
    """Mixin for a Jinja2 sandbox: refuses `*` and `**` that would build huge values. Shared by
    the `render` tool and the runner's argument templates."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
            _check_repeat(right, left)
        else:
            _check_power(left, right)
        return super().call_binop(context, operator, left, right)  # type: ignore[misc]


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


def _check_repeat(sequence: Any, times: Any) -> None:
    sized = isinstance(sequence, str | bytes | list | tuple) and isinstance(times, int)
    if sized and len(sequence) * times > MAX_REPEAT_LENGTH:
        raise SecurityError(f"repeating a value {times} times would exceed {MAX_REPEAT_LENGTH}")


def _check_power(base: Any, exponent: Any) -> None:
    integers = isinstance(base, int) and isinstance(exponent, int)
    if integers and abs(base) > 1 and exponent > MAX_EXPONENT:
        raise SecurityError(f"{base} ** {exponent} is too large (exponent over {MAX_EXPONENT})")


@cache
def environment() -> BoundedEnvironment:
    """The shared environment: autoescape off (output is text, not HTML), undefined is an error."""
    return BoundedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
