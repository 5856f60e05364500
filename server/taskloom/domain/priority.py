"""The order queued runs start in when more are due than can start: by priority, with ageing.

A task's `priority` (1-10, default 5) is where its queued runs start in line; every
`AGEING_S` seconds a run waits raises its effective priority by one, so a low-priority run is
never starved: it overtakes a newer high-priority run once it has waited `AGEING_S` seconds for
each level between them. Equal effective priorities keep fire order.

effective priority = priority + waited_s / AGEING_S, waited_s = now - the run's created_at

Ordering by that, highest first, is ordering by `created_at - priority * AGEING_S`, earliest
first (`now` is the same for every run compared), which is what the store sorts by.
"""

DEFAULT_PRIORITY = 5
MIN_PRIORITY, MAX_PRIORITY = 1, 10
AGEING_S = 60.0


def effective_priority(priority: int, waited_s: float) -> float:
    """A queued run's place in line: its task's priority plus one level per AGEING_S waited."""
    return priority + max(0.0, waited_s) / AGEING_S


def queue_key(priority: int, created_epoch_s: float) -> float:
    """The sort key (earliest first) equivalent to effective priority (highest first)."""
    return created_epoch_s - priority * AGEING_S
