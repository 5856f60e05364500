"""Browser sign-in: a session per signed-in browser, kept in memory and named by a random id in
an HttpOnly, SameSite=Strict cookie; every action carries a CSRF token derived from the session.

Sessions end when the process restarts (the key and the table live in memory): the user signs
in again with the same token. At most MAX_SESSIONS are kept; the oldest go first."""

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskloom.clock import Clock

COOKIE = "taskloom_session"
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class Session:
    id: str
    principal: str | None  # None: the local single user (no tokens configured)
    expires_at: datetime


class Sessions:
    def __init__(self, clock: Clock, ttl_s: int) -> None:
        self.clock = clock
        self.ttl = timedelta(seconds=ttl_s)
        self._key = secrets.token_bytes(32)
        self._open: OrderedDict[str, Session] = OrderedDict()

    def open(self, principal: str | None) -> Session:
        session = Session(secrets.token_urlsafe(32), principal, self.clock.now() + self.ttl)
        self._open[session.id] = session
        while len(self._open) > MAX_SESSIONS:
            self._open.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        session = self._open.get(session_id or "")
        if session is None:
            return None
        if session.expires_at <= self.clock.now():
            del self._open[session.id]
            return None
        return session

    def close(self, session_id: str | None) -> None:
        self._open.pop(session_id or "", None)

    def csrf(self, session: Session) -> str:
        """The token every form and action of this session sends back: an HMAC of its id, so
        a page of another origin (which cannot read ours) cannot forge it."""
        return hmac.new(self._key, session.id.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(session), token or "")
