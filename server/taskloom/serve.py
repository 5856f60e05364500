"""Running the server on a transport, with the operator's safety rules applied."""

import ipaddress
import os
import signal
from functools import partial
from types import FrameType
from typing import Any, NoReturn

import structlog

from taskloom.errors import TaskloomError
from taskloom.settings import Settings

log = structlog.get_logger(__name__)


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


def _exit(signum: int, _: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


def _exit_cleanly_on_sigterm() -> None:
    """SIGTERM unwinds through FastMCP's lifespan, which closes our services (scheduler, runs,
    store). Over HTTP uvicorn first stops serving, then raises the signal again, which under the
    default handler would kill the process before that lifespan ran. Over stdio a client sends it
    when its grace after closing stdin runs out: runs still going are cut short but recorded."""
    signal.signal(signal.SIGTERM, _exit)


def serve(settings: Settings, *, transport: str, host: str, port: int) -> None:
    _quiet_fastmcp()
    from taskloom import logging as tl_logging
    from taskloom.api.http import register_http_routes
    from taskloom.app import build_auth, build_event_store, build_server, build_services
    from taskloom.stdio import run_stdio

    tl_logging.configure(settings.log_level, settings.log_format)
    auth = build_auth(settings)
    if transport != "stdio" and auth is None and not is_loopback(host):
        raise TaskloomError(
            f"Refusing to serve on {host} without authentication: set TASKLOOM_HTTP_TOKENS "
            "(name=token pairs) or bind to 127.0.0.1."
        )
    services = build_services(settings)
    mcp = build_server(services, auth=auth if transport != "stdio" else None)
    _exit_cleanly_on_sigterm()
    if transport == "stdio":
        run_stdio(mcp)
        return
    register_http_routes(mcp, services, auth)
    options = _http_options(transport, host, port)
    if transport == "http":  # FastMCP's run() takes no event store; the app it builds does
        store = build_event_store(settings)
        mcp.http_app = partial(mcp.http_app, event_store=store)  # type: ignore[method-assign]
    log.info("serving", transport=transport, url=f"http://{host}:{port}{options['path']}")
    mcp.run(transport=transport, show_banner=False, **options)  # type: ignore[arg-type]
