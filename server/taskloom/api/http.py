"""HTTP-only routes beside /mcp: `POST /events/{name}`, behind the same bearer auth."""

import json
import re
from typing import Any

from fastmcp import FastMCP
from fastmcp.server.auth import AuthProvider
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taskloom.api.runs import event_note
from taskloom.errors import TaskloomError
from taskloom.services import Services
from taskloom.tasks.model import (
    EVENT_NAME_PATTERN,
)


def register_http_routes(mcp: FastMCP, services: Services, auth: AuthProvider | None) -> None:
    """`POST /events/{name}` emits an event, as `emit_event` does, for webhooks and scripts.

    FastMCP guards only its MCP endpoint with `auth`; custom routes are not, so the bearer token
    is verified here through the same provider, and its name owns the runs."""

    @mcp.custom_route("/events/{name}", methods=["POST"], name="post_event")
    async def post_event(request: Request) -> Response:
        return await _post_event(request, services, auth)


def _http_error(status: int, error: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


async def _http_principal(request: Request, auth: AuthProvider | None, default: str) -> str | None:
    """The owner a request acts for: the token's name, or `default` when no auth is set up."""
    if auth is None:
        return default
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    access = await auth.verify_token(token.strip())
    if access is None or not set(auth.required_scopes or []) <= set(access.scopes):
        return None
    return str(access.claims.get("sub") or access.client_id)


async def _event_payload(request: Request) -> dict[str, Any] | str:
    """The body as the event payload (empty means {}), or a message saying what is wrong."""
    body = await request.body()
    if not body.strip():
        return {}
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"The body is not valid JSON ({exc}); send a JSON object or nothing."
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        return f"The body is a JSON {kind}; send a JSON object (the event payload) or nothing."
    return payload


async def _post_event(request: Request, s: Services, auth: AuthProvider | None) -> Response:
    principal = await _http_principal(request, auth, s.settings.owner)
    if principal is None:
        return _http_error(401, "unauthorized", "Send 'Authorization: Bearer <token>'.")
    name = request.path_params["name"]
    if not re.fullmatch(EVENT_NAME_PATTERN, name):
        return _http_error(
            400, "invalid_event_name",
            f"Event name {name!r} must be 1-100 letters, digits or _ . : - characters.",
        )  # fmt: skip
    payload = await _event_payload(request)
    if isinstance(payload, str):
        return _http_error(400, "invalid_payload", payload)
    try:
        runs = await s.runs.emit(name, payload, owner=principal)
    except TaskloomError as exc:
        return _http_error(400, "rejected", exc.message)
    return JSONResponse(
        {"event": name, "runs": [run.id for run in runs], "message": event_note(name, runs)}
    )
