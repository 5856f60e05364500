"""The dashboard's routes, and /metrics: mounted on `serve --transport http` beside /mcp, or
served alone by `taskloom dashboard`. Every page needs a session; every POST its CSRF token."""

from importlib import resources
from typing import TYPE_CHECKING

from fastmcp.server.auth import AuthProvider
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from taskloom.dashboard.pages import Pages
from taskloom.dashboard.sessions import COOKIE
from taskloom.dashboard.web import PREFIX, Handler, Web, json_answer, read_form, same_origin
from taskloom.services import Services

if TYPE_CHECKING:
    from taskloom.metrics import Metrics

STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
JSON_ENDPOINTS = ("/live", "/args", "/output")


def dashboard_routes(
    services: Services, auth: AuthProvider | None, metrics: "Metrics | None"
) -> list[Route]:
    web = Web(services, auth)
    pages = Pages(web)
    get, post = _gate(web, "GET"), _gate(web, "POST")
    routes = [
        Route(f"{PREFIX}/", get(pages.tasks), methods=["GET"]),
        Route(f"{PREFIX}/tasks/{{task_id}}", get(pages.task), methods=["GET"]),
        Route(f"{PREFIX}/runs/{{run_id}}", get(pages.run), methods=["GET"]),
        Route(f"{PREFIX}/runs/{{run_id}}/live", get(pages.live), methods=["GET"]),
        Route(f"{PREFIX}/runs/{{run_id}}/steps/{{index:int}}/{{field}}", get(pages.more)),
        Route(f"{PREFIX}/scheduler", get(pages.scheduler), methods=["GET"]),
        Route(f"{PREFIX}/tasks/{{task_id}}/{{action}}", post(pages.task_action), methods=["POST"]),
        Route(f"{PREFIX}/runs/{{run_id}}/cancel", post(pages.cancel), methods=["POST"]),
        Route(f"{PREFIX}/logout", post(_logout(web)), methods=["POST"]),
        Route(f"{PREFIX}/login", _login_form(web), methods=["GET"]),
        Route(f"{PREFIX}/login", _login(web), methods=["POST"]),
        Route(f"{PREFIX}/static/{{name}}", _static, methods=["GET"]),
        Route(PREFIX, _to_dashboard, methods=["GET"]),
    ]
    if metrics is not None:
        routes.append(Route("/metrics", _metrics(web, metrics), methods=["GET"]))
    return routes


def _gate(web: Web, method: str) -> "Callable[[Handler], Endpoint]":
    """Wraps a handler: a browser without a session signs in first (or, with no tokens set up,
    is given the local user's session); a POST must carry the session's CSRF token."""

    def wrap(handler: Handler) -> "Endpoint":
        async def endpoint(request: Request) -> Response:
            viewer = web.viewer(request)
            if viewer is None and web.auth is None and method == "GET":
                session = web.sessions.open(None)
                return web.signed_in(request, session, str(request.url.path))
            if viewer is None:
                if request.url.path.endswith(JSON_ENDPOINTS):  # the page's script asked
                    return json_answer({"error": "Your session has ended; sign in again."}, 401)
                if method == "GET":
                    return RedirectResponse(f"{PREFIX}/login", status_code=303)
                return web.error(None, 401, "Your session has ended; sign in again.")
            if method == "POST" and not await _csrf_ok(web, request, viewer):
                return web.error(viewer, 403, "The form is stale (CSRF check failed); reload "
                                 "the page and try again.")  # fmt: skip
            return await handler(request, viewer)

        return endpoint

    return wrap


async def _csrf_ok(web: Web, request: Request, viewer: "Viewer") -> bool:
    if not same_origin(request):
        return False
    form = await read_form(request)
    given = request.headers.get("x-csrf-token") or (form or {}).get("csrf")
    return form is not None and web.sessions.csrf_ok(viewer.session, given)


def _login_form(web: Web) -> "Endpoint":
    async def endpoint(request: Request) -> Response:
        if web.auth is None:
            return RedirectResponse(f"{PREFIX}/", status_code=303)
        return web.page("login.html", viewer=None, message=None)

    return endpoint


def _login(web: Web) -> "Endpoint":
    async def endpoint(request: Request) -> Response:
        if web.auth is None:
            return RedirectResponse(f"{PREFIX}/", status_code=303)
        form = await read_form(request) if same_origin(request) else None
        principal = await web.principal((form or {}).get("token", ""))
        if principal is None:
            message = "That token is not valid. Paste a token of TASKLOOM_HTTP_TOKENS."
            return web.page("login.html", 401, viewer=None, message=message)
        return web.signed_in(request, web.sessions.open(principal), f"{PREFIX}/")

    return endpoint


def _logout(web: Web) -> Handler:
    async def handler(request: Request, viewer: "Viewer") -> Response:
        web.sessions.close(viewer.session.id)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return handler


async def _static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC:
        return PlainTextResponse("Not found.", status_code=404)
    body = resources.files("taskloom.dashboard").joinpath("static", name).read_bytes()
    headers = {"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"}
    return Response(body, media_type=STATIC[name], headers=headers)


async def _to_dashboard(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


def _metrics(web: Web, metrics: "Metrics") -> "Endpoint":
    """Prometheus scrapes with a bearer token of an operator (any caller when no tokens are
    set up): the metrics cover every owner's tasks."""
    from taskloom.metrics import CONTENT_TYPE

    async def endpoint(request: Request) -> Response:
        if web.auth is not None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            who = await web.principal(token) if scheme.lower() == "bearer" else None
            if who is None or not web.services.runs.access.is_operator(who):
                return PlainTextResponse(
                    "Send 'Authorization: Bearer <token>' of an operator (TASKLOOM_OPERATORS).",
                    status_code=401, headers={"WWW-Authenticate": "Bearer"},
                )  # fmt: skip
        return Response(await metrics.exposition(), media_type=CONTENT_TYPE)

    return endpoint


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from taskloom.dashboard.web import Viewer

    Endpoint = Callable[[Request], Awaitable[Response]]
