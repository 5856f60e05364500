"""Run lifecycle events: with notify.on "lifecycle" each run's start and end are POSTed to the
task's webhook as JSON, in order, through the address guard."""

import uuid
from typing import Any

from tests.fixtures.api_server import ApiServer
from tests.mcp.conftest import Loom, LoomFactory, eventually

SAY = {"id": "say", "tool": "render", "args": {"template": "hi"}}


async def posted(api: ApiServer, key: str, count: int) -> list[Any]:
    async def probe() -> list[Any] | None:
        return list(api.hooks[key]) if len(api.hooks[key]) >= count else None

    return await eventually(probe)


async def test_a_run_sends_started_then_succeeded(loom: Loom, api: ApiServer) -> None:
    """A successful run posts run.started, then run.succeeded, with the run's ids."""
    key = uuid.uuid4().hex
    notify = {"on": "lifecycle", "webhook_url": api.url(f"/hook/{key}")}
    task_id = await loom.create([SAY], notify=notify)
    run = await loom.run(task_id)
    events = await posted(api, key, 2)
    assert [e["event"] for e in events] == ["run.started", "run.succeeded"]
    assert {(e["task_id"], e["run_id"]) for e in events} == {(task_id, run["id"])}
    assert events[1]["finished_at"] is not None


async def test_a_failed_run_sends_failed_with_its_error(loom: Loom, api: ApiServer) -> None:
    """A failing run posts run.failed carrying the run's error."""
    key = uuid.uuid4().hex
    notify = {"on": "lifecycle", "webhook_url": api.url(f"/hook/{key}")}
    steps = [{"id": "bad", "tool": "http_request", "args": {"url": api.url("/fail")}}]
    await loom.run(await loom.create(steps, notify=notify))
    events = await posted(api, key, 2)
    assert events[1]["event"] == "run.failed"
    assert "bad" in events[1]["error"]


async def test_lifecycle_events_go_through_the_address_guard(
    open_loom: LoomFactory, api: ApiServer
) -> None:
    """A webhook on a loopback address the guard refuses receives nothing; the run succeeds."""
    key = uuid.uuid4().hex
    async with open_loom(http_allow_hosts="") as loom:
        notify = {"on": "lifecycle", "webhook_url": api.url(f"/hook/{key}")}
        run = await loom.run(await loom.create([SAY], notify=notify))

        async def delivered() -> bool:
            return loom.services.runs.lifecycle.pending == 0

        await eventually(delivered)
    assert run["status"] == "succeeded"
    assert api.hooks[key] == []
