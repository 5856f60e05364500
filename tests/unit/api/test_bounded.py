"""Cutting answers to a byte budget: markers, water-filled shares, paths and slices."""

import json
import re
from typing import Any

import pytest

from taskloom.api.bounded import (
    FRAME,
    Shape,
    Stored,
    bound,
    cut,
    jmes_path,
    select,
    size_of,
    slice_of,
)
from taskloom.errors import InvalidInput

RUN = Stored("get_run", (("run_id", "run_x"),))


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ((), "@"),
        (("output",), "output"),
        (("output", "json", "items", 3, "name"), "output.json.items[3].name"),
        (("args", "a.b", "c d"), 'args."a.b"."c d"'),
        (("steps", 0, "2x"), 'steps[0]."2x"'),
    ],
)
def test_jmes_path_names_each_key(parts: tuple[Any, ...], expected: str) -> None:
    """A key path becomes a JMESPath expression; keys that are not identifiers are quoted."""
    assert jmes_path(parts) == expected


def test_a_value_that_fits_is_kept_whole() -> None:
    """Nothing is cut when the value fits its budget."""
    value = {"a": "x" * 100, "b": [1, 2, 3]}
    assert cut(value, 1000, RUN) == value


def test_a_long_string_becomes_a_marker_within_its_budget() -> None:
    """A long string is shown as its head, its length and the call that reads on."""
    shown = cut("é" * 50_000, 2000, RUN.child("output"))
    assert size_of(shown) <= 2000
    assert shown["truncated"] is True
    assert (shown["format"], shown["chars"]) == ("text", 50_000)
    offset = len(shown["head"])
    assert shown["more"] == f"get_run(run_id='run_x', path='output', offset={offset})"


def test_small_siblings_stay_whole_beside_a_cut_one() -> None:
    """Water-filling keeps small fields whole and cuts only the big one."""
    output = {"status": 200, "url": "http://x", "json": {"items": list(range(20_000))}}
    shown = cut({"output": output}, 4000, Shape(RUN.child))
    assert size_of(shown) <= 4000
    assert (shown["output"]["status"], shown["output"]["url"]) == (200, "http://x")
    items = shown["output"]["json"]["items"]
    assert items["format"] == "json"
    assert "path='output.json.items'" in items["more"]


def test_frame_lists_are_never_replaced_by_markers() -> None:
    """The frame of an answer stays; only stored values inside it become markers."""
    runs = [{"id": f"run_{i}", "output": "y" * 5000} for i in range(4)]
    places = [Shape(Stored("get_run", (("run_id", r["id"]),)).child) for r in runs]
    place = Shape(lambda key: Shape(lambda i: places[i]) if key == "runs" else FRAME)
    shown = bound({"runs": runs}, 6000, place, size_of)
    assert [r["id"] for r in shown["runs"]] == [r["id"] for r in runs]
    assert all(r["output"]["truncated"] for r in shown["runs"])
    assert size_of(shown) <= 6000


def test_slices_rebuild_the_value() -> None:
    """Slices taken from each end offset concatenate to the value's whole JSON text."""
    value = {"items": [{"n": i, "s": 'q"é\n' * 3} for i in range(500)]}
    parts, offset = [], 0
    while True:
        part = slice_of(value, offset, 10_000, 700)
        parts.append(part.text)
        offset = part.end
        if offset >= part.chars:
            break
    assert json.loads("".join(parts)) == value


def test_select_names_a_path_that_matches_nothing() -> None:
    """A path outside the record is refused with the field and what to do."""
    with pytest.raises(InvalidInput, match=re.escape("path: 'output.nope' is not valid")):
        select({"output": {"a": 1}}, "output.nope")
