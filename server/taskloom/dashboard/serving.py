"""Where the dashboard is served: mounted on `serve --transport http` (behind the same bearer
tokens), or alone by `taskloom dashboard` on loopback beside a stdio client."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastmcp import FastMCP
from fastmcp.server.auth import AuthProvider
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from taskloom.dashboard.routes import dashboard_routes
from taskloom.dashboard.web import PREFIX
from taskloom.errors import TaskloomError
from taskloom.metrics import Metrics
from taskloom.services import Services
from taskloom.settings import Settings

log = structlog.get_logger(__name__)

# The Host headers a dashboard bound to loopback answers (anything else may be DNS rebinding).
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def mount_dashboard(mcp: FastMCP, services: Services, auth: AuthProvider | None) -> None:
    """The dashboard at /dashboard/ and Prometheus metrics at /metrics, beside /mcp. FastMCP
    guards only /mcp with `auth`; the dashboard checks the same tokens itself."""
    for route in dashboard_routes(services, auth, Metrics(services)):
        methods = sorted((route.methods or {"GET"}) - {"HEAD"})
        mcp.custom_route(route.path, methods=methods)(route.endpoint)


def dashboard_app(services: Services, auth: AuthProvider | None, *, loopback: bool) -> Starlette:
    """`taskloom dashboard`: the pages and /metrics, the services opened without a scheduler
    (the MCP client's server or a worker schedules; runs started here execute here). On
    loopback only loopback Host headers are answered (no DNS rebinding)."""

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await services.start(schedule=False)
        try:
            yield
        finally:
            await services.stop()

    async def home(_: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    routes = [
        Route("/", home, methods=["GET"]),
        *dashboard_routes(services, auth, Metrics(services)),
    ]
    middleware = []
    if loopback:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS))
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


def serve_dashboard(settings: Settings, *, host: str, port: int, loopback: bool) -> None:
    """`loopback`: whether `host` is a loopback address (the caller's check, as `serve`'s)."""
    import uvicorn

    from taskloom import logging as tl_logging
    from taskloom.app import build_auth
    from taskloom.services import build_services

    tl_logging.configure(settings.log_level, settings.log_format)
    auth = build_auth(settings)
    if auth is None and not loopback:
        raise TaskloomError(
            f"Refusing to serve the dashboard on {host} without sign-in: set "
            "TASKLOOM_HTTP_TOKENS (name=token pairs) or bind to 127.0.0.1."
        )
    services = build_services(settings, role="dashboard")
    app = dashboard_app(services, auth, loopback=loopback)
    log.info("dashboard_serving", url=f"http://{host}:{port}{PREFIX}/")
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
