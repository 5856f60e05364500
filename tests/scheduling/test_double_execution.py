"""Two schedulers on one database, their claim, launch and sweep steps driven one at a time with
a frozen clock: the interleavings that executed a fire twice on 0.1, reproduced exactly. Each
step calls a loopback endpoint that counts executions."""

from collections.abc import Callable
from datetime import datetime, timedelta

from taskloom.clock import FrozenClock
from taskloom.domain.runs import Run, RunStatus, RunTrigger
from taskloom.domain.storage import Claimed
from taskloom.domain.templates import Secrets
from taskloom.scheduling.scheduler import Scheduler, Timing
from taskloom.services import Services
from tests.scheduling.conftest import (
    LEASE_S,
    T0,
    claim_due,
    drain,
    hourly,
    runs_of,
    scheduler,
)


async def test_a_run_swept_before_its_launch_never_executes(
    pair: tuple[Services, Services], clock: FrozenClock, counted: tuple[str, Callable[[], int]]
) -> None:
    """A claimed run whose lease lapsed and that another process swept (and queued again) is
    not executed when its claimer launches it late; only the retry executes, once."""
    a, b = pair
    url, executions = counted
    task = await hourly(a, url, retry={"attempts": 2, "backoff_s": 0})
    clock.set(T0 + timedelta(hours=1))
    claimed = await claim_due(a, task)
    clock.set(clock.now() + timedelta(seconds=2 * LEASE_S))
    await scheduler(b)._heartbeat_once()  # sweeps A's run: interrupted, a retry queued
    scheduler(a)._start(claimed)  # A launches its copy late, as 0.1 did
    await drain(a)
    assert executions() == 0
    await scheduler(b)._take_queued()
    await drain(b)
    statuses = [(r.status, r.trigger) for r in await runs_of(a, task)]
    assert (executions(), statuses) == (
        1,
        [(RunStatus.INTERRUPTED, RunTrigger.SCHEDULE), (RunStatus.SUCCEEDED, RunTrigger.RETRY)],
    )


async def test_a_run_whose_lease_lapsed_stops_before_its_next_step(
    pair: tuple[Services, Services], clock: FrozenClock, counted: tuple[str, Callable[[], int]]
) -> None:
    """A run whose lease could not be renewed in time (no heartbeat got through) does not start
    its next step: it ends interrupted instead of executing beside a copy another process may
    have started after sweeping it."""
    a, _ = pair
    url, executions = counted
    task = await hourly(a, url)
    clock.set(T0 + timedelta(hours=1))
    run = (await claim_due(a, task)).plan.to_start[0]
    holdings = a.runs.holdings
    holdings.renewing = True  # as under a running heartbeat
    holdings.hold(run.id, clock.now())  # the lease confirmed until now, and no further

    async def lease() -> str | None:
        return None if holdings.valid(run.id, clock.now()) else "lost"

    final = await a.runs.runner.execute(
        task, run, secrets=Secrets({}), persist=_nothing, finish=_same, lease=lease
    )
    assert (final.status, final.error, executions()) == (RunStatus.INTERRUPTED, "lost", 0)


async def _nothing(_: Run) -> None:
    return None


async def _same(run: Run) -> Run:
    return run


class Watched(Scheduler):
    """Notes how many runs it had launched each time a claim batch starts."""

    launched: list[str]
    launched_at_claim: list[int]

    async def _claim_batch(self, batch: dict[str, datetime]) -> list[Claimed]:
        self.launched_at_claim.append(len(self.launched))
        return await super()._claim_batch(batch)

    def _start(self, claimed: Claimed) -> None:
        self.launched += [run.id for run in claimed.plan.to_start]
        super()._start(claimed)


async def test_each_claimed_batch_is_launched_before_the_next_claim(
    pair: tuple[Services, Services], clock: FrozenClock, counted: tuple[str, Callable[[], int]]
) -> None:
    """With more due fires than one claim batch, each batch's runs are launched before the next
    batch is claimed: no claimed run waits unlaunched behind later claims."""
    a, _ = pair
    url, executions = counted
    tasks = [await hourly(a, url) for _ in range(3)]
    clock.set(T0 + timedelta(hours=1))
    watched = Watched(
        a.store, a.runs, clock, process_id=a.process_id, role="a", timing=Timing(batch=1)
    )
    watched.launched, watched.launched_at_claim = [], []
    watched._pending = {t.id: t.next_fire_at for t in tasks if t.next_fire_at is not None}
    await watched._claim_pending()
    await drain(a)
    assert (watched.launched_at_claim, executions()) == ([0, 1, 2], 3)
