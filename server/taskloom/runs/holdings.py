"""The runs this process holds, from launch until their final record is settled, with the lease
expiry the database last confirmed for each.

The heartbeat renews every run here (executing or still writing its final record); the runner
asks before each step whether the lease is still valid, so a run whose lease could not be renewed
(the database unreachable for longer than the lease) stops instead of executing beside the copy
another process may have started after sweeping it.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass
class _Holding:
    expires_at: datetime
    finishing: bool = False


class Holdings:
    def __init__(self) -> None:
        self._runs: dict[str, _Holding] = {}
        # Set by the scheduler while its heartbeat renews leases. Without one (the CLI, a server
        # with TASKLOOM_SCHEDULER off) nothing renews them, so expiry says nothing about
        # whether another process took the run; the check before the first step still holds.
        self.renewing = False

    def hold(self, run_id: str, until: datetime) -> None:
        self._runs[run_id] = _Holding(until)

    def renewed(self, run_ids: Iterable[str], until: datetime) -> None:
        for run_id in run_ids:
            held = self._runs.get(run_id)
            if held is not None:
                held.expires_at = max(held.expires_at, until)

    def finishing(self, run_id: str) -> None:
        """Its steps are over; only its final record is still to be written."""
        held = self._runs.get(run_id)
        if held is not None:
            held.finishing = True

    def release(self, run_id: str) -> None:
        self._runs.pop(run_id, None)

    def ids(self) -> set[str]:
        return set(self._runs)

    def valid(self, run_id: str, now: datetime) -> bool:
        held = self._runs.get(run_id)
        if held is None or not self.renewing:
            return held is not None
        return now < held.expires_at

    def executing(self, run_id: str) -> bool:
        held = self._runs.get(run_id)
        return held is not None and not held.finishing
