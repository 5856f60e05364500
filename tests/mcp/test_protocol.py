"""Protocol details through a real in-memory client in both eras: resource-not-found, prompt
arguments, cursors, run progress as log messages, and the authoring prompt."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.logging import LogMessage
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from taskloom.app import build_server
from taskloom.clock import FrozenClock
from taskloom.services import build_services
from taskloom_tools.catalog import builtin_tools
from tests.conftest import make_settings
from tests.mcp.conftest import WAIT_STEP, eventually, task_args

ERAS = pytest.mark.parametrize(
    ("mode", "version"), [("legacy", "2025-11-25"), ("auto", "2026-07-28")], ids=["2025", "2026"]
)
LOG_LEVEL_META = "io.modelcontextprotocol/logLevel"


class Logs:
    """The notifications/message a client received."""

    def __init__(self) -> None:
        self.messages: list[LogMessage] = []

    async def __call__(self, message: LogMessage) -> None:
        self.messages.append(message)

    def of(self, logger: str) -> list[tuple[str, str]]:
        return [(m.level, m.data["msg"]) for m in self.messages if m.logger == logger]


@pytest.fixture
def logs() -> Logs:
    return Logs()


@pytest.fixture
async def open_client(tmp_path: Path, logs: Logs) -> AsyncIterator[Any]:
    """Opens a client of the given era on a fresh server; all are closed at the end."""
    clients: list[Client[Any]] = []

    async def opened(mode: str) -> Client[Any]:
        services = build_services(make_settings(tmp_path))
        client = Client(build_server(services), mode=mode, log_handler=logs)
        await client.__aenter__()
        clients.append(client)
        return client

    yield opened
    for client in reversed(clients):
        await client.__aexit__(None, None, None)


async def protocol_error(call: Any) -> Any:
    with pytest.raises(MCPError) as caught:
        await call
    return caught.value.error


# -- a missing task or run behind a resource template -------------------------------------------


@ERAS
@pytest.mark.parametrize(
    "uri",
    [
        "taskloom://tasks/tsk_missing",
        "taskloom://tasks/tsk_missing/output",
        "taskloom://runs/run_x",
    ],
    ids=["task", "output", "run"],
)
async def test_missing_resource_answers_resource_not_found(
    open_client: Any, mode: str, version: str, uri: str
) -> None:
    """A missing task or run is the era's resource-not-found error with data.uri and a hint."""
    client = await open_client(mode)
    assert client.protocol_version == version
    error = await protocol_error(client.read_resource(uri))
    assert error.code == (-32002 if version == "2025-11-25" else -32602)
    assert error.data == {"uri": uri}
    assert "Call list_tasks" in error.message or "Call task_history" in error.message


@ERAS
async def test_unknown_uri_answers_resource_not_found(
    open_client: Any, mode: str, version: str
) -> None:
    """A URI no resource or template matches gets the same era-specific error."""
    client = await open_client(mode)
    error = await protocol_error(client.read_resource("taskloom://nothing/here"))
    assert error.code == (-32002 if version == "2025-11-25" else -32602)
    assert error.data == {"uri": "taskloom://nothing/here"}


@ERAS
async def test_existing_task_resource_still_reads(
    open_client: Any, mode: str, version: str
) -> None:
    """A task that exists reads as JSON through its template in both eras."""
    client = await open_client(mode)
    created = await client.call_tool("create_task", task_args())
    task_id = created.structured_content["task"]["id"]
    contents = await client.read_resource(f"taskloom://tasks/{task_id}")
    assert task_id in contents[0].text


# -- prompts/get without its argument -----------------------------------------------------------


@ERAS
async def test_prompt_without_its_argument_is_invalid_params(
    open_client: Any, mode: str, version: str
) -> None:
    """prompts/get author_task without `goal` answers -32602 naming the argument."""
    client = await open_client(mode)
    error = await protocol_error(client.get_prompt("author_task", {}))
    assert error.code == -32602
    assert "'goal' (what the user wants done, and when)" in error.message
    assert error.data == {"prompt": "author_task", "missing": ["goal"]}


# -- cursors --------------------------------------------------------------------------------------


@ERAS
@pytest.mark.parametrize("listing", ["tools", "prompts", "resources", "resource_templates"])
async def test_protocol_list_refuses_a_forged_cursor(
    open_client: Any, mode: str, version: str, listing: str
) -> None:
    """tools/list, prompts/list and resources/list refuse a cursor they never gave."""
    client = await open_client(mode)
    lister = getattr(client, f"list_{listing}_mcp")
    error = await protocol_error(lister(cursor="not-a-cursor"))
    assert error.code == -32602
    assert "Invalid cursor" in error.message


@pytest.mark.parametrize(
    ("tool", "cursor", "listing"),
    [
        ("list_tasks", "not-a-cursor", "list_tasks"),
        ("task_history", "not-a-cursor", "task_history"),
        # base64 of a run id: a task_history cursor is no list_tasks cursor, and back
        ("list_tasks", "cnVuXzAxam4wMDAwMDAwMDAwMDAwMDAwMDAwMDAw", "list_tasks"),
        ("task_history", "dHNrXzAxam4wMDAwMDAwMDAwMDAwMDAwMDAwMDAw", "task_history"),
    ],
    ids=["tasks-junk", "history-junk", "tasks-run-cursor", "history-task-cursor"],
)
async def test_tool_cursor_that_no_answer_gave_is_refused(
    open_client: Any, tool: str, cursor: str, listing: str
) -> None:
    """list_tasks and task_history refuse a foreign cursor, naming it and the fix."""
    client = await open_client("auto")
    result = await client.call_tool(tool, {"cursor": cursor}, raise_on_error=False)
    assert result.is_error
    text = result.content[0].text
    assert f"cursor: {cursor!r} is not valid" in text
    assert f"pass the next_cursor of the previous {listing} answer unchanged" in text


# -- run progress as log messages -----------------------------------------------------------------

TWO_STEPS = [WAIT_STEP, {**WAIT_STEP, "id": "again"}]


async def set_level(client: Client[Any], level: Any) -> None:
    """logging/setLevel, which the SDK marks deprecated since 2026-07-28 (SEP-2577)."""
    with pytest.warns(MCPDeprecationWarning, match="logging capability"):
        await client.set_logging_level(level)


async def run_two_steps(client: Client[Any], **call: Any) -> str:
    args = task_args(name="Two steps", steps=TWO_STEPS, trigger=None)
    created = await client.call_tool("create_task", args)
    task_id = created.structured_content["task"]["id"]
    result = await client.call_tool("run_task", {"task_id": task_id}, **call)
    run_id: str = result.structured_content["run"]["id"]
    return run_id


PROGRESS_LOG = [
    ("info", "step 1/2: pause (wait)"),
    ("info", "step 2/2: again (wait)"),
    ("info", "finished: succeeded"),
]
FAILED_LOG = [("info", "step 1/1: fetch (http_request)"), ("warning", "finished: failed")]


async def run_failing_step(client: Client[Any], **call: Any) -> None:
    bad = {"id": "fetch", "tool": "http_request", "args": {"url": "http://127.0.0.1:9/x"}}
    args = task_args(name="Failing step", steps=[bad], trigger=None)
    created = await client.call_tool("create_task", args)
    task_id = created.structured_content["task"]["id"]
    await client.call_tool("run_task", {"task_id": task_id}, **call)


async def received(logs: Logs, count: int) -> list[tuple[str, str]]:
    """The run log messages, once `count` have arrived (a client handles them on its own)."""

    async def enough() -> list[tuple[str, str]] | None:
        got = logs.of("taskloom.run")
        return got if len(got) >= count else None

    return await eventually(enough)


async def test_run_progress_is_logged_at_the_level_set(open_client: Any, logs: Logs) -> None:
    """After logging/setLevel info, run_task's steps arrive as log messages with the run id."""
    client = await open_client("legacy")
    await set_level(client, "info")
    run_id = await run_two_steps(client)
    assert await received(logs, 3) == PROGRESS_LOG
    extra = [m.data["extra"] for m in logs.messages if m.logger == "taskloom.run"]
    assert {e["run_id"] for e in extra} == {run_id}
    assert [(e["done"], e["total"]) for e in extra] == [(0, 2), (1, 2), (2, 2)]


async def test_run_progress_below_the_level_set_is_not_sent(open_client: Any, logs: Logs) -> None:
    """After logging/setLevel warning, a run that succeeds sends nothing and one that fails
    sends its end as a warning."""
    client = await open_client("legacy")
    await set_level(client, "warning")
    await run_two_steps(client)
    await run_failing_step(client)
    assert await received(logs, 1) == [("warning", "finished: failed")]


@pytest.mark.parametrize(
    ("level", "expected"),
    [("info", [*PROGRESS_LOG, *FAILED_LOG]), ("warning", [FAILED_LOG[-1]])],
)
async def test_modern_request_gets_run_progress_at_its_log_level(
    open_client: Any, logs: Logs, level: str, expected: list[tuple[str, str]]
) -> None:
    """In the 2026-07-28 era each request's own log level decides which messages it gets."""
    client = await open_client("auto")
    await run_two_steps(client, meta={LOG_LEVEL_META: level})
    await run_failing_step(client, meta={LOG_LEVEL_META: level})
    assert await received(logs, len(expected)) == expected


# -- the authoring prompt -------------------------------------------------------------------------


async def test_author_prompt_gives_time_timezone_and_whole_tool_descriptions(
    tmp_path: Path,
) -> None:
    """author_task shows the time in the default timezone and UTC and every step tool in full."""
    settings = make_settings(tmp_path, timezone="Europe/Berlin")
    clock = FrozenClock(datetime(2026, 7, 1, 7, 30, tzinfo=UTC))
    async with Client(build_server(build_services(settings, clock=clock))) as client:
        prompt = await client.get_prompt("author_task", {"goal": "BTC price at 9"})
    text = prompt.messages[0].content.text
    assert "2026-07-01T09:30:00+02:00 in Europe/Berlin" in text
    assert "(2026-07-01T07:30:00+00:00 in UTC)" in text
    for tool in builtin_tools().values():
        assert f"### {tool.name}\n{tool.description.strip()}\nArguments:" in text
        for name in tool.input_schema().get("properties", {}):
            assert f"\n- {name} (" in text
    assert "- url (string, required): http:// or https:// URL to call" in text
