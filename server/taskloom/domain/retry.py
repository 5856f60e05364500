"""Retry policy: how long to wait before the next attempt, and whether a run gets one.

Used for a step's attempts inside a run (the runner) and for a whole run's next attempt (the
scheduler queues it); one module so both follow the same backoff.
"""

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from taskloom.domain.runs import Run, RunCause, RunStatus
from taskloom.domain.tasks import RetryPolicy, Task
from taskloom.ids import new_id


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter for the wait after failed attempt `attempt` (1-based)."""
    ceiling = min(policy.max_backoff_s, policy.backoff_s * 2 ** (attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def retry_run(task: Task, run: Run, now: datetime) -> Run | None:
    """The next attempt of a failed or interrupted run, queued after a backoff, if the task's
    retry policy has attempts left."""
    if run.status not in (RunStatus.FAILED, RunStatus.INTERRUPTED):
        return None
    if run.attempt >= task.retry.attempts:
        return None
    delay = backoff_delay(task.retry, run.attempt)
    return Run(
        id=new_id("run", now),
        task_id=task.id,
        status=RunStatus.QUEUED,
        cause=RunCause.RETRY,
        fire_time=run.fire_time,
        attempt=run.attempt + 1,
        created_at=now,
        not_before=now + timedelta(seconds=delay),
        event=run.event,
    )


def doubling(first_s: float, cap_s: float) -> Iterator[float]:
    """Waits that double from `first_s` up to `cap_s`, without end: for retrying a write while
    the database is unreachable (not a task's retry policy, which `backoff_delay` follows)."""
    wait = first_s
    while True:
        yield wait
        wait = min(wait * 2, cap_s)
