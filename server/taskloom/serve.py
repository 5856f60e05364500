"""Running the server on a transport, with the operator's safety rules applied."""

import asyncio
import contextlib
import gc
import ipaddress
import os
import signal
import sys
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import structlog

from taskloom.errors import TaskloomError
from taskloom.settings import Settings
from taskloom.stopping import StopSignals

if TYPE_CHECKING:
    from fastmcp import FastMCP

    from taskloom.api.startup import Startup
    from taskloom.services import Services

log = structlog.get_logger(__name__)
_holds_stdin = False


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _quiet_fastmcp() -> None:
    """Before FastMCP is imported: no banner, no update check, and no rich log handler of its
    own, so its records reach our stderr logging like every other library's."""
    os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
    os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
    os.environ.setdefault("FASTMCP_LOG_ENABLED", "false")


def _http_options(transport: str, host: str, port: int) -> dict[str, Any]:
    """uvicorn's own log config is off (log_config None): its records go through ours."""
    return {
        "host": host,
        "port": port,
        "host_origin_protection": "auto",
        "path": "/mcp" if transport == "http" else "/sse",
        "uvicorn_config": {"log_config": None},
    }


def _stop_on_signals(services: "Services") -> None:
    """SIGINT and SIGTERM unwind through FastMCP's lifespan, which stops our services
    (scheduler, runs, store) within the grace. uvicorn catches the first signal itself, stops
    serving (open connections get FastMCP's 2 s), then raises it again: it lands here, in the
    server's own task, as SystemExit(128 + signal), which the default handlers would have turned
    into a kill (SIGTERM) or a cancellation of every task (SIGINT). A signal during the drain
    hurries it instead: the runs still going are cut short and recorded."""

    def received(signum: int, _: FrameType | None) -> None:
        if services.stopping:
            services.runs.hurry()
            return
        raise SystemExit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, received)


def _own_urls(host: str, port: int) -> tuple[str, ...]:
    """Every URL an upstream entry could use to reach this server (any path on our socket is
    us): the bound host, and the machine's names when bound to every interface."""
    names = {host}
    if host in ("0.0.0.0", "::", ""):
        import socket

        names |= {"127.0.0.1", socket.gethostname(), socket.getfqdn()}
    return tuple(f"http://{'[' + n + ']' if ':' in n else n}:{port}/" for n in sorted(names))


def serve(settings: Settings, *, transport: str, host: str, port: int) -> None:
    _quiet_fastmcp()
    from taskloom import logging as tl_logging
    from taskloom.app import (
        build_auth,
        build_event_store,
        build_server,
        build_server_starting_later,
    )
    from taskloom.services import build_services

    tl_logging.configure(settings.log_level, settings.log_format)
    auth = build_auth(settings)
    if transport != "stdio" and auth is None and not is_loopback(host):
        raise TaskloomError(
            f"Refusing to serve on {host} without authentication: set TASKLOOM_HTTP_TOKENS "
            "(name=token pairs) or bind to 127.0.0.1."
        )
    if transport == "stdio":
        mcp, startup = build_server_starting_later(settings, lambda: build_services(settings))
        # Modules, schemas and tables live as long as the process: frozen, full GC collections
        # (a tool call's latency spikes) stop walking them. Again once the services started.
        gc.freeze()
        global _holds_stdin
        _holds_stdin = True
        code = asyncio.run(_stdio_until_stopped(mcp, startup))  # raises a failed start's error
        _holds_stdin = False
        if code:
            leave(code)
        return
    services = build_services(settings, self_urls=_own_urls(host, port))
    mcp = build_server(services, auth=auth)
    gc.freeze()
    _stop_on_signals(services)
    from taskloom.api.http import register_http_routes

    register_http_routes(mcp, services, auth)
    from taskloom.dashboard.serving import mount_dashboard

    mount_dashboard(mcp, services, auth)  # /dashboard/ and /metrics, behind the same tokens
    options = _http_options(transport, host, port)
    if transport == "http":  # FastMCP's run() takes no event store; the app it builds does
        store = build_event_store(settings)
        mcp.http_app = partial(mcp.http_app, event_store=store)  # type: ignore[method-assign]
    log.info("serving", transport=transport, url=f"http://{host}:{port}{options['path']}")
    mcp.run(transport=transport, show_banner=False, **options)  # type: ignore[arg-type]


async def _stdio_until_stopped(mcp: "FastMCP", startup: "Startup") -> int:
    """Serve over stdio until the client closes stdin (FastMCP's lifespan then stops the
    services) or SIGINT/SIGTERM comes: then the services stop here, in-flight runs get the
    grace, and the exit code is returned. Waiting for the MCP session to end instead would
    wait for the thread that blocks reading stdin, which only the client can release.
    Services that fail to start end serving with their error, as they did in the lifespan."""
    from taskloom.stdio import serve_stdio  # answers a line that is not JSON-RPC

    signals = StopSignals(startup.hurry, lambda: startup.stopping)
    signals.install()
    serving = asyncio.create_task(serve_stdio(mcp))
    stop = asyncio.create_task(signals.requested.wait())
    failed = asyncio.create_task(startup.failed.wait())
    freeze = asyncio.create_task(_freeze_once(startup.started))
    await asyncio.wait([serving, stop, failed], return_when=asyncio.FIRST_COMPLETED)
    freeze.cancel()
    if failed.done():
        stop.cancel()
        signals.remove()
        assert startup.error is not None
        raise startup.error
    failed.cancel()
    if serving.done():
        stop.cancel()
        signals.remove()
        serving.result()
        return 0
    await startup.stop()
    return signals.exit_code


async def _freeze_once(started: asyncio.Event) -> None:
    await started.wait()
    gc.freeze()


def holds_stdin() -> bool:
    """Whether a stdio server ended with an error while a thread still reads its stdin: the
    process must then `leave`, or it would wait for the client to write or close stdin."""
    return _holds_stdin


def leave(code: int) -> NoReturn:
    """Exit now that the services are stopped and the logs written, without joining the thread
    still blocked reading stdin (an ordinary exit would wait for the client to write)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
