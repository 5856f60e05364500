"""A real Taskloom server on a temp SQLite file, reached through FastMCP's in-memory Client."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastmcp import Client, FastMCP

from taskloom.app import build_server, build_services
from taskloom.services import Services
from taskloom.settings import Settings


@pytest.fixture
def services(settings: Settings) -> Services:
    return build_services(settings)


@pytest.fixture
def server(services: Services) -> FastMCP:
    return build_server(services)


@pytest.fixture
async def client(server: FastMCP) -> AsyncIterator[Client[Any]]:
    async with Client(server) as c:
        yield c


WAIT_STEP = {"id": "pause", "tool": "wait", "args": {"seconds": 0}}


def task_args(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Morning digest",
        "steps": [WAIT_STEP],
        "trigger": {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"},
        **overrides,
    }
