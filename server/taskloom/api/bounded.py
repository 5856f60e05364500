"""Answers sized for a model's context window.

A tool answer or resource read is cut to a byte budget (TASKLOOM_MAX_ANSWER_BYTES) after it is
built: small fields stay whole, and each long stored value becomes a marker with its head, its
size and the exact call that pages the rest (`get_run(run_id=..., path=..., offset=...)`), so
nothing stored is lost. The budget is shared out like water: values smaller than their fair share
keep everything, the others split what is left.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from taskloom.errors import InvalidInput

# Below this a value's head is too short to help: its parent is shown as one marker instead.
MIN_SHARE = 512
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Key = str | int


def dumps(value: Any) -> str:
    """Compact JSON, as the MCP transports send it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def size_of(value: Any) -> int:
    return len(dumps(value).encode())


def text_of(value: Any) -> str:
    """The text that offsets count in: a string as it is, anything else as compact JSON."""
    return value if isinstance(value, str) else dumps(value)


def jmes_path(parts: tuple[Key, ...]) -> str:
    """A JMESPath expression for a key path, e.g. ('output', 'json', 'items', 0) ->
    'output.json.items[0]'; keys that are not identifiers are quoted."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        name = part if _IDENTIFIER.fullmatch(part) else json.dumps(part)
        text += f".{name}" if text else name
    return text or "@"


def call_text(tool: str, *args: tuple[str, Any]) -> str:
    """A tool call as a model would write it: get_run(run_id='run_x', offset=10)."""
    return f"{tool}({', '.join(f'{name}={value!r}' for name, value in args)})"


@dataclass(frozen=True)
class Stored:
    """A stored value, as the tool call that pages it: `tool(**ids, path=..., offset=...)`."""

    tool: str
    ids: tuple[tuple[str, str], ...]
    path: tuple[Key, ...] = ()

    def child(self, key: Key) -> "Place":
        return Stored(self.tool, self.ids, (*self.path, key))

    def more(self, offset: int) -> str:
        return call_text(self.tool, *self.ids, ("path", jmes_path(self.path)), ("offset", offset))


@dataclass(frozen=True)
class Shape:
    """The frame of an answer (ids, statuses, lists of items): never replaced by a marker;
    `inner` says where each child lives (default: more frame)."""

    inner: Callable[[Key], "Place"] | None = None

    def child(self, key: Key) -> "Place":
        return self.inner(key) if self.inner is not None else FRAME


Place = Stored | Shape
FRAME = Shape()


def marker(value: Any, cap: int, place: Stored) -> dict[str, Any]:
    """`value` as its head, size and the call for the rest, in at most about `cap` bytes."""
    text = text_of(value)
    shown: dict[str, Any] = {
        "truncated": True,
        "format": "text" if isinstance(value, str) else "json",
        "chars": len(text),
        "head": "",
        "more": place.more(len(text)),
    }
    room = cap - size_of(shown)
    count = fit(text, room)
    shown["head"] = text[:count]
    shown["more"] = place.more(count)
    return shown


def fit(text: str, room: int, start: int = 0) -> int:
    """How many characters of `text` from `start` fit in `room` bytes once JSON-escaped."""
    lo, hi = 0, min(len(text) - start, max(room, 0))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size_of(text[start : start + mid]) - 2 <= room:
            lo = mid
        else:
            hi = mid - 1
    return lo


def cut(value: Any, cap: int, place: Place) -> Any:
    """`value` in about `cap` bytes: whole if it fits, else with its long parts as markers."""
    if size_of(value) <= cap:
        return value
    if isinstance(value, dict | list):
        filled = _fill(value, cap, place)
        if filled is not None:
            return filled
    if isinstance(place, Stored) and isinstance(value, str | dict | list):
        return marker(value, cap, place)
    return value


def _fill(value: dict[str, Any] | list[Any], cap: int, place: Place) -> Any:
    """The container with its children cut to fair shares of `cap`; None when a stored
    container would only show slivers (it becomes one marker)."""
    pairs: list[tuple[Key, Any]] = (
        list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    )
    sizes = {key: size_of(child) for key, child in pairs}
    room = cap - size_of(_hollow(value)) + 4 * len(pairs)
    kept: dict[Key, Any] = {}
    ordered = sorted(pairs, key=lambda pair: sizes[pair[0]])
    for done, (key, child) in enumerate(ordered):
        share = room // (len(ordered) - done)
        if sizes[key] > share and share < MIN_SHARE and isinstance(place, Stored):
            return None
        kept[key] = child if sizes[key] <= share else cut(child, share, place.child(key))
        room -= size_of(kept[key])
    if isinstance(value, dict):
        result: Any = {key: kept[key] for key, _ in pairs}
    else:
        result = [kept[index] for index, _ in pairs]
    return result if isinstance(place, Shape) or size_of(result) <= cap else None


def _hollow(value: dict[str, Any] | list[Any]) -> Any:
    """The container with every child replaced by null: its own bytes."""
    if isinstance(value, dict):
        return dict.fromkeys(value)
    return [None] * len(value)


def bound(value: Any, limit: int, place: Place, measure: Callable[[Any], int]) -> Any:
    """`value` cut until `measure` (the bytes the client receives) is at most `limit`."""
    if measure(value) <= limit:  # the usual answer: nothing to cut, no walk over its values
        return value
    budget = limit
    shown = value
    for _ in range(5):
        shown = cut(value, budget, place)
        size = measure(shown)
        if size <= limit:
            return shown
        budget = max(int(budget * limit / size * 0.95) - 256, 256)
    return shown


def shorten_lists(
    data: dict[str, Any], limit: int, measure: Callable[[Any], int]
) -> dict[str, Any]:
    """Halves the answer's longest list until `measure` fits `limit`; `omitted` says how many
    items each list left out (for lists of items, not stored values, which `cut` pages)."""
    omitted: dict[str, int] = {}
    while measure(data) > limit:
        lists = {k: v for k, v in data.items() if isinstance(v, list) and v}
        if not lists:
            break
        key = max(lists, key=lambda k: size_of(lists[k]))
        keep = len(lists[key]) // 2
        omitted[key] = omitted.get(key, 0) + len(lists[key]) - keep
        data = {**data, key: lists[key][:keep], "omitted": omitted}
    return data


# -- paging one stored value -------------------------------------------------------------------


@dataclass(frozen=True)
class Slice:
    """Characters [offset, offset + len(text)) of one stored value's text."""

    format: str
    chars: int
    offset: int
    text: str

    @property
    def end(self) -> int:
        return self.offset + len(self.text)


def select(record: dict[str, Any], path: str | None) -> Any:
    """The value at `path` (a JMESPath expression, e.g. 'output.json.items') in `record`."""
    if not path:
        return record
    try:
        found = jmespath.search(path, record)
    except JMESPathError as exc:
        raise InvalidInput(
            "path", path, f"is not a valid path ({exc}); copy the path from the answer's marker."
        ) from exc
    if found is None:
        raise InvalidInput(
            "path", path, "matches nothing here; copy the path from the answer's marker."
        )
    return found


def slice_of(value: Any, offset: int, length: int, room: int) -> Slice:
    """Up to `length` characters of the value's text from `offset`, at most `room` bytes."""
    text = text_of(value)
    if offset > len(text):
        raise InvalidInput("offset", offset, f"is past the end; the value has {len(text)} chars.")
    count = min(length, fit(text, room, offset))
    kind = "text" if isinstance(value, str) else "json"
    return Slice(kind, len(text), offset, text[offset : offset + count])
