"""The task file resource: `taskloom://tasks/{id}.yaml` hands a task over as the YAML that
`taskloom tasks apply` reads."""

from pathlib import Path
from typing import Any

from fastmcp import Client

from taskloom.app import build_server
from taskloom.services import build_services
from taskloom.tasks.files import read_documents
from tests.conftest import make_settings
from tests.mcp.conftest import task_args


async def test_task_file_resource_reads_as_an_appliable_task_file(
    client: Client[Any], tmp_path: Path
) -> None:
    """The YAML resource of a task is a task file with the task's own fields."""
    created = await client.call_tool("create_task", task_args(name="Digest as a file"))
    task_id = created.structured_content["task"]["id"]
    contents = await client.read_resource(f"taskloom://tasks/{task_id}.yaml")
    path = tmp_path / "digest.yaml"
    path.write_text(contents[0].text)
    (document,) = read_documents(path)
    assert document.spec.name == "Digest as a file"
    assert document.spec.trigger is not None
    assert document.spec.trigger.model_dump(exclude_none=True) == task_args()["trigger"]


async def test_task_json_resource_still_reads_beside_the_yaml_one(client: Client[Any]) -> None:
    """Registering the .yaml template leaves taskloom://tasks/{id} answering JSON."""
    created = await client.call_tool("create_task", task_args(name="Digest as JSON"))
    task_id = created.structured_content["task"]["id"]
    contents = await client.read_resource(f"taskloom://tasks/{task_id}")
    assert contents[0].text.startswith("{")
    assert task_id in contents[0].text


async def test_a_task_file_longer_than_the_answer_budget_ends_with_where_to_read_on(
    tmp_path: Path,
) -> None:
    """A task file over TASKLOOM_MAX_ANSWER_BYTES is cut at a line and says how to read it all."""
    settings = make_settings(tmp_path, max_answer_bytes=4096)
    steps = [
        {"id": f"s{n}", "tool": "render", "args": {"template": "x" * 400, "data": {}}}
        for n in range(20)
    ]
    async with Client(build_server(build_services(settings))) as client:
        created = await client.call_tool("create_task", task_args(name="Long", steps=steps))
        task_id = created.structured_content["task"]["id"]
        read = await client.read_resource_mcp(f"taskloom://tasks/{task_id}.yaml")
    assert len(read.model_dump_json(by_alias=True, exclude_none=True).encode()) <= 4096
    text = read.contents[0].text  # type: ignore[union-attr]
    assert text.splitlines()[0] == "name: Long"
    assert text.endswith(f"read the task with get_task(task_id={task_id!r}).\n")
