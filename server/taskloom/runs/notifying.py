"""The task's own notification after a run (`notify` on the task): whether to send it, what it
says, and where it goes (log, webhook, Apprise URLs, desktop). A channel that could not deliver
is recorded on the run (a line in its error, "Notification not delivered: ..."), never only
logged. URLs that are secret references are resolved here and never shown."""

import json
from collections.abc import Callable
from typing import Any

import structlog

from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.storage import Store
from taskloom.domain.tasks import Task
from taskloom.domain.templates import Secrets
from taskloom.errors import TaskloomError
from taskloom.runs.runner import StepCaller
from taskloom.tasks.secret_use import is_secret_reference, notify_urls, secret_names_in
from taskloom_tools.apprise_channel import DELIVERY_TIMEOUT_S

log = structlog.get_logger(__name__)

# The notify call's own bound: the Apprise deliveries (in parallel) and a webhook.
NOTIFY_TIMEOUT_S = DELIVERY_TIMEOUT_S + 15
NOT_DELIVERED = "Notification not delivered"
LEVELS = {RunStatus.SUCCEEDED: "success", RunStatus.FAILED: "failure"}


class Notifier:
    def __init__(
        self,
        store: Store,
        caller: StepCaller,
        secrets_for: Callable[[str, set[str]], Secrets],
    ) -> None:
        self.store = store
        self.caller = caller
        self.secrets_for = secrets_for

    async def after(self, task: Task, run: Run) -> None:
        """Notify about a recorded run as the task's policy says."""
        if not await self.should_notify(task, run):
            return
        try:
            urls = self._urls(task)
        except TaskloomError as exc:
            await self._not_delivered(run, exc.message)
            return
        args = self._args(task, run, urls)
        hide = Secrets({where: url for where, url in urls.items() if url})
        try:
            result = await self.caller.call("notify", args, NOTIFY_TIMEOUT_S, {})
        except Exception as exc:
            await self._not_delivered(run, hide.redact(_reason(exc)))
            return
        missed = result.get("not_delivered") if isinstance(result, dict) else None
        if missed:
            reasons = "; ".join(f"{m.get('channel')}: {m.get('reason')}" for m in missed)
            await self._not_delivered(run, reasons)

    def _args(self, task: Task, run: Run, urls: dict[str, str]) -> dict[str, Any]:
        changed = task.notify.on == "change" and run.status == RunStatus.SUCCEEDED
        verdict = "changed" if changed else run.status.value
        args: dict[str, Any] = {
            "title": f"Taskloom: {task.name} {verdict}",
            "message": excerpt(run.summary or run.error or run.output),
            "desktop": task.notify.desktop,
            "urls": [url for where, url in urls.items() if where != "notify.webhook_url"],
            "level": LEVELS.get(run.status, "warning"),
        }
        if "notify.webhook_url" in urls:
            args["webhook_url"] = urls["notify.webhook_url"]
        return args

    def _urls(self, task: Task) -> dict[str, str]:
        """Each notification URL by its field, secret references resolved."""
        return {where: self._resolve(task, where, url) for where, url in notify_urls(task)}

    def webhook_url(self, task: Task) -> str:
        """The task's notify.webhook_url, a secret reference resolved (run lifecycle events)."""
        return self._resolve(task, "notify.webhook_url", task.notify.webhook_url or "")

    def _resolve(self, task: Task, where: str, url: str) -> str:
        if not is_secret_reference(url):
            return url
        (name,) = secret_names_in(url)
        value = self.secrets_for(task.owner, {name}).mapping.get(name)
        if value is None:
            raise TaskloomError(
                f"{where} names secret {name!r}, which is not set; set TASKLOOM_SECRET_{name} "
                "or add it to the secrets file."
            )
        return value

    async def _not_delivered(self, run: Run, reason: str) -> None:
        """Recorded on the run first (what people read), then logged."""
        try:
            await self.store.note_on_run(run.id, f"{NOT_DELIVERED}: {reason}")
        except Exception as exc:  # the database went away meanwhile: the log line stays
            log.warning("notify_note_not_written", run_id=run.id, error=type(exc).__name__)
        log.warning("notify_failed", run_id=run.id, error=reason[:300])

    async def should_notify(self, task: Task, run: Run) -> bool:
        on = task.notify.on
        if on == "always":
            return True
        if on == "failure":
            return run.status in (RunStatus.FAILED, RunStatus.INTERRUPTED)
        if on == "change":
            previous = await self.store.last_finished_run(task.id, before=run.id)
            return previous is None or previous.output != run.output
        return False


def _reason(exc: Exception) -> str:
    message = getattr(exc, "message", None)
    return str(message) if message else (str(exc) or type(exc).__name__)


def excerpt(value: Any, limit: int = 500) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
