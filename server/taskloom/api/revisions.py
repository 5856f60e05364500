"""The audit tools: a task's revisions (who changed what, when) and putting a revision back."""

from typing import Annotated

from fastmcp import FastMCP
from fastmcp.tools import ToolResult
from pydantic import Field

from taskloom.api.common import READ, WRITE, TaskId, answer, owner_of, reply
from taskloom.api.tasks import task_reply
from taskloom.services import Services

Revision = Annotated[int, Field(ge=1)]


def register_revision_tools(mcp: FastMCP, s: Services) -> None:
    @mcp.tool(annotations=READ, output_schema=None)
    async def task_revisions(
        task_id: TaskId, limit: Annotated[int, Field(ge=1)] = 10
    ) -> ToolResult:
        """A task's changes, newest first: action, principal, at, diff."""
        page = await answer(s.audit.list(task_id, owner=owner_of(s), limit=limit, before=None))
        return reply(s, page.model_dump(mode="json"))

    @mcp.tool(annotations=WRITE, output_schema=None)
    async def restore_task(task_id: TaskId, revision: Revision) -> ToolResult:
        """Put a task back as a revision defined it (a deleted one gets a new id)."""
        return task_reply(s, await answer(s.audit.restore(task_id, revision, owner=owner_of(s))))
