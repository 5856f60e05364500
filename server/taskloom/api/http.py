"""HTTP-only routes beside /mcp: `POST /events/{name}`, behind the same bearer auth."""

import json
import re
from typing import Any

from fastmcp import FastMCP
from fastmcp.server.auth import AuthProvider
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taskloom.api.runs import event_note
from taskloom.domain.tasks import (
    EVENT_NAME_PATTERN,
)
from taskloom.errors import QuotaExceeded, TaskloomError
from taskloom.services import Services


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


class _TooLarge(Exception):
    pass


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The body, refused before it is read in full when it is over `limit` bytes: by its
    Content-Length, and (chunked, or a Content-Length that lies) by counting while streaming."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> JSONResponse:
    return _http_error(
        413, "payload_too_large",
        f"The event payload is over the {limit}-byte limit "
        "(TASKLOOM_MAX_EVENT_PAYLOAD_BYTES); nothing was started. Send a smaller payload, "
        "e.g. an id the task can fetch the rest with.",
    )  # fmt: skip


def _event_payload(body: bytes) -> dict[str, Any] | str:
    """The body as the event payload (empty means {}), or a message saying what is wrong."""
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
    limit = s.settings.max_event_payload_bytes
    try:
        body = await _bounded_body(request, limit)
    except _TooLarge:
        return _too_large(limit)
    payload = _event_payload(body)
    if isinstance(payload, str):
        return _http_error(400, "invalid_payload", payload)
    try:
        runs = await s.runs.emit(name, payload, owner=principal)
    except QuotaExceeded as exc:
        return _http_error(429, "quota_exceeded", exc.message)
    except TaskloomError as exc:
        return _http_error(400, "rejected", exc.message)
    return JSONResponse(
        {"event": name, "runs": [run.id for run in runs], "message": event_note(name, runs)}
    )
