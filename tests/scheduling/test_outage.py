"""A real PostgreSQL outage (the database refuses connections and its sessions are terminated)
while a finished run's final record is being written: the write is retried until it lands, and
the run is neither re-run nor recorded interrupted."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from taskloom.clock import FrozenClock
from taskloom.domain.runs import RunStatus
from taskloom.errors import StoreUnavailable
from taskloom.services import Services
from tests.conftest import _blocking, _pg_admin, make_settings
from tests.scheduling.conftest import (
    LEASE_S,
    T0,
    claim_due,
    hourly,
    runs_of,
    scheduler,
    two_processes,
)


@pytest.fixture
async def two(
    pg_url: str, tmp_path: Path, clock: FrozenClock
) -> AsyncIterator[tuple[Services, Services]]:
    settings = make_settings(tmp_path, database_url=pg_url, lease_s=LEASE_S)
    async with two_processes(settings, clock) as both:
        yield both


def outage(pg_url: str, *, down: bool) -> None:
    """Refuse (and cut) every connection to the test database, or allow them again."""
    name = pg_url.rsplit("/", 1)[1]
    allow = "false" if down else "true"
    _blocking(_pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {allow}'))
    if down:
        _blocking(
            _pg_admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
        )


async def until(probe: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def heartbeat(services: Services) -> None:
    """One heartbeat, as the loop retries it: each pooled connection the outage cut fails once."""
    for _ in range(20):
        try:
            await scheduler(services)._heartbeat_once()
            return
        except StoreUnavailable:
            continue
    pytest.fail("the heartbeat never got through after the outage")


async def test_a_final_record_is_retried_through_an_outage(
    two: tuple[Services, Services], pg_url: str, clock: FrozenClock
) -> None:
    """A final write that fails while the database is down lands once it is back; the run is
    recorded succeeded, once, and a later sweep finds nothing to interrupt or retry."""
    a, b = two
    task = await hourly(a, "http://127.0.0.1:9/unused", retry={"attempts": 2, "backoff_s": 0})
    clock.set(T0 + timedelta(hours=1))
    run = (await claim_due(a, task)).plan.to_start[0]
    a.runs.holdings.hold(run.id, clock.now() + timedelta(seconds=LEASE_S))
    done = run.model_copy(
        update={"status": RunStatus.SUCCEEDED, "finished_at": clock.now(), "duration_ms": 5}
    )
    with capture_logs() as logs:
        outage(pg_url, down=True)
        try:
            final = asyncio.create_task(a.runs._final(task, done))
            await until(
                lambda: any(e["event"] == "run_final_write_retrying" for e in logs),
                "the final write to fail and be retried",
            )
        finally:
            outage(pg_url, down=False)
        await asyncio.wait_for(final, timeout=60)
    clock.set(clock.now() + timedelta(seconds=10 * LEASE_S))
    await heartbeat(b)
    runs = await runs_of(a, task)
    assert [(r.status, r.attempt) for r in runs] == [(RunStatus.SUCCEEDED, 1)]
    stored = await a.tasks.get(task.id, owner=None)
    assert (stored.run_count, stored.last_run_status) == (1, "succeeded")
