"""`taskloom demo`: the main job end to end on the embedded SQLite database, no API key needed.

A small JSON API on 127.0.0.1 stands in for the web; a task fetches it every 2 seconds, extracts
the interesting items, renders a digest and notifies (to the log). The scheduler fires it, the
runner records every step, and the history is printed at the end.
"""

import asyncio
import random
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

from taskloom.domain.runs import RunStatus
from taskloom.domain.tasks import TaskSpec
from taskloom.services import Services, build_services
from taskloom.settings import Settings

DEMO_NAME = "Demo: cheap-fruit digest"


@contextmanager
def local_api() -> Iterator[str]:
    """A JSON price list on a free loopback port, served from a background thread."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def prices(_: Request) -> JSONResponse:
        fruit = ["apple", "banana", "cherry", "durian", "elderberry", "fig"]
        return JSONResponse({"items": [{"name": f, "price": random.randint(1, 20)} for f in fruit]})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(Starlette(routes=[Route("/prices", prices)]), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/prices"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def demo_spec(url: str) -> TaskSpec:
    return TaskSpec.model_validate(
        {
            "name": DEMO_NAME,
            "description": "Fetch prices, keep those under 10, post a digest.",
            "trigger": {"every": "2s"},
            "steps": [
                {"id": "fetch", "tool": "http_request", "args": {"url": url}},
                {
                    "id": "cheap",
                    "tool": "extract",
                    "args": {
                        "data": "{{ steps.fetch.output.json }}",
                        "expression": "items[?price < `10`] | sort_by(@, &price)",
                    },
                },
                {
                    "id": "digest",
                    "tool": "render",
                    "args": {
                        "template": "{% for i in steps.cheap.output %}- {{ i.name }}: "
                        "{{ i.price }}\n{% else %}nothing cheap today\n{% endfor %}",
                    },
                },
                {
                    "id": "tell",
                    "tool": "notify",
                    "args": {"title": "Cheap fruit", "message": "{{ steps.digest.output }}"},
                },
            ],
        }
    )


async def _demo(settings: Settings, url: str, fires: int, console: Console) -> None:
    services = build_services(settings, role="demo")
    await services.start(schedule=True)
    try:
        await _remove_old_demo(services)
        answer = await services.tasks.create(demo_spec(url), owner=settings.owner)
        task_id = answer.task.id
        console.print(f"Created [b]{task_id}[/b] ({DEMO_NAME}), firing every 2 s.")
        runs = await _wait_for_runs(services, task_id, fires, console)
        await services.tasks.set_enabled(task_id, False, owner=settings.owner)
        _show(console, runs, services.settings.resolved_database_url)
    finally:
        await services.stop(grace_s=10)


async def _remove_old_demo(services: Services) -> None:
    page = await services.store.list_tasks(owner=None, name_contains=DEMO_NAME, limit=50)
    for task in page.items:
        await services.tasks.delete(task.id, owner=None, delete_runs=True)


async def _wait_for_runs(services: Services, task_id: str, fires: int, console: Console) -> Any:
    seen: set[str] = set()
    for _ in range(fires * 40):
        page = await services.runs.history(
            owner=None, task_id=task_id, statuses=[], limit=fires, cursor=None
        )
        for run in page.items:
            if run.status.finished and run.id not in seen:
                seen.add(run.id)
                console.print(f"  run {run.id}: {run.status.value} ({run.duration_ms} ms)")
        if len(seen) >= fires:
            return [await services.runs.get(r.id, owner=None) for r in page.items]
        await asyncio.sleep(0.25)
    raise TimeoutError(f"the demo task did not run {fires} times within {fires * 10} s")


def _show(console: Console, runs: list[Any], database: str) -> None:
    table = Table("trigger", "status", "fire time (UTC)", "ms", title="History")
    # Ids are never cut (people copy them into the next command): the column takes what it needs.
    table.add_column("run", no_wrap=True, min_width=len(runs[0].id) if runs else 4)
    for run in runs:
        fire = run.fire_time.strftime("%H:%M:%S") if run.fire_time else "-"
        table.add_row(run.cause.value, run.status.value, fire, str(run.duration_ms), run.id)
    console.print(table)
    latest = runs[0]
    if latest.status == RunStatus.SUCCEEDED:
        digest = next(s for s in latest.steps if s.id == "digest")
        console.print(f"Latest digest:\n{digest.output}")
    console.print(
        f"Stored in {database}. The demo task is paused now; see it with "
        "`taskloom tasks list` and `taskloom runs list`."
    )


def run_demo(settings: Settings, *, fires: int, console: Console) -> None:
    from taskloom import logging as tl_logging

    tl_logging.configure("warning", settings.log_format)
    with local_api() as url:
        allowed = ",".join(filter(None, [settings.http_allow_hosts, "127.0.0.1"]))
        local = settings.model_copy(update={"http_allow_hosts": allowed})
        asyncio.run(_demo(local, url, fires, console))
