"""Apprise URLs as notification channels: whether one can deliver here, and delivering to it.

Apprise (https://github.com/caronc/apprise) speaks to email, ntfy, Telegram, Discord, Slack,
Matrix, Gotify, Pushover and about 250 more services, each named by a URL (`ntfy://topic`,
`tgram://token/chat`, `mailtos://user:pass@host`, `json://host/path`, ...).

`problem(url)` says why a URL cannot deliver: a scheme Apprise does not know, a URL its service
cannot parse (both are mistakes in the task: refused at create), or a service this machine lacks
(e.g. `dbus://` without D-Bus bindings: accepted with a warning, since a worker elsewhere may
have it). Checks load Apprise's plugins (about 1 s, once per process), so callers run them in a
thread.

Delivery runs Apprise's blocking code in a thread, through the same address guard as
`http_request`: while a delivery thread runs, every connection it opens (urllib3's, which
Apprise's HTTP services use, and `socket.create_connection`, which smtplib and most other
protocol clients use) resolves the host itself, refuses private, loopback, link-local and
metadata addresses unless TASKLOOM_HTTP_ALLOW_HOSTS allows them, and connects to a vetted
address only. Both functions are wrapped once, on first delivery; in any other thread they
behave exactly as before. A client that opens sockets another way (none of the common services)
is not guarded. Limits: at most MAX_URLS URLs per notification, MAX_URL_CHARS per URL; each
connect and read waits at most SOCKET_TIMEOUT_S, and a delivery is abandoned (the step fails)
after DELIVERY_TIMEOUT_S. Apprise reads a service's answer itself, so its size is not capped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from taskloom_tools.address_guard import (
    METADATA_HOSTS,
    AllowList,
    IPAddress,
    _refused_message,
    refusal,
)
from taskloom_tools.base import StepToolError

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_URLS = 10
MAX_URL_CHARS = 2000
SOCKET_TIMEOUT_S = 10.0
DELIVERY_TIMEOUT_S = 30.0
SCHEME = re.compile(r"^\s*(?P<scheme>[a-z0-9]{1,32})://", re.I)
URL_FIX = (
    "Give an Apprise URL such as ntfy://my-topic, tgram://BOT_TOKEN/CHAT_ID, "
    "discord://WEBHOOK_ID/TOKEN, mailtos://user:password@example.com or json://host/path "
    "(the list of services and their URL forms: https://github.com/caronc/apprise/wiki)."
)
Kind = Literal["unknown", "malformed", "unavailable"]


@dataclass(frozen=True)
class Problem:
    kind: Kind
    message: str

    @property
    def is_mistake(self) -> bool:
        """A mistake in the URL itself (refused at create), not something this machine lacks."""
        return self.kind != "unavailable"


_LOCAL = threading.local()
_LOAD_LOCK = threading.Lock()


def _manager() -> Any:
    """Apprise's plugin registry, loaded once. Loading imports every plugin; one of them imports
    the deprecated `imghdr`, whose warning is Apprise's to fix and would otherwise turn into an
    error wherever warnings are errors."""
    from apprise.plugins import N_MGR

    with _LOAD_LOCK:
        if not getattr(_manager, "loaded", False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                N_MGR.load_modules()  # type: ignore[no-untyped-call]
            _install()
            _manager.loaded = True  # type: ignore[attr-defined]
    return N_MGR


def problem(url: str) -> Problem | None:
    """Why `url` cannot deliver from this machine, or None. Blocking: call it in a thread."""
    if len(url) > MAX_URL_CHARS:
        return Problem("malformed", f"It is {len(url)} characters, over {MAX_URL_CHARS}.")
    match = SCHEME.match(url)
    if match is None:
        return Problem("malformed", f"It is not a URL (no scheme://). {URL_FIX}")
    scheme = match.group("scheme").lower()
    manager = _manager()
    if scheme not in manager and scheme not in ("http", "https"):
        return Problem(
            "unknown", f"Apprise has no {scheme}:// service (nor has Taskloom). {URL_FIX}"
        )
    if scheme in manager and not manager[scheme].enabled:
        return Problem("unavailable", _unavailable(scheme, manager[scheme]))
    if _instantiate(url) is None:
        return Problem("malformed", _malformed(scheme, manager))
    return None


def _unavailable(scheme: str, plugin: Any) -> str:
    needs = plugin.requirements.get("details") if isinstance(plugin.requirements, dict) else None
    return (
        f"{scheme}:// ({plugin.service_name}) cannot deliver on this machine"
        + (f": {needs}" if needs else "")
        + ". Install what it needs where Taskloom runs, or use another channel such as "
        "ntfy:// or an email URL."
    )


def _malformed(scheme: str, manager: Any) -> str:
    if scheme in ("http", "https"):
        return (
            "Apprise does not recognise this http(s) URL as a service's own webhook URL. For a "
            "Slack-style webhook use webhook_url; for a plain JSON POST use json://host/path."
        )
    service = manager[scheme].service_name
    return f"It is not a valid {service} URL: a part is missing or malformed. {URL_FIX}"


def _instantiate(url: str) -> Any:
    from apprise import Apprise

    return Apprise.instantiate(url)


async def check(url: str) -> Problem | None:
    """`problem` off the event loop."""
    return await asyncio.to_thread(problem, url)


def hidden_form(url: str) -> str | None:
    """The URL as Apprise shows it with its credentials masked, when it carries any (a token,
    a password); None when it carries none or is not a deliverable URL. Blocking."""
    if problem(url) is not None:
        return None
    plugin = _instantiate(url)
    shown = str(plugin.url(privacy=True)).split("?", 1)[0]
    return shown if plugin.url(privacy=False) != plugin.url(privacy=True) else None


async def credential(url: str) -> str | None:
    """`hidden_form` off the event loop."""
    return await asyncio.to_thread(hidden_form, url)


async def deliver(url: str, title: str, body: str, allow: str, level: str = "info") -> None:
    """Send one notification to `url`; raise StepToolError naming the service and why it
    failed (the URL itself is a credential: never shown)."""
    found = await check(url)
    if found is not None:
        raise StepToolError(f"This Apprise URL cannot deliver: {found.message}")
    job = asyncio.to_thread(_send, url, title, body, AllowList.parse(allow), level)
    try:
        async with asyncio.timeout(DELIVERY_TIMEOUT_S):
            sent, said, refused, service = await job
    except TimeoutError:
        raise StepToolError(
            f"An Apprise URL did not deliver within {DELIVERY_TIMEOUT_S:g} s; the service may "
            "be down or unreachable from here."
        ) from None
    if refused:
        raise StepToolError(f"{service} was not notified: {refused}")
    if not sent:
        raise StepToolError(
            f"{service} did not accept the notification: {said or 'no reason given'}. Check "
            "the URL's credentials and target."
        )


def _send(
    url: str, title: str, body: str, allow: AllowList, level: str
) -> tuple[bool, str, str | None, str]:
    """In a worker thread: deliver under the address guard; (sent, what Apprise said, why the
    guard refused, the service's name)."""
    plugin = _instantiate(url)
    service = str(plugin.service_name)
    plugin.socket_connect_timeout = plugin.socket_read_timeout = SOCKET_TIMEOUT_S
    _LOCAL.allow, _LOCAL.refused, _LOCAL.said = allow, None, []
    try:
        sent = bool(plugin.notify(body=body, title=title, notify_type=level))
    finally:
        refused, said = _LOCAL.refused, _LOCAL.said
        _LOCAL.allow = _LOCAL.refused = _LOCAL.said = None
    return sent, "; ".join(said)[-500:], refused, service


# -- the address guard for the delivery threads ------------------------------------------------


class _ThreadLog(logging.Handler):
    """Keeps what Apprise logs in a delivery thread, to say why a delivery failed."""

    def emit(self, record: logging.LogRecord) -> None:
        said = getattr(_LOCAL, "said", None)
        if said is not None and record.levelno >= logging.WARNING:
            said.append(record.getMessage()[:300])


def _install() -> None:
    import urllib3.util.connection as urllib3_connection

    urllib3_connection.create_connection = _guarded(urllib3_connection.create_connection)
    socket.create_connection = _guarded(socket.create_connection)
    apprise_log = logging.getLogger("apprise")
    apprise_log.addHandler(_ThreadLog())
    apprise_log.propagate = False  # its lines may carry parts of URLs; we report its reasons


def _guarded(connect: Callable[..., socket.socket]) -> Callable[..., socket.socket]:
    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        allow = getattr(_LOCAL, "allow", None)
        if allow is None:  # not a delivery thread: untouched
            return connect(address, *args, **kwargs)
        host, port = address[0], int(address[1])
        try:
            addresses = vetted(host, port, allow)
        except StepToolError as exc:
            _LOCAL.refused = exc.message
            raise OSError(exc.message) from None
        error: OSError | None = None
        for ip in addresses:
            try:
                return connect((ip, port), *args, **kwargs)
            except OSError as exc:
                error = exc
        assert error is not None
        raise error

    return guarded


def vetted(host: str, port: int, allow: AllowList) -> list[str]:
    """The addresses of `host` that may be reached (blocking); raises if there are none."""
    name = host.lower().strip("[]").rstrip(".")
    if name in METADATA_HOSTS and name not in allow.hosts:
        raise StepToolError(f"Refused to connect to {host}: it is a cloud metadata host.")
    try:
        ips: list[IPAddress] = [ipaddress.ip_address(name)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise StepToolError(f"Could not resolve host {name!r}.") from exc
        ips = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if name in allow.hosts:
        return [str(ip) for ip in ips]
    allowed = [str(ip) for ip in ips if refusal(ip) is None or allow.covers_ip(ip)]
    if not allowed:
        raise StepToolError(_refused_message(host, ips))
    return allowed
