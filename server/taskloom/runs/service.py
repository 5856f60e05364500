"""Run use-cases: run a task now, dry-run a chain, read history, cancel; and the bookkeeping
around each run (summary, notification, the task's last_* fields)."""

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from taskloom.answers import RunAnswer
from taskloom.clock import Clock
from taskloom.errors import Conflict, InvalidInput, NotFound, TaskloomError
from taskloom.ids import new_id
from taskloom.runs.model import Run, RunStatus, RunTrigger, StepResult, StepStatus
from taskloom.runs.runner import Progress, Runner, StepCaller, secret_names
from taskloom.scheduling.claims import event_run, retry_run
from taskloom.secrets import load_secrets
from taskloom.settings import Settings
from taskloom.store.claims import Claims
from taskloom.store.outcome import Outcome
from taskloom.store.recorder import RunRecorder
from taskloom.store.sql import Page, Store
from taskloom.tasks.model import Step, Task, TaskSpec, TaskStatus
from taskloom.tasks.validate import Surroundings, validate_task

log = structlog.get_logger(__name__)

DRY_RUN_ID = "tsk_dry_run"
RUN_HINT = "Call task_history to see the ids of recent runs."
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
        self.recorder = RunRecorder(store)
        self.inflight: dict[str, asyncio.Task[Run]] = {}
        self.stopping = False

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
        now = self.clock.now()
        held = status == RunStatus.RUNNING
        return Run(
            id=new_id("run", now),
            task_id=task.id,
            status=status,
            trigger=trigger,
            fire_time=fire_time,
            attempt=attempt,
            created_at=now,
            started_at=now if held else None,
            event=event,
            lease_owner=self.process_id if held else None,
            lease_expires_at=now + timedelta(seconds=self.settings.lease_s) if held else None,
        )

    async def run_now(
        self, task: Task, *, trigger: RunTrigger = RunTrigger.MANUAL, event: dict[str, Any] | None
    ) -> Run:
        """Insert a run held by this process and start executing it in the background."""
        run = self.new_run(task, trigger, event=event)
        await self.store.start_run(run, owner=task.owner)
        self.launch(task, run)
        return run

    def launch(self, task: Task, run: Run, progress: Progress | None = None) -> "asyncio.Task[Run]":
        """Execute a run this process holds; it keeps going if the requesting client leaves."""
        job = asyncio.create_task(self.execute(task, run, progress=progress), name=run.id)
        self.inflight[run.id] = job
        job.add_done_callback(lambda _: self.inflight.pop(run.id, None))
        return job

    async def execute(self, task: Task, run: Run, *, progress: Progress | None = None) -> Run:
        try:
            secrets = load_secrets(secret_names(task), self.settings.secrets_file)
            prev = await self.store.last_finished_run(task.id, before=run.id)
        except TaskloomError as exc:  # e.g. a secrets file others can read: record, never hang
            return await self._finish(task, self._refused(task, run, exc.message))

        async def persist(snapshot: Run) -> None:
            await self.recorder.save_progress(snapshot, holder=self.process_id)

        async def finish(final: Run) -> Run:
            return await self._finish(task, final)

        return await self.runner.execute(
            task, run, secrets=secrets, persist=persist, finish=finish, progress=progress, prev=prev
        )

    def _refused(self, task: Task, run: Run, error: str) -> Run:
        """The record of a run that could not start: failed, every step skipped."""
        now = self.clock.now()
        steps = [
            StepResult(id=s.id, index=i, tool=s.tool, status=StepStatus.SKIPPED)
            for i, s in enumerate(task.steps)
        ]
        started = run.started_at or now
        return run.model_copy(
            update={
                "status": RunStatus.FAILED,
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
        recorded = await self.recorder.finish(
            run, holder=self.process_id, outcome=outcome, follow_up=again
        )
        if again is not None and recorded:
            log.info("run_retry_queued", run_id=again.id, attempt=again.attempt)
        if not recorded:
            log.warning("run_not_recorded", run_id=run.id, reason="no longer held by us")
            return run
        await self._notify(task, run)
        return run

    # -- events ------------------------------------------------------------------------------

    async def emit(self, name: str, payload: dict[str, Any], *, owner: str | None) -> list[Run]:
        """Start the tasks whose trigger listens to `name`; the payload is `{{ event }}`."""
        now = self.clock.now()

        def make(task: Task, busy: int, queued: int) -> Run:
            def new(kind: RunTrigger, _: datetime, status: RunStatus) -> Run:
                return self.new_run(task, kind, event=payload, status=status)

            return event_run(task, now, busy=busy, queued=queued, new_run=new)

        claimed = await Claims(self.store).claim_event(name, owner, make)
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
        task = self._trial_task(spec, trial)
        run = self.new_run(task, trial.kind, fire_time=trial.fire_time, event=trial.event)
        prev = None
        if trial.task is not None:
            prev = await self.store.last_finished_run(trial.task.id, before=run.id)
        secrets = load_secrets(secret_names(task), self.settings.secrets_file)

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
    ) -> Page:
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
        job = self.inflight.get(run_id)
        if job is not None:
            job.cancel()

    async def shutdown(self, grace_s: float) -> None:
        """Let in-flight runs finish within `grace_s`, then cancel (and so record) the rest."""
        # From here on a cancelled run is recorded as interrupted, whoever cancels it (the grace
        # timeout below, or a signal that cuts the drain short).
        self.stopping = True
        jobs = list(self.inflight.values())
        if not jobs:
            return
        log.info("runs_draining", in_flight=len(jobs), grace_s=grace_s)
        _, pending = await asyncio.wait(jobs, timeout=grace_s)
        for job in pending:
            job.cancel()
        if pending:
            await asyncio.wait(pending, timeout=10)
        log.info("runs_drained", finished=len(jobs) - len(pending), cancelled=len(pending))

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

    async def _notify(self, task: Task, run: Run) -> None:
        if not await self._should_notify(task, run):
            return
        verdict = "succeeded" if run.status == RunStatus.SUCCEEDED else run.status.value
        detail = run.summary or run.error or _excerpt(run.output)
        args: dict[str, Any] = {
            "title": f"Taskloom: {task.name} {verdict}",
            "message": detail,
            "desktop": task.notify.desktop,
        }
        if task.notify.webhook_url:
            args["webhook_url"] = task.notify.webhook_url
        try:
            await self.caller.call("notify", args, 30.0, {})
        except Exception as exc:
            log.warning("notify_failed", run_id=run.id, error=str(exc)[:300])

    async def _should_notify(self, task: Task, run: Run) -> bool:
        on = task.notify.on
        if on == "always":
            return True
        if on == "failure":
            return run.status in (RunStatus.FAILED, RunStatus.INTERRUPTED)
        if on == "change":
            previous = await self.store.last_finished_run(task.id, before=run.id)
            return previous is None or previous.output != run.output
        return False


def _excerpt(value: Any, limit: int = 500) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_runnable(task: Task) -> None:
    if task.status == TaskStatus.FINISHED:
        raise InvalidInput(
            "task_id", task.id, "This task has finished (end_at or max_runs); update it first."
        )
