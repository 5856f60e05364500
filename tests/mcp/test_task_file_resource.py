"""The task file resource: `taskloom://tasks/{id}.yaml` hands a task over as the YAML that
`taskloom tasks apply` reads."""

from pathlib import Path
from typing import Any

from fastmcp import Client

from taskloom.tasks.files import read_documents
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
