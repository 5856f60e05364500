"""JSON columns: what a run's output may hold comes back as it went in, on both databases;
a value that is no JSON is refused with its own error, and nothing is saved."""

import math
from typing import Any

import pytest
from pydantic_core import PydanticSerializationError

from taskloom.store.dialects import json_text
from taskloom.store.sql import SqlStore
from tests.store.factories import make_run, stored_task

AWKWARD: dict[str, Any] = {
    "accents": "café, naïve, 東京",
    "lone surrogate": "\ud800 from a JSON escape upstream",  # not encodable as UTF-8
    "nested": {"list": [1, 2.5, None, True], "empty": {}},
    "big": 2**70,
}


def test_json_text_is_compact_and_escapes_what_utf8_cannot_hold() -> None:
    assert json_text({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    assert json_text({"s": "\ud800"}) == '{"s": "\\ud800"}'  # json.dumps' escape
    assert json_text({"x": math.inf}) == '{"x":Infinity}'  # as json.dumps writes it
    with pytest.raises(PydanticSerializationError):
        json_text({"x": object()})


async def test_awkward_outputs_come_back_as_stored(sql_store: SqlStore) -> None:
    task = await stored_task(sql_store)
    run = make_run(task).model_copy(update={"output": AWKWARD})
    await sql_store.add_run(run, owner=task.owner)
    got = await sql_store.get_run(run.id)
    assert got is not None
    assert got.output == AWKWARD


async def test_a_value_that_is_no_json_is_refused_as_itself(sql_store: SqlStore) -> None:
    task = await stored_task(sql_store)
    run = make_run(task).model_copy(update={"output": {"x": object()}})
    with pytest.raises(PydanticSerializationError):
        await sql_store.add_run(run, owner=task.owner)
    assert await sql_store.get_run(run.id) is None
