"""Run use-cases: run a task now, dry-run a chain, read history, cancel; each run's execution
under its lease, handing its end to `Aftermath` (summary, final record, retry, notification)."""

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from taskloom.access import Access
from taskloom.answers import RunAnswer
from taskloom.clock import Clock
from taskloom.domain.planning import event_run, overlap_status
from taskloom.domain.runs import Run, RunCause, RunStatus, StepResult, StepStatus
from taskloom.domain.storage import Page, Quotas, Store, stamped_run
from taskloom.domain.tasks import Step, Task, TaskSpec, TaskStatus
from taskloom.domain.templates import Secrets
from taskloom.errors import Conflict, InvalidInput, NotFound, TaskloomError
from taskloom.runs.aftermath import Aftermath
from taskloom.runs.holdings import Holdings
from taskloom.runs.runner import CatalogStepCaller, Progress, Runner, secret_names
from taskloom.secrets import load_secrets
from taskloom.settings import Settings
from taskloom.tasks.readiness import Surroundings
from taskloom.tasks.secret_use import check_grants
from taskloom.tasks.validate import validate_task

log = structlog.get_logger(__name__)

DRY_RUN_ID = "tsk_dry_run"
RUN_HINT = "Call task_history to see the ids of recent runs."
# At shutdown, final records still being retried after the grace get this much longer.
FINAL_WAIT_S = 5.0
LEASE_LOST = (
    "Interrupted: this process could not renew the run's lease in time (was the database "
    "unreachable?), so it stopped before the next step rather than risk running it twice."
)


@dataclass(frozen=True)
class Trial:
    """How a dry run is run: for whom, as which kind of fire, and beside which stored task
    (its name and timezone, and its last finished run as `prev`)."""

    owner: str
    event: dict[str, Any] | None = None
    fire_time: datetime | None = None
    task: Task | None = None
    progress: Progress | None = None

    @property
    def cause(self) -> RunCause:
        if self.event is not None:
            return RunCause.EVENT
        return RunCause.SCHEDULE if self.fire_time is not None else RunCause.MANUAL


@dataclass(frozen=True)
class ManualStart:
    """A manual run as started: `job` executes it here; None when it was queued."""

    task: Task
    run: Run
    job: "asyncio.Task[Run] | None"


class RunService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: Settings,
        runner: Runner,
        caller: CatalogStepCaller,
        process_id: str,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.runner = runner
        self.caller = caller
        self.process_id = process_id
        self.quotas = Quotas(
            concurrent=settings.max_concurrent_runs,
            per_minute=settings.max_runs_per_minute,
            queued=settings.max_queued_runs,
        )
        self.access = Access.from_settings(settings)
        # Told of every run this process records as finished (the metrics observe them).
        self.finished: list[Callable[[Task, Run], None]] = []
        self.aftermath = Aftermath(
            store, caller, clock, settings, process_id, self._secrets_for, self.finished
        )
        self.inflight: dict[str, asyncio.Task[Run]] = {}
        self.holdings = Holdings()
        self._finals: set[asyncio.Task[Run]] = set()
        self.stopping = False
        self.lifecycle = self.aftermath.lifecycle  # run starts here, ends in aftermath

    # -- starting runs -----------------------------------------------------------------------

    def new_run(
        self,
        task: Task,
        cause: RunCause,
        *,
        fire_time: datetime | None = None,
        attempt: int = 1,
        event: dict[str, Any] | None = None,
        status: RunStatus = RunStatus.RUNNING,
    ) -> Run:
        """A new run; a running one is held by this process under a fresh lease."""
        return stamped_run(
            task, cause, self.clock.now(), holder=self.process_id,
            lease=timedelta(seconds=self.settings.lease_s), fire_time=fire_time, attempt=attempt,
            event=event, status=status,
        )  # fmt: skip

    async def start_manual(
        self,
        task_id: str,
        *,
        owner: str | None,
        watch: Callable[[Task, Run], Progress | None] | None = None,
    ) -> ManualStart:
        """Run a task now, outside its schedule: the one way `run_task` and `taskloom run` start
        a run. Refused when the task has finished, past the owner's quotas, or by its overlap
        policy; queued behind the run in progress under overlap 'queue'; else executed by this
        process, reporting to `watch(task, run)`'s progress callback."""
        task, run = await self.admit_manual(task_id, owner=owner)
        if run.status == RunStatus.QUEUED:
            return ManualStart(task, run, None)
        progress = watch(task, run) if watch is not None else None
        return ManualStart(task, run, self.launch(task, run, progress=progress))

    async def admit_manual(self, task_id: str, *, owner: str | None) -> tuple[Task, Run]:
        """Record a manual run of the task under its overlap policy and the owner's quotas:
        running (held by this process, for the caller to execute) or queued; else refused.
        `start_manual` is the use-case; this is its admission alone."""

        def make(task: Task, busy: int, queued: int) -> Run:
            check_runnable(task)
            return self.new_run(task, RunCause.MANUAL, status=manual_status(task, busy, queued))

        return await self.store.admit_manual(task_id, owner, self.clock.now(), self.quotas, make)

    def launch(self, task: Task, run: Run, progress: Progress | None = None) -> "asyncio.Task[Run]":
        """Execute a run this process holds; it keeps going if the requesting client leaves."""
        self.holdings.hold(run.id, run.lease_expires_at or self._lease_until())
        job = asyncio.create_task(self.execute(task, run, progress=progress), name=run.id)
        self.inflight[run.id] = job
        job.add_done_callback(lambda _: self.inflight.pop(run.id, None))
        return job

    def _lease_until(self) -> datetime:
        return self.clock.now() + timedelta(seconds=self.settings.lease_s)

    async def execute(self, task: Task, run: Run, *, progress: Progress | None = None) -> Run:
        try:
            why = await self._take(run)
        except asyncio.CancelledError:  # cancelled before its first step: still recorded
            stopped = self._refused(task, run, "The run was cancelled.", RunStatus.CANCELLED)
            await asyncio.shield(self._final(task, stopped))
            raise
        if why is not None:
            log.warning("run_not_started", run_id=run.id, reason=why)
            self.holdings.release(run.id)
            return run
        try:
            secrets = self._secrets_for(task.owner, secret_names(task))
            prev = None
            if reads_prev(task):  # a read transaction per run: only where `prev` can be seen
                prev = await self.store.last_finished_run(task.id, before=run.id)
        except TaskloomError as exc:  # e.g. a secrets file others can read: record, never hang
            return await self._final(task, self._refused(task, run, exc.message))

        async def persist(snapshot: Run) -> None:
            await self.store.save_progress(snapshot, holder=self.process_id)

        async def finish(final: Run) -> Run:
            return await self._final(task, final)

        async def lease() -> str | None:
            if self.holdings.valid(run.id, self.clock.now()):
                return None
            why = await self._take(run)  # lapsed here: ask the database before the next step
            if why is None:
                return None
            log.warning("run_lease_lost", run_id=run.id, reason=why)
            return LEASE_LOST

        self.lifecycle.started(task, run)
        return await self.runner.execute(
            task, run, secrets=secrets, persist=persist, finish=finish, progress=progress,
            prev=prev, lease=lease,
        )  # fmt: skip

    async def _take(self, run: Run) -> str | None:
        """Confirm in the database that this process still holds the run, renewing its lease;
        None if so, else why not. Asked before the first step (a run claimed earlier may have
        been swept and retried by another process since: then this copy never starts), and
        before a later step once the heartbeat has not renewed the lease in time. A lease that
        merely expired is taken again while nobody swept the run: the check and the renewal
        happen under the row's lock, which a sweep takes too."""
        now, until = self.clock.now(), self._lease_until()
        try:
            held = await self.store.begin_run(run, holder=self.process_id, now=now, until=until)
        except Exception as exc:
            return f"the database could not be asked ({type(exc).__name__})"
        if not held:
            return "another process swept or cancelled it"
        self.holdings.hold(run.id, until)  # also when executed without launch (the CLI)
        return None

    async def _final(self, task: Task, run: Run) -> Run:
        """The final record, in a task of its own that shutdown can wait for (the runner shields
        it from the run's cancellation)."""
        self.holdings.finishing(run.id)
        ending = self.aftermath.finish(
            task, run, stopping=self.stopping, retry=task.id != DRY_RUN_ID
        )
        job = asyncio.create_task(ending, name=f"{run.id}-final")
        self._finals.add(job)
        job.add_done_callback(self._finals.discard)
        job.add_done_callback(lambda _: self.holdings.release(run.id))
        return await job

    def _secrets_for(self, owner: str, names: set[str]) -> Secrets:
        """The values of `names`; raises when one is not granted to `owner` (a grant withdrawn
        after the task was saved)."""
        refused = self.access.refused_secrets(owner, names)
        if refused:
            raise Conflict(
                f"Secret(s) {', '.join(refused)} are not granted to {owner!r}; ask the operator "
                "to grant them in TASKLOOM_SECRET_GRANTS, or stop using them in this task."
            )
        return load_secrets(names, self.settings.secrets_file)

    def _refused(
        self, task: Task, run: Run, error: str, status: RunStatus = RunStatus.FAILED
    ) -> Run:
        """The record of a run that could not start: failed (or cancelled), no step run."""
        now = self.clock.now()
        steps = [
            StepResult(id=s.id, index=i, tool=s.tool, status=StepStatus.SKIPPED)
            for i, s in enumerate(task.steps)
        ]
        started = run.started_at or now
        return run.model_copy(
            update={
                "status": status,
                "started_at": started,
                "finished_at": now,
                "duration_ms": int((now - started).total_seconds() * 1000),
                "error": error,
                "steps": steps,
            }
        )

    # -- events ------------------------------------------------------------------------------

    async def emit(self, name: str, payload: dict[str, Any], *, owner: str | None) -> list[Run]:
        """Start the tasks whose trigger listens to `name`; the payload is `{{ event }}`."""
        check_payload_size(payload, self.settings.max_event_payload_bytes)
        now = self.clock.now()

        def make(task: Task, busy: int, queued: int) -> Run:
            def new(kind: RunCause, _: datetime, status: RunStatus) -> Run:
                return self.new_run(task, kind, event=payload, status=status)

            return event_run(task, now, busy=busy, queued=queued, new_run=new)

        claimed = await self.store.admit_event(name, owner, now, self.quotas, make)
        for task, run in claimed:
            if run.status == RunStatus.RUNNING:
                self.launch(task, run)
        log.info("event_emitted", event_name=name, runs=len(claimed))
        return [run for _, run in claimed]

    # -- dry runs ----------------------------------------------------------------------------

    async def dry_run(self, steps: Sequence[Step], trial: Trial) -> RunAnswer:
        """Execute a chain once without saving anything; `trial` says as whom and as what kind
        of fire (event payload, fire time, the stored task whose last run is `prev`)."""
        spec = TaskSpec(name=trial.task.name if trial.task else "dry run", steps=list(steps))
        around = Surroundings(now=self.clock.now(), settings=self.settings, dry_run=True)
        warnings = await validate_task(spec, self.caller.catalog, around)
        check_grants(spec, owner=trial.owner, access=self.access)
        task = self._trial_task(spec, trial)
        run = self.new_run(task, trial.cause, fire_time=trial.fire_time, event=trial.event)
        prev = None
        if trial.task is not None:
            prev = await self.store.last_finished_run(trial.task.id, before=run.id)
        secrets = self._secrets_for(trial.owner, secret_names(task))

        async def discard(_: Run) -> None:
            return None

        async def keep(final: Run) -> Run:
            return final

        final = await self.runner.execute(
            task, run, secrets=secrets, persist=discard, finish=keep, progress=trial.progress,
            prev=prev,
        )  # fmt: skip
        message = f"Dry run {final.status.value}; nothing was saved."
        return RunAnswer(run=final, message=message, warnings=warnings)

    def _trial_task(self, spec: TaskSpec, trial: Trial) -> Task:
        now = self.clock.now()
        tz = trial.task.timezone if trial.task else self.settings.timezone
        return Task(
            **spec.fields(),
            id=DRY_RUN_ID,
            owner=trial.owner,
            timezone=tz,
            created_at=now,
            updated_at=now,
        )

    # -- reading and cancelling --------------------------------------------------------------

    async def get(self, run_id: str, *, owner: str | None) -> Run:
        run = await self.store.get_run(run_id, owner=owner)
        if run is None:
            raise NotFound("run", run_id, RUN_HINT)
        return run

    async def history(
        self,
        *,
        owner: str | None,
        task_id: str | None,
        statuses: Sequence[RunStatus],
        limit: int,
        cursor: str | None,
    ) -> Page[Run]:
        return await self.store.list_runs(
            owner=owner, task_id=task_id, statuses=statuses, limit=limit, cursor=cursor
        )

    async def cancel(self, run_id: str, *, owner: str | None) -> Run:
        run = await self.get(run_id, owner=owner)
        if run.status.finished:
            raise Conflict(
                f"Run {run_id!r} already ended with status {run.status.value!r}; "
                "there is nothing to cancel."
            )
        job = self.inflight.get(run_id)
        if job is not None:
            job.cancel()
            await asyncio.wait([job], timeout=10)
        else:
            await self.store.update_run_status(
                run_id, RunStatus.CANCELLED, when=self.clock.now(), error="Cancelled by request."
            )
        log.info("run_cancel_requested", run_id=run_id, here=job is not None)
        return await self.get(run_id, owner=owner)

    def abandon(self, run_id: str) -> None:
        """Another process took this run (cancelled it, or swept it after our lease lapsed):
        stop working on it; its record stays as they left it."""
        if not self.holdings.executing(run_id):
            return  # its final record is being written: that write finds out for itself
        log.info("run_lost_lease", run_id=run_id)
        job = self.inflight.get(run_id)
        if job is not None:
            job.cancel()

    def hurry(self) -> None:
        """Cut the runs still going short now (a second stop signal): recorded interrupted."""
        self.stopping = True
        for job in list(self.inflight.values()):
            job.cancel()

    async def shutdown(self, grace_s: float) -> None:
        """Let in-flight runs finish within `grace_s`, then cancel (and so record) the rest."""
        # From here on a cancelled run is recorded as interrupted, whoever cancels it (the grace
        # timeout below, or a signal that cuts the drain short).
        self.stopping = True
        jobs = list(self.inflight.values())
        if jobs:
            log.info("runs_draining", in_flight=len(jobs), grace_s=grace_s)
            _, pending = await asyncio.wait(jobs, timeout=grace_s)
            for job in pending:
                job.cancel()
            if pending:
                await asyncio.wait(pending, timeout=FINAL_WAIT_S)
            log.info("runs_drained", finished=len(jobs) - len(pending), cancelled=len(pending))
        await self._settle_finals()

    async def _settle_finals(self) -> None:
        """Final records still retried (the database unreachable) get FINAL_WAIT_S more; then
        they are given up: the runs stay `running` until another process sweeps them."""
        finals = list(self._finals)
        if not finals:
            return
        _, pending = await asyncio.wait(finals, timeout=FINAL_WAIT_S)
        for job in pending:
            job.cancel()
            log.warning("run_final_write_abandoned", run=job.get_name())
        if pending:
            await asyncio.wait(pending, timeout=1)


def manual_status(task: Task, busy: int, queued: int) -> RunStatus:
    """A manual run under the task's overlap policy: started, queued behind the run in
    progress, or refused (nothing recorded)."""
    status = overlap_status(task, busy, queued)
    if status is not None:
        return status
    waiting = " and one is already queued" if task.overlap == "queue" else ""
    raise Conflict(
        f"Task {task.id!r} already has a run in progress{waiting}; its overlap policy is "
        f"{task.overlap!r}, so this run was not started. Wait for it (task_history), or set "
        "overlap to 'queue' or 'allow' with update_task."
    )


def reads_prev(task: Task) -> bool:
    """Whether a step's templates can reach `{{ prev }}` (its args, including a tool that renders
    its own, or its `when` / `foreach`): a name none mentions cannot be looked up, so a chain
    without the word needs no read of the previous run."""
    return any(
        "prev" in json.dumps([step.args, step.when, step.foreach], default=str)
        for step in task.steps
    )


def check_payload_size(payload: dict[str, Any], limit: int) -> None:
    size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode())
    if size > limit:
        raise InvalidInput(
            "payload",
            f"<{size} bytes of JSON>",
            f"An event payload may be at most {limit} bytes (TASKLOOM_MAX_EVENT_PAYLOAD_BYTES); "
            "send a smaller payload, e.g. an id the task can fetch the rest with.",
        )


def check_runnable(task: Task) -> None:
    if task.status == TaskStatus.FINISHED:
        raise InvalidInput(
            "task_id", task.id, "This task has finished (end_at or max_runs); update it first."
        )
