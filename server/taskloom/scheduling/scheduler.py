"""The timer and the loops around it. The database is the truth; APScheduler 3 (memory job store)
only decides when to wake.

One date job per active task, at its `next_fire_at`. Timers that go off together are claimed in
one batch transaction (`Store.claim_fires`); the claim decides, under the database's lock,
whether this process records the fire, so any number of processes can run this same code.
Around the timer: a revision poll that rebuilds it when another process changes a task, a queue
loop that takes queued runs (retries, catch-up, overlap 'queue'), and a heartbeat that renews this
process's leases and sweeps runs whose process died. At stop the heartbeat outlives the others
until in-flight runs have drained, so a graceful shutdown never looks like a dead process.

A claimed run is launched as soon as its batch's claim commits (never after later batches), and
checks in the database that its lease is still ours before its first step (`RunService`), so a
run swept meanwhile by another process is never executed a second time. Every loop ends when
`stop()` says so, whether or not a cancellation reaches it, and every wait in `stop()` is
bounded: a stop ends within the shutdown grace plus a few seconds.
"""

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from taskloom.clock import Clock
from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.storage import Claimed, FireContext, ProcessInfo, Store
from taskloom.domain.tasks import Task
from taskloom.errors import is_outage
from taskloom.runs.retention import Retention
from taskloom.runs.service import RunService
from taskloom.scheduling.outage import Outage

if TYPE_CHECKING:
    from apscheduler.executors.base import BaseExecutor
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = structlog.get_logger(__name__)

# Bounds of the waits in stop(): a claim in flight, a loop that ignores its cancellation (it
# still ends at its next turn), the process row's removal.
CLAIM_WAIT_S = 10.0
LOOP_STOP_S = 5.0
FORGET_WAIT_S = 5.0
# A process row whose heartbeat is this many leases old belongs to a process that was killed.
DEAD_AFTER_LEASES = 10


@dataclass(frozen=True)
class Timing:
    poll_s: float = 1.0
    lease_s: float = 30.0
    batch: int = 500
    max_concurrent_runs: int = 200

    @property
    def heartbeat_s(self) -> float:
        return self.lease_s / 3


class Scheduler:
    def __init__(
        self,
        store: Store,
        runs: RunService,
        clock: Clock,
        *,
        process_id: str,
        role: str,
        timing: Timing | None = None,
        retention: Retention | None = None,
    ) -> None:
        self.store = store
        self.runs = runs
        self.clock = clock
        self.process_id = process_id
        self.role = role
        self.timing = timing or Timing()
        self.retention = retention
        self.started_at: datetime | None = None
        self._timer: Timer | None = None
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[str, datetime] = {}
        self._drain: asyncio.Task[None] | None = None
        self._wake_queue = asyncio.Event()
        self._revision = -1
        self._stopping = False
        self._closing = False  # the heartbeat's own stop, after the drain
        self.outage = Outage(clock.now())

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        # Imported here, not with the module: ~20 ms that `taskloom serve` spent before its
        # first answer.
        self.started_at = self.clock.now()
        self._stopping = self._closing = False
        self._timer = Timer(
            self._timer_went_off,
            timezone=UTC,
            executors={"default": _inline_executor()},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self._timer.aps.start()
        await self._heartbeat_once()
        self.runs.holdings.renewing = True
        await self.rebuild()
        self._loops = {
            "revision_poll": self._loop("revision_poll", self.timing.poll_s, self._poll_revision),
            "queue": self._loop(
                "queue", self.timing.poll_s, self._take_queued, wake=self._wake_queue
            ),
            "heartbeat": self._loop(
                "heartbeat", self.timing.heartbeat_s, self._heartbeat_once, last=True
            ),
        }
        if self.retention is not None and not self.retention.policy.keeps_forever:
            every = self.retention.policy.interval_s
            self._loops["retention"] = self._loop("retention", every, self._prune)
        log.info("scheduler_started", process_id=self.process_id, role=self.role)

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop firing and taking queued runs; let in-flight runs finish within `grace_s`
        (default TASKLOOM_SHUTDOWN_GRACE_S) while their leases are still renewed, so no other
        process sweeps them meanwhile; then leave the process registry."""
        self._stopping = True
        await self._stop_timer()
        heartbeat = self._loops.pop("heartbeat", None)
        await _cancel(list(self._loops.values()))
        self._loops = {}
        await self._finish_claim()
        grace = self.runs.settings.shutdown_grace_s if grace_s is None else grace_s
        await self.runs.shutdown(grace)
        self._closing = True
        await _cancel([heartbeat] if heartbeat else [])
        try:
            async with asyncio.timeout(FORGET_WAIT_S):
                await self.store.forget_process(self.process_id)
        except Exception as exc:  # swept later as a dead process row
            log.info("process_row_left", error=f"{type(exc).__name__}"[:100])
        log.info("scheduler_stopped", process_id=self.process_id)

    async def _stop_timer(self) -> None:
        """Paused first, then shut down without waiting: a timer job runs inline when it goes
        off (`_inline_executor`: it only notes the fire, and nothing once stopping), so none is
        left half-run to be cancelled and logged as a failed job at a graceful stop."""
        if self._timer is None:
            return
        aps, self._timer = self._timer.aps, None
        aps.pause()
        await asyncio.sleep(0)  # one turn of the loop: the handed-over jobs complete
        aps.shutdown(wait=False)

    async def _finish_claim(self) -> None:
        """A claim in flight may commit and launch its runs (they then drain like the others);
        one that hangs (the database unreachable) is cancelled, and its fires stay due."""
        if self._drain is None or self._drain.done():
            return
        _, pending = await asyncio.wait([self._drain], timeout=CLAIM_WAIT_S)
        await _cancel(list(pending))

    def _loop(
        self,
        name: str,
        every_s: float,
        body: Callable[[], Awaitable[None]],
        wake: asyncio.Event | None = None,
        *,
        last: bool = False,
    ) -> "asyncio.Task[None]":
        """Run `body` every `every_s` (sooner when `wake` is set) until stop() says so: checked
        at every turn, so the loop ends even when a cancellation is lost (asyncio.wait_for of
        Python 3.11 swallows one that arrives as the awaited event is set)."""

        def going() -> bool:
            return not (self._closing if last else self._stopping)

        async def forever() -> None:
            while going():
                await _pause(every_s, wake)
                if going():
                    await self._guarded(name, body)

        return asyncio.create_task(forever(), name=f"taskloom-{name}")

    async def _guarded(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        try:
            await body()
        except Exception as exc:
            if is_outage(exc):
                self.outage.failed(name, exc)
            else:
                log.warning("scheduler_loop_error", loop=name, error=str(exc)[:300])

    # -- the timer ---------------------------------------------------------------------------

    async def rebuild(self) -> None:
        """Make the timer match the database: every active task armed at its next fire."""
        self._revision = await self.store.tasks_revision()
        wanted = dict(await self.store.scheduled())
        if self._timer is None:  # stopped meanwhile
            return
        for task_id, at in list(self._timer.armed.items()):
            if task_id not in wanted:
                self._timer.disarm(task_id)
            elif wanted[task_id] == at:  # already set
                del wanted[task_id]
        for task_id, at in wanted.items():
            self._timer.arm(task_id, at)

    def _set_timer(self, task_id: str, at: datetime | None) -> None:
        if self._timer is None:
            return
        if at is None:
            self._timer.disarm(task_id)
        else:
            self._timer.arm(task_id, at)

    async def on_task_changed(self, task: Task | None, task_id: str) -> None:
        """Same-process edits reach the timer at once; others via the revision poll."""
        self._set_timer(task_id, task.next_fire_at if task is not None else None)

    async def _poll_revision(self) -> None:
        revision = await self.store.tasks_revision()
        self.outage.succeeded(self.clock.now())
        if revision == self._revision:
            return
        if self.store.made_here(self._revision, revision):
            # Only this process's task changes: each reached the timer in on_task_changed
            # (a rebuild per second during a burst of creates was the create_task p99).
            self._revision = revision
            return
        await self.rebuild()

    def _timer_went_off(self, task_id: str, at: datetime) -> None:
        if self._stopping:  # the fire stays due in the database for the next process
            return
        self._pending[task_id] = at
        self._kick()

    def _kick(self, *, least: int = 1) -> None:
        """Claim pending fires if this process has room for at least `least` more runs (or
        for all that are pending). A fire left pending stays due in the database, where
        another process's timer may claim it first; ours then only re-arms."""
        if not self._pending or self._stopping:
            return
        if self._room() < min(least, len(self._pending)):
            return
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._claim_pending())

    def _room(self) -> int:
        return self.timing.max_concurrent_runs - len(self.runs.inflight)

    async def _claim_pending(self) -> None:
        """Claim pending fires in batches that fit this process's free capacity, and launch each
        batch's runs as soon as its claim commits: a claimed run never waits for later claims
        (unlaunched, it would wait with its lease unrenewed), and a burst bigger than one
        process's capacity is left for other processes to share."""
        while self._pending and not self._stopping and self._room() > 0:
            size = min(self.timing.batch, self._room())
            batch = dict(list(self._pending.items())[:size])
            for task_id in batch:
                del self._pending[task_id]
            for claimed in await self._claim_batch(batch):
                self._start(claimed)

    async def _claim_batch(self, batch: dict[str, datetime]) -> list[Claimed]:
        now = self.clock.now()
        try:
            claimed = await self.store.claim_fires(batch, self._fire_context(now))
        except Exception as exc:
            if is_outage(exc):
                self.outage.failed("claim", exc)
            else:
                log.warning("claim_failed", error=str(exc)[:300], fires=len(batch))
            for task_id, at in batch.items():
                self._set_timer(task_id, max(at, now) + timedelta(seconds=self.timing.poll_s))
            return []
        self.outage.succeeded(now)
        mine: list[Claimed] = []
        for task_id in batch:
            got = claimed.get(task_id)
            if isinstance(got, Claimed):
                mine.append(got)
                self._set_timer(task_id, got.plan.next_fire_at)
            else:
                self._set_timer(task_id, got)
        return mine

    def _fire_context(self, now: datetime) -> FireContext:
        """What the claim plans this batch's fires with (`plan_fire`, in the store): the runs
        it starts are this process's, stamped as `RunService.new_run` stamps them."""
        return FireContext(
            now=now,
            holder=self.process_id,
            lease=timedelta(seconds=self.runs.settings.lease_s),
            clock=self.clock.now,
            why_late=self.outage.reason,
        )

    def _start(self, claimed: Claimed) -> None:
        task, plan = claimed.task, claimed.plan
        if plan.truncated:
            log.warning("catchup_truncated", task_id=task.id, recorded=len(plan.runs))
        for run in plan.runs:
            # A run started here logs its own line when it ends (run_finished); one recorded
            # queued, skipped or missed has only this one.
            started = run.status == RunStatus.RUNNING
            (log.debug if started else log.info)(
                "fire_claimed", task_id=task.id, run_id=run.id, status=run.status
            )
        for run in plan.to_start:
            self._launch(task, run)
        if any(r.status == RunStatus.QUEUED for r in plan.runs):
            self._wake_queue.set()

    def _launch(self, task: Task, run: Run) -> None:
        job = self.runs.launch(task, run)
        # Fires waiting for room are claimed once a quarter of the capacity is free (not one
        # by one, which would cost a claim transaction per finished run).
        job.add_done_callback(lambda _: self._kick(least=self.timing.max_concurrent_runs // 4))
        if _may_queue(task):  # a run of this task may be waiting for this one to end
            job.add_done_callback(lambda _: self._wake_queue.set())

    async def _prune(self) -> None:
        """Old runs go in small batches between which claims and final records go on."""
        assert self.retention is not None
        await self.retention.prune()

    # -- queue and leases --------------------------------------------------------------------

    async def _take_queued(self) -> None:
        self._kick()  # fires still waiting for room, whatever freed it
        room = self._room()
        if room <= 0:
            return
        now = self.clock.now()
        until = now + timedelta(seconds=self.timing.lease_s)
        for task, run in await self.store.claim_queued(self.process_id, now, until, room):
            log.info("queued_run_claimed", task_id=task.id, run_id=run.id)
            self._launch(task, run)

    async def _heartbeat_once(self) -> None:
        """Renew the leases of every run this process holds (executing, or writing its final
        record), stop the ones it lost, sweep other processes' expired runs, and forget the
        process rows of long-dead processes."""
        now = self.clock.now()
        await self.store.heartbeat(self._process_info(now))
        self.outage.succeeded(now)
        until = now + timedelta(seconds=self.timing.lease_s)
        mine = self.runs.holdings.ids()
        held = await self.store.renew_leases(self.process_id, sorted(mine), until)
        self.runs.holdings.renewed(held, until)
        for run_id in mine - held:
            self.runs.abandon(run_id)  # logs run_lost_lease only if it was still executing
        swept = await self.store.sweep_expired(now)
        for run in swept:
            log.warning("run_interrupted", run_id=run.id, task_id=run.task_id)
        if swept:
            self._wake_queue.set()
        dead = now - timedelta(seconds=DEAD_AFTER_LEASES * self.timing.lease_s)
        for process_id in await self.store.forget_dead(dead):
            log.info("dead_process_forgotten", process=process_id)

    def _process_info(self, now: datetime) -> ProcessInfo:
        return ProcessInfo(
            id=self.process_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            role=self.role,
            started_at=self.started_at or now,
            heartbeat_at=now,
        )


class Instants:
    """Armed tasks by fire instant: one timer per instant, not per task. The tasks due at the
    same instant (a daily 09:00, a burst of creates on one cron) share it, and arming one
    more task at an instant already armed is a dictionary entry, not an APScheduler job
    (whose every add_job checks its callable's signature and builds its trigger)."""

    def __init__(self) -> None:
        self.armed: dict[str, datetime] = {}  # each armed task's instant
        self._due: dict[datetime, set[str]] = {}  # each armed instant's tasks

    def add(self, task_id: str, at: datetime) -> bool:
        """Arm `task_id`, not armed (`remove` it first), at `at`; True if `at` is new."""
        self.armed[task_id] = at
        tasks = self._due.setdefault(at, set())
        tasks.add(task_id)
        return len(tasks) == 1

    def remove(self, task_id: str) -> datetime | None:
        """Disarm `task_id`: the instant it leaves with no task, if it does, else None."""
        at = self.armed.pop(task_id, None)
        if at is None:
            return None
        tasks = self._due[at]
        tasks.discard(task_id)
        if tasks:
            return None
        del self._due[at]
        return at

    def come(self, at: datetime) -> list[str]:
        """The tasks due at `at`, disarmed."""
        tasks = sorted(self._due.pop(at, ()))
        for task_id in tasks:
            del self.armed[task_id]
        return tasks


class Timer:
    """APScheduler's asyncio scheduler as the process's timer: `arm(task_id, at)`, and
    `went_off(task_id, at)` when `at` comes, unless the task was disarmed or armed elsewhere
    meanwhile. One date job per instant (`Instants`). APScheduler is imported only when a
    scheduler starts (~20 ms that `taskloom serve` spent before its first answer)."""

    def __init__(self, went_off: Callable[[str, datetime], None], **options: Any) -> None:
        from apscheduler.jobstores.memory import MemoryJobStore

        self.went_off = went_off
        self.instants = Instants()
        self.armed = self.instants.armed
        self.jobs = MemoryJobStore()
        # APScheduler wakes up (recomputes its timer, through a thread-safe call on the loop)
        # after every job it is given; its timer is already due at or before its earliest
        # job, so a job no earlier than that needs none: `quiet` while adding one.
        self.quiet = False
        self.aps = _quiet_scheduler(lambda: self.quiet)(jobstores={"default": self.jobs}, **options)

    def arm(self, task_id: str, at: datetime) -> None:
        if self.armed.get(task_id) == at:
            return
        self.disarm(task_id)
        if not self.instants.add(task_id, at):
            return
        earliest = self.jobs.get_next_run_time()
        self.quiet = earliest is not None and earliest <= at
        try:
            self.aps.add_job(
                self._come, "date", run_date=at, args=[at], id=_job_id(at), replace_existing=True
            )
        finally:
            self.quiet = False

    def disarm(self, task_id: str) -> None:
        emptied = self.instants.remove(task_id)
        if emptied is not None:
            with contextlib.suppress(Exception):  # gone off meanwhile: nothing to remove
                self.aps.remove_job(_job_id(emptied))

    def _come(self, at: datetime) -> None:
        for task_id in self.instants.come(at):
            self.went_off(task_id, at)


def _job_id(at: datetime) -> str:
    """An instant's job: the same for every offset it is written with."""
    return at.astimezone(UTC).isoformat()


def _quiet_scheduler(quiet: Callable[[], bool]) -> "type[AsyncIOScheduler]":
    """APScheduler's asyncio scheduler, skipping its wake-up while `quiet()`."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    class QuietScheduler(AsyncIOScheduler):  # type: ignore[misc]
        def wakeup(self) -> None:
            if not quiet():
                super().wakeup()

    return QuietScheduler


def _inline_executor() -> "BaseExecutor":
    """Runs a timer job at once on the event loop: it only notes the fire (`_timer_went_off`),
    so it needs no task of its own, as APScheduler's asyncio executor makes for each job.
    APScheduler's own inline executor (named for debugging, but it is just that)."""
    from apscheduler.executors.debug import DebugExecutor

    return DebugExecutor()


def _may_queue(task: Task) -> bool:
    return task.overlap == "queue" or task.catchup == "all" or task.retry.attempts > 1


async def _pause(every_s: float, wake: asyncio.Event | None) -> None:
    """Sleep `every_s`, or until `wake` is set."""
    if wake is None:
        await asyncio.sleep(every_s)
        return
    waiter = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait([waiter], timeout=every_s)
    finally:
        waiter.cancel()
    wake.clear()


async def _cancel(tasks: "list[asyncio.Task[None]]") -> None:
    """Cancel and wait, bounded: a loop that lost its cancellation ends at its next turn."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, _ = await asyncio.wait(tasks, timeout=LOOP_STOP_S)
    for task in done:
        if not task.cancelled():
            task.exception()  # retrieved: never "Task exception was never retrieved"
