"""Run lifecycle events to a task's webhook: with `notify.on: "lifecycle"` every run's start and
end are POSTed to `notify.webhook_url` as JSON, through `http_request` (the address guard).

Sent in the background, one run's events in order (its end waits for its start), so a slow
webhook never delays a run; a failed delivery is logged without the URL (often a credential).
"""

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from taskloom.domain.runs import Run
from taskloom.domain.tasks import Task
from taskloom.domain.templates import Secrets
from taskloom.runs.runner import StepCaller

log = structlog.get_logger(__name__)

WEBHOOK_TIMEOUT_S = 30.0


def event(task: Task, run: Run, name: str) -> dict[str, Any]:
    """The JSON posted for `run.<name>` (started, or the run's final status)."""
    return {
        "event": f"run.{name}",
        "task_id": task.id,
        "task_name": task.name,
        "run_id": run.id,
        "status": run.status.value,
        "trigger": run.cause.value,
        "attempt": run.attempt,
        "fire_time": run.fire_time.isoformat() if run.fire_time else None,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "error": run.error,
    }


class Lifecycle:
    def __init__(self, caller: StepCaller, webhook_url: Callable[[Task], str]) -> None:
        self.caller = caller
        self.webhook_url = webhook_url
        self._last: dict[str, asyncio.Task[None]] = {}

    @property
    def pending(self) -> int:
        """Runs whose events are still being sent."""
        return len(self._last)

    def started(self, task: Task, run: Run) -> None:
        self._send(task, run, "started")

    def finished(self, task: Task, run: Run) -> None:
        self._send(task, run, run.status.value)
        done = self._last.get(run.id)
        if done is not None:
            done.add_done_callback(lambda _: self._last.pop(run.id, None))

    def _send(self, task: Task, run: Run, name: str) -> None:
        if task.notify.on != "lifecycle" or not task.notify.webhook_url:
            return
        before = self._last.get(run.id)
        self._last[run.id] = asyncio.create_task(
            self._post(task, event(task, run, name), before), name=f"{run.id}-{name}"
        )

    async def _post(
        self, task: Task, payload: dict[str, Any], before: "asyncio.Task[None] | None"
    ) -> None:
        if before is not None:
            await asyncio.gather(before, return_exceptions=True)
        url = ""
        try:
            url = self.webhook_url(task)
            args = {"url": url, "method": "POST", "json": payload}
            await self.caller.call("http_request", args, WEBHOOK_TIMEOUT_S, {})
        except Exception as exc:  # a background delivery: nobody else would see its error
            hide = Secrets({"notify.webhook_url": url}) if url else Secrets({})
            log.warning("lifecycle_event_failed", event=payload["event"], run_id=payload["run_id"],
                        error=hide.redact(str(exc))[:300])  # fmt: skip
