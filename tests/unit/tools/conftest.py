"""Contexts that reach the real loopback test API (the `api` fixture of tests/conftest.py)."""

from collections.abc import AsyncIterator

import httpx
import pytest
from tests.fixtures.api_server import HUGE_BYTES, ITEMS, ApiServer

from taskloom_tools.base import ToolContext

__all__ = ["HUGE_BYTES", "ITEMS", "LIMIT_BYTES", "ApiServer", "RecordingTransport"]

LIMIT_BYTES = 4_000


class RecordingTransport(httpx.AsyncBaseTransport):
    """The real network transport, remembering every URL it was asked to connect to."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.urls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
async def http(transport: RecordingTransport) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


@pytest.fixture
def ctx(http: httpx.AsyncClient) -> ToolContext:
    """A context that may reach the test server on 127.0.0.1 (and nothing else private)."""
    return ToolContext(http=http, allow_hosts="127.0.0.1", max_response_bytes=LIMIT_BYTES)


@pytest.fixture
def strict_ctx(http: httpx.AsyncClient) -> ToolContext:
    """A context with the production default: no private or loopback address allowed."""
    return ToolContext(http=http)
