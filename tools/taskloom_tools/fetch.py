"""Outgoing HTTP for step tools, through the address guard, bounded in size, time and redirects.

Every hop (the first request and each redirect) is checked by `address_guard` and sent to one of
the addresses it vetted, with the original `Host` header and TLS server name, so what is checked is
what is connected to. Redirects are followed here, never by the client.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from typing import Any

import httpx

from taskloom_tools.address_guard import AllowList, allowed_addresses
from taskloom_tools.base import StepToolError, ToolContext

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


@dataclass(frozen=True)
class Outgoing:
    """One request to send: the URL as the user wrote it (not yet pinned to an address)."""

    method: str
    url: httpx.URL
    headers: dict[str, str]
    content: bytes | None = None
    label: str | None = None  # names the request in errors instead of a URL that is a secret

    def describe(self) -> str:
        return self.label or f"{self.method} {self.url}"


@dataclass(frozen=True)
class Fetched:
    """The final response of a fetch, its body read in full (within the size limit)."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    charset: str | None

    @property
    def text(self) -> str:
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body.strip() else None
        except ValueError:
            return None


async def fetch(ctx: ToolContext, outgoing: Outgoing, timeout_s: float) -> Fetched:
    """Send `outgoing`, follow up to `ctx.max_redirects` redirects; all within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            return await _follow(ctx, outgoing, timeout_s)
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise StepToolError(
            f"{outgoing.describe()} did not finish within {timeout_s:g} s. Raise timeout_s "
            "(at most 300) or call a faster endpoint."
        ) from exc
    except httpx.TransportError as exc:
        raise StepToolError(
            f"{outgoing.describe()} failed: {exc!s} ({type(exc).__name__}). Check that the "
            "server is up and the URL is right."
        ) from exc


async def _follow(ctx: ToolContext, outgoing: Outgoing, timeout_s: float) -> Fetched:
    allow = AllowList.parse(ctx.allow_hosts)
    current = outgoing
    for _ in range(ctx.max_redirects + 1):
        result = await _exchange(ctx, current, allow, timeout_s)
        if isinstance(result, Fetched):
            return result
        current = result
    raise StepToolError(
        f"{outgoing.describe()} redirected more than {ctx.max_redirects} times. Request the "
        "final URL directly."
    )


async def _exchange(
    ctx: ToolContext, outgoing: Outgoing, allow: AllowList, timeout_s: float
) -> Fetched | Outgoing:
    """One hop: the final response, or the request the redirect asks for next."""
    response = await _open(ctx, outgoing, allow, timeout_s)
    try:
        following = redirect_target(outgoing, response)
        if following is not None:
            return following
        body = await _read_bounded(response, ctx.max_response_bytes, outgoing)
        return Fetched(
            url=str(outgoing.url),
            status=response.status_code,
            headers=dict(response.headers),
            body=body,
            charset=response.charset_encoding,
        )
    finally:
        await response.aclose()


async def _open(
    ctx: ToolContext, outgoing: Outgoing, allow: AllowList, timeout_s: float
) -> httpx.Response:
    url = outgoing.url
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise StepToolError(
            f"Cannot fetch {url}: only http:// and https:// URLs with a host are supported."
        )
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = await allowed_addresses(host, port, allow)
    last_error: httpx.ConnectError | None = None
    for address in addresses:
        request = _pinned_request(ctx.http, outgoing, address, timeout_s)
        try:
            return await ctx.http.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError as exc:
            last_error = exc
    assert last_error is not None  # allowed_addresses never returns an empty list
    raise last_error


def _pinned_request(
    client: httpx.AsyncClient, outgoing: Outgoing, address: str, timeout_s: float
) -> httpx.Request:
    """The request sent to `address` while naming the original host (Host header, TLS SNI)."""
    url = outgoing.url
    headers = {k: v for k, v in outgoing.headers.items() if k.lower() != "host"}
    headers["Host"] = url.netloc.decode("ascii")
    extensions = {}
    if url.scheme == "https":
        extensions["sni_hostname"] = url.raw_host.decode("ascii")
        # The pool keys connections by the pinned IP, not the name: a kept-alive TLS connection
        # verified for one name must not carry a request for another name on the same IP.
        headers["Connection"] = "close"
    return client.build_request(
        outgoing.method,
        url.copy_with(host=address),
        headers=headers,
        content=outgoing.content,
        timeout=httpx.Timeout(timeout_s),
        extensions=extensions,
    )


def redirect_target(outgoing: Outgoing, response: httpx.Response) -> Outgoing | None:
    """The request a redirect response asks for, as a browser would send it, or None."""
    location = response.headers.get("location")
    if response.status_code not in REDIRECT_STATUSES or not location:
        return None
    target = outgoing.url.join(location)
    following = replace(outgoing, url=target)
    if _becomes_get(response.status_code, outgoing.method):
        following = replace(
            following, method="GET", content=None, headers=_without(outgoing.headers, _BODY_HEADERS)
        )
    if _origin(target) != _origin(outgoing.url):
        # Any header the task set may carry a credential (X-Api-Key, a signed token...): none
        # of them goes to another origin.
        following = replace(following, headers={})
    return following


def _becomes_get(status: int, method: str) -> bool:
    return (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST")


def _origin(url: httpx.URL) -> tuple[str, bytes, int | None]:
    return url.scheme, url.raw_host, url.port


def _without(headers: dict[str, str], names: frozenset[str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in names}


async def _read_bounded(response: httpx.Response, limit: int, outgoing: Outgoing) -> bytes:
    if outgoing.method == "HEAD":  # its Content-Length describes a body that is not sent
        return b""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(outgoing, limit, f"it declares {declared} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_large(outgoing, limit, "its body is larger")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(outgoing: Outgoing, limit: int, why: str) -> StepToolError:
    return StepToolError(
        f"The response to {outgoing.describe()} is over the {limit}-byte limit ({why}); "
        "nothing was kept. Request a smaller resource (for example a page or a filter through "
        "params) or ask the operator to raise the limit."
    )
