"""Resources: tasks, a task's latest output, runs."""

import json
from typing import Any

from fastmcp import FastMCP

from taskloom.answers import run_view
from taskloom.api.bounded import Place, bound, call_text, dumps, fit, shorten_lists, size_of
from taskloom.api.common import (
    answer,
    owner_of,
)
from taskloom.api.protocol import found
from taskloom.api.runs import run_place
from taskloom.api.tasks import task_place_of, task_view, tasks_place
from taskloom.domain.runs import RunStatus
from taskloom.domain.tasks import Task
from taskloom.services import Services
from taskloom.tasks.files import task_document, to_yaml


def register_resources(mcp: FastMCP, s: Services) -> None:
    @mcp.resource("taskloom://tasks", mime_type="application/json")
    async def tasks_resource() -> str:
        """All tasks (first 200) with status and next fire time."""
        page = await answer(
            s.tasks.list_page(owner=owner_of(s), status=None, query=None, limit=200, cursor=None)
        )
        return _bounded_json(s, page.model_dump(mode="json"), tasks_place(page))

    # Registered before taskloom://tasks/{task_id}, whose template would match '<id>.yaml' too.
    @mcp.resource("taskloom://tasks/{task_id}.yaml", mime_type="application/yaml")
    async def task_file(task_id: str) -> str:
        """One task as a task file (YAML) for `taskloom tasks apply -f FILE`."""
        task = await found(s.tasks.get(task_id, owner=owner_of(s)))
        return _bounded_yaml(s, task)

    @mcp.resource("taskloom://tasks/{task_id}", mime_type="application/json")
    async def task_resource(task_id: str) -> str:
        """One task in full, with its next fire times."""
        details = await found(s.task_details(task_id, owner=owner_of(s)))
        return _bounded_json(s, task_view(details), task_place_of(details))

    @mcp.resource("taskloom://tasks/{task_id}/output", mime_type="text/markdown")
    async def task_output(task_id: str) -> str:
        """The latest successful run's output as a document."""
        return await found(_latest_output(s, task_id))

    @mcp.resource("taskloom://runs/{run_id}", mime_type="application/json")
    async def run_resource(run_id: str) -> str:
        """One run with its step results."""
        run = await found(s.runs.get(run_id, owner=owner_of(s)))
        return _bounded_json(s, run_view(run), run_place(run))


def _bounded_yaml(s: Services, task: Task) -> str:
    """The task file, or when it is longer than the answer budget its head and a last comment
    naming the call that reads the whole task."""
    text = to_yaml(task_document(task.spec()))
    room = s.settings.max_answer_bytes - 600
    if size_of(text) <= room:
        return text
    shown = text[: fit(text, room)].rsplit("\n", 1)[0]
    more = call_text("get_task", ("task_id", task.id))
    return f"{shown}\n# Truncated: the file is {size_of(text)} bytes; read the task with {more}.\n"


def _bounded_json(s: Services, data: dict[str, Any], place: Place) -> str:
    """A resource's JSON text within the answer budget (long values become markers)."""
    limit = s.settings.max_answer_bytes
    return dumps(shorten_lists(bound(data, limit, place, _read_size), limit, _read_size))


def _read_size(data: Any) -> int:
    """Bytes of a resources/read answer carrying `data` as its JSON text."""
    return size_of(dumps(data)) + 200


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
    head = f"# {task.name}\n\nRun {run.id} finished {when}.{summary}\n\n"
    return head + _bounded_body(s, head, body, run.id, json_text=not isinstance(run.output, str))


def _bounded_body(s: Services, head: str, body: str, run_id: str, *, json_text: bool) -> str:
    """The body, or as much as fits with a last line that says how to read the rest."""
    room = s.settings.max_answer_bytes - size_of(head) - 600
    if size_of(body) + 1 <= room:
        return body + "\n"
    # get_run pages the stored value, whose text is compact JSON when it is not a string.
    text = dumps(json.loads(body)) if json_text else body
    shown = fit(text, room)
    more = call_text("get_run", ("run_id", run_id), ("path", "output"), ("offset", shown))
    return (
        f"{text[:shown]}\n\n(Truncated: {shown} of {len(text)} characters shown. "
        f"Read on with {more}.)\n"
    )
