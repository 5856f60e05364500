"""A real HTTP server on 127.0.0.1 for the step tools to call, and contexts that reach it."""

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from taskloom_tools.base import ToolContext

HUGE_BYTES = 10_000
LIMIT_BYTES = 4_000
ITEMS = [{"name": "lamp", "price": 19.9}, {"name": "mug", "price": 7.5}]


@dataclass
class ApiServer:
    """The test API: `url(path)` for links, `webhook_posts` for what webhooks received."""

    port: int
    webhook_posts: list[Any] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


async def items(request: Request) -> Response:
    return JSONResponse({"items": ITEMS})


async def echo(request: Request) -> Response:
    return JSONResponse(
        {
            "method": request.method,
            "query": list(request.query_params.multi_items()),
            "headers": dict(request.headers),
            "body": (await request.body()).decode(),
        }
    )


async def text(request: Request) -> Response:
    return PlainTextResponse("plain words")


async def fail(request: Request) -> Response:
    return PlainTextResponse("boom: database down", status_code=500)


async def slow(request: Request) -> Response:
    for _ in range(100):  # answers after ~5 s, or stops as soon as the client gives up
        if await request.is_disconnected():
            break
        await asyncio.sleep(0.05)
    return PlainTextResponse("late")


async def huge(request: Request) -> Response:
    return Response(b"x" * HUGE_BYTES, media_type="text/plain")


async def huge_stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(HUGE_BYTES // 1000):
            yield b"y" * 1000

    return StreamingResponse(chunks(), media_type="text/plain")


async def redirect(request: Request) -> Response:
    status = int(request.query_params.get("status", "302"))
    return RedirectResponse(request.query_params["to"], status_code=status)


async def redirect_loop(request: Request) -> Response:
    hop = int(request.query_params.get("hop", "0"))
    return RedirectResponse(f"/loop?hop={hop + 1}", status_code=302)


async def webhook(request: Request) -> Response:
    request.app.state.api.webhook_posts.append(await request.json())
    return PlainTextResponse("ok")


async def webhook_gone(request: Request) -> Response:
    return PlainTextResponse("no_service", status_code=404)


def build_app(api: ApiServer) -> Starlette:
    """A JSON API plus endpoints that fail, stall, send too much, redirect or record webhooks."""
    app = Starlette(
        routes=[
            Route("/items", items),
            Route("/echo", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
            Route("/text", text),
            Route("/fail", fail),
            Route("/slow", slow),
            Route("/huge", huge),
            Route("/huge-stream", huge_stream),
            Route("/redirect", redirect, methods=["GET", "POST"]),
            Route("/loop", redirect_loop),
            Route("/webhook", webhook, methods=["POST"]),
            Route("/webhook-gone", webhook_gone, methods=["POST"]),
        ]
    )
    app.state.api = api
    return app


@pytest.fixture(scope="session")
def api() -> Iterator[ApiServer]:
    """The test API, served by uvicorn in a thread for the whole session."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections wait in the backlog until uvicorn accepts: no start-up race
    state = ApiServer(port=sock.getsockname()[1])
    config = uvicorn.Config(build_app(state), log_level="warning", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield state
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


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
