"""Whether this server can run what a task asks, today: its secrets are set, the Anthropic API
key is there for `llm_prompt` and summaries, its HTTP hosts pass the address guard.

These are accepted with a warning rather than refused: the operator may set them up after the
task is written. Host names are resolved with a time bound, all at once.
"""

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from taskloom.domain.tasks import EventTrigger, FieldWarning, TaskFields
from taskloom.domain.templates import has_template, referenced_secrets
from taskloom.errors import TaskloomError
from taskloom.secrets import ENV_PREFIX, read_secrets_file
from taskloom.settings import Settings
from taskloom.tasks.expressions import uses_name
from taskloom_tools.address_guard import AllowList, allowed_addresses
from taskloom_tools.agent import NO_KEY as AGENT_NO_KEY
from taskloom_tools.base import StepToolError
from taskloom_tools.llm_prompt import NO_KEY

DNS_CHECK_S = 2.0
# Which step arguments name a host the step will connect to.
URL_ARGS = {"http_request": "url", "notify": "webhook_url"}


@dataclass(frozen=True)
class Surroundings:
    """What the checks of a create, update or dry run need besides the task: the time, the
    server's settings and, for create and update, which fields change and whether a name is
    taken (`name_taken(name)` answers the id of the owner's task with that name, or None).
    `name_on_write`: the store's unique index checks the name as the task is written (a create),
    so validation looks the name up only to list it along with other mistakes."""

    now: datetime
    settings: Settings
    changed: frozenset[str] | None = None  # None: everything is new (create, dry run)
    name_taken: Callable[[str], Awaitable[str | None]] | None = None
    task_id: str | None = None  # the task being updated, whose own name is no clash
    name_on_write: bool = False
    dry_run: bool = False

    def is_new(self, name: str) -> bool:
        return self.changed is None or name in self.changed


async def readiness_warnings(fields: TaskFields, around: Surroundings) -> list[FieldWarning]:
    settings = around.settings
    warnings = _missing_secrets(fields, settings)
    warnings += _missing_api_key(fields, settings)
    warnings += await _refused_hosts(fields, settings)
    warnings += [] if around.dry_run else _event_without_event_trigger(fields)
    warnings += _notify_nowhere(fields)
    return warnings


def _missing_secrets(fields: TaskFields, settings: Settings) -> list[FieldWarning]:
    wanted = {
        (f"steps[{i}].args", name)
        for i, step in enumerate(fields.steps)
        for name in referenced_secrets(step.args, step_id=step.id)
    }
    if not wanted:
        return []
    try:
        in_file = _secret_names_in_file(settings)
    except TaskloomError as exc:
        return [FieldWarning(field="secrets", message=exc.message)]
    return [
        FieldWarning(
            field=where,
            message=f"Secret {name!r} is not set, so this step will fail until the operator "
            f"sets {ENV_PREFIX}{name} or adds {name}=... to the secrets file "
            "(TASKLOOM_SECRETS_FILE).",
        )
        for where, name in sorted(wanted)
        if name not in in_file and ENV_PREFIX + name not in os.environ
    ]


def _secret_names_in_file(settings: Settings) -> set[str]:
    path = settings.secrets_file
    if path is None or not path.exists():
        return set()
    return set(read_secrets_file(path))


def _missing_api_key(fields: TaskFields, settings: Settings) -> list[FieldWarning]:
    if settings.anthropic_api_key is not None:
        return []
    needs_key = {"llm_prompt": NO_KEY, "agent": AGENT_NO_KEY}
    warnings = [
        FieldWarning(
            field=f"steps[{i}].tool", message=f"This step will fail: {needs_key[step.tool]}"
        )
        for i, step in enumerate(fields.steps)
        if step.tool in needs_key
    ]
    if fields.summary.enabled:
        message = (
            "Summaries will be skipped: they need an Anthropic API key. Set ANTHROPIC_API_KEY "
            "for the Taskloom server (or worker) and restart it, or disable the summary."
        )
        warnings.append(FieldWarning(field="summary.enabled", message=message))
    return warnings


async def _refused_hosts(fields: TaskFields, settings: Settings) -> list[FieldWarning]:
    targets = list(_urls(fields))
    if not targets:  # the usual task: nothing to resolve
        return []
    allow = AllowList.parse(settings.http_allow_hosts)
    found = await asyncio.gather(*(_host_problem(url, allow) for _, url in targets))
    return [
        FieldWarning(field=where, message=problem)
        for (where, _), problem in zip(targets, found, strict=True)
        if problem is not None
    ]


def _urls(fields: TaskFields) -> Iterator[tuple[str, str]]:
    for i, step in enumerate(fields.steps):
        key = URL_ARGS.get(step.tool)
        value = step.args.get(key) if key else None
        if isinstance(value, str):
            yield f"steps[{i}].args.{key}", value
    if fields.notify.webhook_url:
        yield "notify.webhook_url", fields.notify.webhook_url


async def _host_problem(url: str, allow: AllowList) -> str | None:
    """Why the guard will refuse `url`'s host when the step runs, or None. A host that is (in
    part) a template is known only then."""
    literal = url.split("{{")[0].split("{%")[0]
    parts = urlsplit(literal)
    host_done = not has_template(url) or any(c in literal[len(parts.scheme) + 3 :] for c in "/?#")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a bad port: the argument check or the step itself reports it
        return None
    if not parts.hostname or not host_done:
        return None
    try:
        async with asyncio.timeout(DNS_CHECK_S):
            await allowed_addresses(parts.hostname, port, allow)
    except StepToolError as exc:
        return f"This request will fail unless the operator allows it: {exc.message}"
    except TimeoutError:
        return (
            f"{parts.hostname!r} did not resolve within {DNS_CHECK_S:g} s, so it was not "
            "checked; it is checked again when the step runs."
        )
    return None


def _event_without_event_trigger(fields: TaskFields) -> list[FieldWarning]:
    if isinstance(fields.trigger, EventTrigger):
        return []
    return [
        FieldWarning(
            field=f"steps[{i}].args",
            message="The templates use {{ event }}, which is null unless an event trigger "
            "starts the run; use an {'event': '<name>'} trigger, or guard it with "
            "{% if event %}.",
        )
        for i, step in enumerate(fields.steps)
        if uses_name(step.args, "event")
    ]


def _notify_nowhere(fields: TaskFields) -> list[FieldWarning]:
    notify = fields.notify
    if notify.on in ("never", "failure") or notify.webhook_url or notify.desktop or notify.urls:
        return []
    message = (
        f"notify.on is {notify.on!r} but there is no webhook_url, no urls and desktop is false, "
        "so notifications reach only the server log; add an Apprise URL to urls (e.g. "
        "ntfy://my-topic), a webhook_url, or desktop: true."
    )
    return [FieldWarning(field="notify.on", message=message)]
