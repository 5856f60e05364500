"""When the database was unreachable, as this process saw it.

For the logs: one line when an outage starts and one when it ends (with how many operations
failed meanwhile), instead of a warning per failed statement. For the records: a fire that could
not be claimed because of it is recorded `missed` with that reason, not as "nobody was running"
or as skipped for an overlap that the outage caused.
"""

from collections import deque
from dataclasses import dataclass
from datetime import datetime

import structlog

log = structlog.get_logger(__name__)

KEEP = 16


@dataclass
class _Span:
    since: datetime  # the last success before the first failure
    until: datetime | None = None  # the first success after it; None while it lasts
    failures: int = 0


class Outage:
    def __init__(self, now: datetime) -> None:
        self._last_ok = now
        self._spans: deque[_Span] = deque(maxlen=KEEP)

    @property
    def ongoing(self) -> bool:
        return bool(self._spans) and self._spans[-1].until is None

    def failed(self, where: str, error: BaseException) -> None:
        if not self.ongoing:
            self._spans.append(_Span(self._last_ok))
            log.warning(
                "database_unreachable", where=where, error=f"{type(error).__name__}: {error}"[:300]
            )
        self._spans[-1].failures += 1

    def succeeded(self, now: datetime) -> None:
        self._last_ok = now
        if not self.ongoing:
            return
        span = self._spans[-1]
        span.until = now
        log.warning(
            "database_reachable_again",
            down_s=round((now - span.since).total_seconds(), 1),
            failed_operations=span.failures,
        )

    def reason(self, at: datetime) -> str | None:
        """Why a fire at `at` was not claimed then, if an outage this process saw covers it."""
        for span in self._spans:
            if span.since <= at and (span.until is None or at <= span.until):
                end = span.until.isoformat() if span.until else "now"
                return f"the database was unreachable from {span.since.isoformat()} to {end}"
        return None
