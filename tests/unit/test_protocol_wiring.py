"""The protocol wiring in app.py: the bounded event store and the test-only mount setting."""

from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from mcp.server.streamable_http import EventMessage
from mcp_types import JSONRPCNotification
from tests.conftest import make_settings
from tests.mcp.test_task_tools import PRODUCT_TOOLS

from taskloom.app import build_event_store, build_server
from taskloom.errors import TaskloomError
from taskloom.services import build_services


def note(index: int) -> JSONRPCNotification:
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"i": index})


async def test_event_store_keeps_only_the_newest_events_of_a_stream(tmp_path: Path) -> None:
    """With 10 events per stream, replay after a dropped event finds nothing and replay after a
    kept one sends the events that follow it."""
    store = build_event_store(make_settings(tmp_path, event_store_max_events_per_stream=10))
    ids = [await store.store_event("stream", note(i)) for i in range(15)]
    replayed: list[Any] = []

    async def send(event: EventMessage) -> None:
        replayed.append(event.message.params)

    assert await store.replay_events_after(ids[2], send) is None
    assert await store.replay_events_after(ids[9], send) == "stream"
    assert replayed == [{"i": i} for i in range(10, 15)]


def test_event_store_limits_come_from_the_settings(tmp_path: Path) -> None:
    """The store's count, per-stream and age limits are the three settings."""
    settings = make_settings(
        tmp_path, event_store_max_events=500, event_store_max_events_per_stream=20,
        event_store_ttl_s=60,
    )  # fmt: skip
    store = build_event_store(settings)
    assert (store._max_events_per_stream, store._ttl) == (20, 60)
    assert store._storage.max_entries_per_collection == 500  # type: ignore[attr-defined]


async def test_mount_server_adds_the_fixtures_beside_the_product_tools(tmp_path: Path) -> None:
    """TASKLOOM_MOUNT_SERVER serves another FastMCP server's tools beside Taskloom's own."""
    fixtures = "tests.fixtures.conformance_server:server"
    settings = make_settings(tmp_path, mount_server=fixtures)
    async with Client(build_server(build_services(settings))) as client:
        names = {tool.name for tool in await client.list_tools()}
    assert names > PRODUCT_TOOLS
    assert "test_simple_text" in names


@pytest.mark.parametrize("path", ["no.such.module:server", "taskloom.app:LIST_PAGE_SIZE"])
def test_mount_server_that_is_no_server_is_refused(tmp_path: Path, path: str) -> None:
    """A mount path that imports nothing, or no FastMCP server, is an error naming the setting."""
    services = build_services(make_settings(tmp_path, mount_server=path))
    with pytest.raises(TaskloomError, match="TASKLOOM_MOUNT_SERVER"):
        build_server(services)
