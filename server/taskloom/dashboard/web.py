"""The plumbing every dashboard page shares: who the browser is (its session), the CSRF check
on every POST, bounded form bodies, templates and the security headers of every answer."""

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastmcp.server.auth import AuthProvider
from jinja2 import Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from taskloom.dashboard.sessions import COOKIE, Session, Sessions
from taskloom.services import Services

PREFIX = "/dashboard"
# A form (sign-in token, CSRF token) is a few hundred bytes; anything bigger is refused unread.
MAX_FORM_BYTES = 16384
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Viewer:
    """The browser's session and what it may see: `owner` is whose tasks (the principal, or
    the local user's name without tokens); `operator` sees processes and hosts."""

    session: Session
    owner: str
    operator: bool
    csrf: str


class Web:
    def __init__(self, services: Services, auth: AuthProvider | None) -> None:
        self.services = services
        self.auth = auth
        self.sessions = Sessions(services.clock, services.settings.dashboard_session_s)
        self.templates = Environment(
            loader=PackageLoader("taskloom.dashboard", "templates"), autoescape=True
        )

    # -- who is asking -----------------------------------------------------------------------

    def viewer(self, request: Request) -> Viewer | None:
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return None
        owner = session.principal or self.services.settings.owner
        operator = self.services.runs.access.is_operator(session.principal)
        return Viewer(session, owner, operator, self.sessions.csrf(session))

    async def principal(self, token: str) -> str | None:
        """The principal a bearer token names, verified exactly as the HTTP transport does."""
        if self.auth is None or not token.strip():
            return None
        access = await self.auth.verify_token(token.strip())
        if access is None or not set(self.auth.required_scopes or []) <= set(access.scopes):
            return None
        return str(access.claims.get("sub") or access.client_id)

    def signed_in(self, request: Request, session: Session, to: str) -> Response:
        response = RedirectResponse(to, status_code=303)
        response.set_cookie(
            COOKIE, session.id, max_age=self.services.settings.dashboard_session_s,
            path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    # -- answers -----------------------------------------------------------------------------

    def page(self, name: str, http_status: int = 200, **context: Any) -> Response:
        html = self.templates.get_template(name).render(prefix=PREFIX, **context)
        return HTMLResponse(html, status_code=http_status, headers=SECURITY_HEADERS)

    def fragment(self, name: str, **context: Any) -> str:
        return self.templates.get_template(name).render(prefix=PREFIX, **context)

    def error(self, viewer: Viewer | None, status: int, message: str) -> Response:
        return self.page("error.html", status, viewer=viewer, message=message)


def json_answer(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status, headers=SECURITY_HEADERS)


async def read_form(request: Request) -> dict[str, str] | None:
    """An urlencoded form body, or None when it is over MAX_FORM_BYTES (refused unread, by its
    Content-Length, or counted while it streams)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def same_origin(request: Request) -> bool:
    """A POST that names its origin must come from this host (the CSRF token is checked too)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


Handler = Callable[[Request, Viewer], Awaitable[Response]]


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
