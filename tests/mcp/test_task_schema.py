"""The task tools' input schemas are the task model's, as clients see them, and every limit they
advertise is one validation enforces."""

import copy
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.utilities.json_schema import compress_schema, dereference_refs
from pydantic import BaseModel

from taskloom.api.schemas import compact_parameters, descriptions
from taskloom.domain.tasks import TaskPatch, TaskSpec
from tests.mcp.conftest import WAIT_STEP, task_args

Path = tuple[str | int, ...]


def derived(
    model: type[BaseModel], *, brief: bool = False, known: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The model's JSON schema as the server presents a tool's arguments: references inlined,
    titles and the model's own docstring left out, then compacted (`brief`: without the docs
    create_task already gives, `known`)."""
    schema = compress_schema(dereference_refs(model.model_json_schema()), prune_titles=True)
    schema.pop("description", None)
    return compact_parameters(schema, brief=brief, known=known)


async def input_schema(client: Client[Any], name: str) -> dict[str, Any]:
    tools = {tool.name: tool for tool in await client.list_tools()}
    return dict(tools[name].input_schema)


async def test_create_task_advertises_the_task_spec(client: Client[Any]) -> None:
    """create_task's input schema, as a client lists it, is TaskSpec's schema."""
    assert await input_schema(client, "create_task") == derived(TaskSpec)


async def test_update_task_advertises_the_task_patch(client: Client[Any]) -> None:
    """update_task's input schema, as a client lists it, is task_id beside TaskPatch's schema
    (its argument docs left to create_task's)."""
    schema = await input_schema(client, "update_task")
    task_id = schema["properties"].pop("task_id")
    assert task_id["type"] == "string"
    assert schema["required"] == ["task_id"]
    del schema["required"]
    assert schema == derived(TaskPatch, brief=True, known=descriptions(derived(TaskSpec)))


def beyond_limits(schema: dict[str, Any], path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """A value just past each limit `schema` states (length, bound, item count), with where."""
    yield from ((path, value) for value in _past(schema))
    for name, prop in schema.get("properties", {}).items():
        yield from beyond_limits(prop, (*path, name))
    if isinstance(schema.get("items"), dict):
        yield from beyond_limits(schema["items"], (*path, 0))


def _past(schema: dict[str, Any]) -> Iterator[Any]:
    step = 1 if "integer" in schema.get("type", ()) else 0.5
    bounds = {"maximum": step, "minimum": -step, "exclusiveMaximum": 0, "exclusiveMinimum": 0}
    yield from (schema[key] + past for key, past in bounds.items() if key in schema)
    if "maxLength" in schema:
        yield "x" * (schema["maxLength"] + 1)
    if schema.get("minLength", 0) > 0:
        yield ""
    if "maxItems" in schema:
        yield [{**WAIT_STEP, "id": f"s{i}"} for i in range(schema["maxItems"] + 1)]
    if schema.get("minItems", 0) > 0:
        yield []


def placed(base: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    """`base` with `value` at `path` (made where missing: a step, a retry policy...)."""
    args = copy.deepcopy(base)
    here: Any = args
    for key, after in itertools.pairwise(path):
        if isinstance(key, int):
            here = here[key]
            continue
        here = here.setdefault(key, [dict(WAIT_STEP)] if isinstance(after, int) else {})
    here[path[-1]] = value
    return args


@pytest.mark.parametrize("tool", ["create_task", "update_task"])
async def test_a_value_past_each_advertised_limit_is_refused_naming_it(
    client: Client[Any], tool: str
) -> None:
    """Each limit the tool's schema advertises is enforced: a value just past it is refused,
    with the field named, and nothing is stored."""
    created = await client.call_tool("create_task", task_args(name=f"limits {tool}"))
    task_id = created.structured_content["task"]["id"]  # type: ignore[index]
    base = task_args(name="within limits") if tool == "create_task" else {"task_id": task_id}
    cases = list(beyond_limits(await input_schema(client, tool)))
    # name, description, steps (count, tool, timeout), windows, timeouts, retry, notify, summary
    assert {p[0] for p, _ in cases} >= {
        "name", "description", "steps", "catchup_window_s", "timeout_s", "pause_on_failure",
        "max_runs", "retry", "notify", "summary",
    }  # fmt: skip
    for path, value in cases:
        result = await client.call_tool(tool, placed(base, path, value), raise_on_error=False)
        where = ".".join(str(p) for p in path)
        assert result.is_error, (where, value)
        message = "\n".join(getattr(c, "text", "") for c in result.content)
        assert f"- {where}: " in message, (where, message)
    listed = await client.call_tool("list_tasks", {})
    names = [t["name"] for t in listed.structured_content["tasks"]]  # type: ignore[index]
    assert names == [f"limits {tool}"]
