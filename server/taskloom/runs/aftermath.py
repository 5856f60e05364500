"""What follows a run's end, in one place: the summary, the final record with the task's outcome
folded in and the retry queued, the notification (`runs/notifying.py` says what and where), and
their log events. Used for every run a
process executes, whoever started it (schedule, run_task, `taskloom run`, an event, a retry)."""

import asyncio
import json
from collections.abc import Callable

import structlog

from taskloom.clock import Clock
from taskloom.domain.outcome import Outcome
from taskloom.domain.retry import doubling, retry_run
from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.storage import Store
from taskloom.domain.tasks import Task
from taskloom.domain.templates import Secrets
from taskloom.errors import is_outage
from taskloom.runs.lifecycle import Lifecycle
from taskloom.runs.notifying import Notifier
from taskloom.runs.runner import CatalogStepCaller
from taskloom.settings import Settings

log = structlog.get_logger(__name__)

# A final record that cannot be written because the database is unreachable is retried with
# this backoff (seconds, doubling) until it lands: the run is not executed again.
FINAL_RETRY_FIRST_S, FINAL_RETRY_MAX_S = 0.2, 5.0
SUMMARY_PROMPT = (
    "Below is the output of a scheduled task named {name!r}. In at most two short sentences, "
    "state the key insight or change a busy person needs. No preamble.\n\n{output}"
)
# (owner, secret names) -> their values; raises when one is not granted.
SecretsFor = Callable[[str, set[str]], Secrets]


class Aftermath:
    def __init__(
        self,
        store: Store,
        caller: CatalogStepCaller,
        clock: Clock,
        settings: Settings,
        holder: str,
        secrets_for: SecretsFor,
        finished: list[Callable[[Task, Run], None]],
    ) -> None:
        """`finished`: listeners told of each run recorded as finished (RunService.finished)."""
        self.store = store
        self.caller = caller
        self.clock = clock
        self.settings = settings
        self.holder = holder
        self.notifier = Notifier(store, caller, secrets_for)
        self.lifecycle = Lifecycle(caller, self.notifier.webhook_url)
        self.finished = finished

    async def finish(self, task: Task, run: Run, *, stopping: bool, retry: bool = True) -> Run:
        """Everything that follows a run's end, in order: a cancel at shutdown becomes
        interrupted; a success gets its summary; the final record is written with the task's
        outcome folded in (run count, last_* fields, pause or finish) and the next attempt
        queued by the retry policy (`retry`); then the notification. Returns the run as
        recorded."""
        if run.status == RunStatus.CANCELLED and stopping:
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
        again = retry_run(task, run, self.clock.now()) if retry else None
        recorded = await self._record(run, outcome, again)
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

    async def _record(self, run: Run, outcome: Outcome, again: Run | None) -> bool:
        """Write the final record, retried with backoff while the database is unreachable, for
        as long as this process still holds the run (the heartbeat keeps renewing it meanwhile),
        so a finished run is recorded once and never executed again because a write failed."""
        waits, failures = doubling(FINAL_RETRY_FIRST_S, FINAL_RETRY_MAX_S), 0
        while True:
            try:
                return await self.store.finish_run(
                    run, holder=self.holder, outcome=outcome, follow_up=again
                )
            except Exception as exc:
                if not is_outage(exc):
                    log.error("run_final_write_failed", run_id=run.id, error=str(exc)[:300])
                    return False
                failures += 1
                if failures == 1:
                    log.warning("run_final_write_retrying", run_id=run.id, error=str(exc)[:200])
            await asyncio.sleep(next(waits))

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
