"""Whether a task's notification channels can deliver from this machine, checked at create,
update and dry run so that no channel is skipped silently later.

An Apprise URL whose scheme Apprise does not know, or that its service cannot parse, is a
mistake in the task: refused, naming the field, the URL and the fix. A service or a desktop
notifier this machine lacks is accepted with a warning (a worker elsewhere may have it); the
run then fails the step, or records the channel as not delivered. URLs that are templates or
secret references are known only when the run renders them, and are checked then.
"""

import asyncio
import sys
from collections.abc import Iterator

from taskloom.domain.tasks import FieldWarning, TaskFields
from taskloom.domain.templates import has_template
from taskloom.errors import InvalidInput
from taskloom_tools.apprise_channel import check, credential
from taskloom_tools.notify import desktop_argv

NO_DESKTOP_FIX = (
    "Install one where Taskloom runs (notify-send, e.g. `apt install libnotify-bin`, on Linux; "
    "osascript on macOS), or notify through urls with an Apprise URL such as ntfy://my-topic."
)


async def check_channels(fields: TaskFields) -> tuple[list[InvalidInput], list[FieldWarning]]:
    """(mistakes, warnings) of the task's notification channels."""
    urls = list(_literal_urls(fields))
    if not urls:  # the usual task: no Apprise URL to check
        return [], _desktop_warnings(fields)
    found = await asyncio.gather(*(check(url) for _, url in urls))
    secrets = await asyncio.gather(*(credential(url) for _, url in urls))
    errors: list[InvalidInput] = []
    warnings = _desktop_warnings(fields)
    for (where, url), problem, hidden in zip(urls, found, secrets, strict=True):
        if problem is not None and problem.is_mistake:
            errors.append(InvalidInput(where, url, problem.message))
        elif problem is not None:
            warnings.append(FieldWarning(field=where, message=problem.message))
        elif hidden is not None:
            warnings.append(FieldWarning(field=where, message=_in_the_open(hidden)))
    return errors, warnings


def _in_the_open(hidden: str) -> str:
    return (
        f"This URL carries a credential ({hidden}), which the task keeps and shows as written "
        "(get_task, list_tasks). Keep it in a secret: set TASKLOOM_SECRET_NOTIFY_URL (or a "
        "line NOTIFY_URL=... in the secrets file) and write '{{ secrets.NOTIFY_URL }}' instead."
    )


def _literal_urls(fields: TaskFields) -> Iterator[tuple[str, str]]:
    for i, step in enumerate(fields.steps):
        urls = step.args.get("urls") if step.tool == "notify" else None
        if isinstance(urls, list):
            for j, url in enumerate(urls):
                if isinstance(url, str) and not has_template(url):
                    yield f"steps[{i}].args.urls[{j}]", url
    if fields.notify.on != "never":
        for j, url in enumerate(fields.notify.urls):
            if "{" not in url:
                yield f"notify.urls[{j}]", url


def _desktop_warnings(fields: TaskFields) -> list[FieldWarning]:
    wanted = [
        f"steps[{i}].args.desktop"
        for i, step in enumerate(fields.steps)
        if step.tool == "notify" and step.args.get("desktop") is True
    ]
    if fields.notify.desktop and fields.notify.on != "never":
        wanted.append("notify.desktop")
    if not wanted or desktop_argv("Taskloom", "check") is not None:
        return []
    message = (
        f"desktop is true, but this {sys.platform} machine has no desktop notifier, so the "
        f"notification will not be shown (the run records it as not delivered). {NO_DESKTOP_FIX}"
    )
    return [FieldWarning(field=where, message=message) for where in wanted]
