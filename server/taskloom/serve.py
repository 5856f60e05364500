"""Running the server on a transport, with the operator's safety rules applied."""

import ipaddress
import os
from typing import Any

from taskloom.errors import TaskloomError
from taskloom.settings import Settings


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: Settings, *, transport: str, host: str, port: int) -> None:
    os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
    os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
    from taskloom import logging as tl_logging
    from taskloom.app import build_auth, build_server, build_services

    tl_logging.configure(settings.log_level, settings.log_format)
    auth = build_auth(settings)
    if transport != "stdio" and auth is None and not is_loopback(host):
        raise TaskloomError(
            f"Refusing to serve on {host} without authentication: set TASKLOOM_HTTP_TOKENS "
            "(name=token pairs) or bind to 127.0.0.1."
        )
    services = build_services(settings)
    mcp = build_server(services, auth=auth if transport != "stdio" else None)
    kwargs: dict[str, Any] = {}
    if transport != "stdio":
        kwargs = {"host": host, "port": port, "host_origin_protection": "auto"}
        kwargs["path"] = "/mcp" if transport == "http" else "/sse"
    mcp.run(transport=transport, show_banner=False, **kwargs)  # type: ignore[arg-type]
