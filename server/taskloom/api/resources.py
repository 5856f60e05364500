"""Resources: tasks, a task's latest output, runs."""

import json

from fastmcp import FastMCP

from taskloom.api.common import (
    answer,
    owner_of,
)
from taskloom.api.protocol import found
from taskloom.runs.model import RunStatus
from taskloom.services import Services


def register_resources(mcp: FastMCP, s: Services) -> None:
    @mcp.resource("taskloom://tasks", mime_type="application/json")
    async def tasks_resource() -> str:
        """All tasks (first 200) with status and next fire time."""
        page = await answer(
            s.tasks.list_page(owner=owner_of(s), status=None, query=None, limit=200, cursor=None)
        )
        return page.model_dump_json(indent=2)

    @mcp.resource("taskloom://tasks/{task_id}", mime_type="application/json")
    async def task_resource(task_id: str) -> str:
        """One task in full, with its next fire times."""
        details = await found(s.task_details(task_id, owner=owner_of(s)))
        return details.model_dump_json(indent=2)

    @mcp.resource("taskloom://tasks/{task_id}/output", mime_type="text/markdown")
    async def task_output(task_id: str) -> str:
        """The latest successful run's output as a document."""
        return await found(_latest_output(s, task_id))

    @mcp.resource("taskloom://runs/{run_id}", mime_type="application/json")
    async def run_resource(run_id: str) -> str:
        """One run with its step results."""
        run = await found(s.runs.get(run_id, owner=owner_of(s)))
        return run.model_dump_json(indent=2)


async def _latest_output(s: Services, task_id: str) -> str:
    task = await s.tasks.get(task_id, owner=owner_of(s))
    page = await s.runs.history(
        owner=owner_of(s), task_id=task_id, statuses=[RunStatus.SUCCEEDED], limit=1, cursor=None
    )
    if not page.items:
        return f"# {task.name}\n\nNo successful run yet. Call run_task to run it now."
    run = page.items[0]
    body = run.output if isinstance(run.output, str) else json.dumps(run.output, indent=2)
    when = run.finished_at.isoformat() if run.finished_at else "?"
    summary = f"\n\n> {run.summary}" if run.summary else ""
    return f"# {task.name}\n\nRun {run.id} finished {when}.{summary}\n\n{body}\n"
