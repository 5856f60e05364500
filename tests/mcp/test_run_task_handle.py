"""run_task as an MCP background task (TASKLOOM_MCP_TASKS): a handle for clients that declare the
tasks extension, the usual waiting answer for clients that do not."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP

from taskloom.app import build_server
from taskloom.services import Services, build_services
from tests.conftest import make_settings
from tests.mcp.conftest import eventually


@pytest.fixture
def tasked(tmp_path: Path) -> tuple[FastMCP, Services]:
    settings = make_settings(tmp_path, mcp_tasks=True, shutdown_grace_s=0)
    services = build_services(settings)
    return build_server(services), services


@pytest.fixture
async def modern(tasked: tuple[FastMCP, Services]) -> AsyncIterator[Client[Any]]:
    async with Client(tasked[0]) as client:
        yield client


async def make_task(client: Client[Any], seconds: float) -> str:
    args = {"name": "t", "steps": [{"id": "p", "tool": "wait", "args": {"seconds": seconds}}]}
    answer = (await client.call_tool("create_task", args)).structured_content
    assert answer is not None
    return str(answer["task"]["id"])


async def test_a_tasks_aware_client_gets_a_handle_that_yields_the_run(
    modern: Client[Any],
) -> None:
    """A tasks-aware call returns a handle at once; its result is the finished run."""
    from fastmcp_tasks import call_tool_task

    task_id = await make_task(modern, 0.2)
    handle = await call_tool_task(modern, "run_task", {"task_id": task_id})
    assert handle.task_id
    result = await handle.result()
    run = result.structured_content["run"]  # type: ignore[index]
    assert run["status"] == "succeeded"
    assert [s["status"] for s in run["steps"]] == ["succeeded"]


async def test_cancelling_the_handle_cancels_the_run(modern: Client[Any]) -> None:
    """Cancelling the MCP task cancels the Taskloom run behind it."""
    from fastmcp_tasks import call_tool_task

    task_id = await make_task(modern, 30)
    handle = await call_tool_task(modern, "run_task", {"task_id": task_id})

    async def started() -> dict[str, Any] | None:
        runs = (await modern.call_tool("task_history", {"task_id": task_id})).structured_content
        return runs["runs"][0] if runs and runs["runs"] else None  # type: ignore[index]

    await eventually(started)
    await handle.cancel()

    async def cancelled() -> dict[str, Any] | None:
        run = await started()
        return run if run and run["status"] == "cancelled" else None

    assert (await eventually(cancelled))["status"] == "cancelled"


async def test_a_legacy_client_still_waits_with_progress(
    tasked: tuple[FastMCP, Services],
) -> None:
    """A client of the 2025-11-25 era gets the waiting answer and progress notifications."""
    progress: list[Any] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with Client(tasked[0], mode="legacy", progress_handler=on_progress) as client:
        task_id = await make_task(client, 0)
        answer = (await client.call_tool("run_task", {"task_id": task_id})).structured_content
    assert answer is not None
    assert answer["run"]["status"] == "succeeded"
    assert progress
