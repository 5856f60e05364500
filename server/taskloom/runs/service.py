"""Run use-cases: run a task now, dry-run a chain, read history, cancel; and the bookkeeping
around each run (summary, notification, the task's last_* fields)."""

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
from taskloom.domain.outcome import Outcome
from taskloom.domain.planning import event_run
from taskloom.domain.retry import retry_run
from taskloom.domain.runs import Run, RunStatus, RunTrigger, StepResult, StepStatus
from taskloom.domain.storage import Page, Quotas, Store, stamped_run
from taskloom.domain.tasks import Step, Task, TaskSpec, TaskStatus
from taskloom.domain.templates import Secrets
from taskloom.errors import Conflict, InvalidInput, NotFound, TaskloomError, is_outage
from taskloom.runs.holdings import Holdings
from taskloom.runs.lifecycle import Lifecycle
from taskloom.runs.notifying import Notifier
from taskloom.runs.runner import Progress, Runner, StepCaller, secret_names
from taskloom.secrets import load_secrets
from taskloom.settings import Settings
from taskloom.tasks.readiness import Surroundings
from taskloom.tasks.secret_use import check_grants
from taskloom.tasks.validate import validate_task

log = structlog.get_logger(__name__)

DRY_RUN_ID = "tsk_dry_run"
RUN_HINT = "Call task_history to see the ids of recent runs."
# A final record that cannot be written because the database is unreachable is retried with
# this backoff (seconds, doubling) until it lands: the run is not executed again.
FINAL_RETRY_FIRST_S, FINAL_RETRY_MAX_S = 0.2, 5.0
# At shutdown, final records still being retried after the grace get this much longer.
FINAL_WAIT_S = 5.0
LEASE_LOST = (
    "Interrupted: this process could not renew the run's lease in time (was the database "
    "unreachable?), so it stopped before the next step rather than risk running it twice."
)
SUMMARY_PROMPT = (
    "Below is the output of a scheduled task named {name!r}. In at most two short sentences, "
    "state the key insight or change a busy person needs. No preamble.\n\n{output}"
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
    def kind(self) -> RunTrigger:
        if self.event is not None:
            return RunTrigger.EVENT
        return RunTrigger.SCHEDULE if self.fire_time is not None else RunTrigger.MANUAL


class RunService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: Settings,
        runner: Runner,
        caller: StepCaller,
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
        self.notifier = Notifier(store, caller, self._secrets_for)
        self.inflight: dict[str, asyncio.Task[Run]] = {}
        self.holdings = Holdings()
        self._finals: set[asyncio.Task[Run]] = set()
        self.stopping = False
        self.lifecycle = Lifecycle(caller, self.notifier.webhook_url)
        # Told of every run this process records as finished (the metrics observe them).
        self.finished: list[Callable[[Task, Run], None]] = []

    # -- starting runs -----------------------------------------------------------------------

    def new_run(
        self,
        task: Task,
        trigger: RunTrigger,
        *,
        fire_time: datetime | None = None,
        attempt: int = 1,
        event: dict[str, Any] | None = None,
        status: RunStatus = RunStatus.RUNNING,
    ) -> Run:
        """A new run; a running one is held by this process under a fresh lease."""
        return stamped_run(
            task, trigger, self.clock.now(), holder=self.process_id,
            lease=timedelta(seconds=self.settings.lease_s), fire_time=fire_time, attempt=attempt,
            event=event, status=status,
        )  # fmt: skip

    async def admit_manual(self, task_id: str, *, owner: str | None) -> tuple[Task, Run]:
        """Record a manual run of the task under its overlap policy and the owner's quotas:
        running (held by this process, for the caller to execute) or queued; else refused."""

        def make(task: Task, busy: int, queued: int) -> Run:
            check_runnable(task)
            return self.new_run(task, RunTrigger.MANUAL, status=manual_status(task, busy, queued))

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
        job = asyncio.create_task(self._finish(task, run), name=f"{run.id}-final")
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

    async def _finish(self, task: Task, run: Run) -> Run:
        if run.status == RunStatus.CANCELLED and self.stopping:
            run = run.model_copy(
                update={
                    "status": RunStatus.INTERRUPTED,
                    "error": "Interrupted: Taskloom was shutting down and the run did not finish "
                    "within the grace period.",
                }
            )
        if run.status == RunStatus.SUCCEEDED and task.summary.enabled:
            run = run.model_copy(update={"summary": await self._summarise(task, run)})
        outcome = Outcome(pause_on_failure=task.pause_on_failure, max_runs=task.max_runs)
        again = retry_run(task, run, self.clock.now()) if task.id != DRY_RUN_ID else None
        recorded = await self._record_final(run, outcome, again)
        if again is not None and recorded:
            log.info("run_retry_queued", run_id=again.id, attempt=again.attempt)
        if not recorded:
            log.warning("run_not_recorded", run_id=run.id, reason="no longer held by us")
            return run
        for listener in self.finished:
            listener(task, run)
        await self.notifier.after(task, run)
        self.lifecycle.finished(task, run)
        return run

    async def _record_final(self, run: Run, outcome: Outcome, again: Run | None) -> bool:
        """Write the final record, retried with backoff while the database is unreachable, for
        as long as this process still holds the run (the heartbeat keeps renewing it meanwhile),
        so a finished run is recorded once and never executed again because a write failed."""
        delay, failures = FINAL_RETRY_FIRST_S, 0
        while True:
            try:
                return await self.store.finish_run(
                    run, holder=self.process_id, outcome=outcome, follow_up=again
                )
            except Exception as exc:
                if not is_outage(exc):
                    log.error("run_final_write_failed", run_id=run.id, error=str(exc)[:300])
                    return False
                failures += 1
                if failures == 1:
                    log.warning("run_final_write_retrying", run_id=run.id, error=str(exc)[:200])
            await asyncio.sleep(delay)
            delay = min(delay * 2, FINAL_RETRY_MAX_S)

    # -- events ------------------------------------------------------------------------------

    async def emit(self, name: str, payload: dict[str, Any], *, owner: str | None) -> list[Run]:
        """Start the tasks whose trigger listens to `name`; the payload is `{{ event }}`."""
        check_payload_size(payload, self.settings.max_event_payload_bytes)
        now = self.clock.now()

        def make(task: Task, busy: int, queued: int) -> Run:
            def new(kind: RunTrigger, _: datetime, status: RunStatus) -> Run:
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
        warnings = await validate_task(spec, self.runner.caller.catalog, around)
        check_grants(spec, owner=trial.owner, access=self.access)
        task = self._trial_task(spec, trial)
        run = self.new_run(task, trial.kind, fire_time=trial.fire_time, event=trial.event)
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
            **dict(spec),
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

    # -- after a run -------------------------------------------------------------------------

    async def _summarise(self, task: Task, run: Run) -> str | None:
        output = json.dumps(run.output, default=str)[:8000]
        args = {
            "prompt": SUMMARY_PROMPT.format(name=task.name, output=output),
            "model": task.summary.model or self.settings.summary_model,
            "max_tokens": task.summary.max_tokens,
        }
        try:
            result = await self.caller.call("llm_prompt", args, 60.0, {})
        except Exception as exc:
            log.warning("summary_failed", run_id=run.id, error=str(exc)[:300])
            return None
        text = result.get("text") if isinstance(result, dict) else None
        return str(text).strip() if text else None


def manual_status(task: Task, busy: int, queued: int) -> RunStatus:
    """A manual run under the task's overlap policy: started, queued behind the run in
    progress, or refused (nothing recorded)."""
    if busy == 0 or task.overlap == "allow":
        return RunStatus.RUNNING
    if task.overlap == "queue" and queued == 0:
        return RunStatus.QUEUED
    waiting = " and one is already queued" if task.overlap == "queue" else ""
    raise Conflict(
        f"Task {task.id!r} already has a run in progress{waiting}; its overlap policy is "
        f"{task.overlap!r}, so this run was not started. Wait for it (task_history), or set "
        "overlap to 'queue' or 'allow' with update_task."
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
