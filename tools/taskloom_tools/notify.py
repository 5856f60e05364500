"""`notify`: tell a person something, through the log, a chat webhook, Apprise URLs (email, ntfy,
Telegram, Discord, Matrix, ...) or a desktop notification."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sys
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from taskloom_tools.apprise_channel import MAX_URL_CHARS, MAX_URLS, SCHEME, deliver
from taskloom_tools.base import StepTool, StepToolError, ToolArgs, ToolContext, typed_run

WEBHOOK_TIMEOUT_S = 30.0
MAX_MESSAGE_CHARS = 65_536
MAX_TITLE_CHARS = 250

DESCRIPTION = """\
Send a notification. The server log records that it was sent (event "notify_sent", with the
message's size and hash, never its text); with webhook_url it is
also POSTed as Slack-compatible JSON {"text": "*<title>*\\n<message>"} (Slack, Mattermost,
Rocket.Chat and Discord's /slack endpoint accept this); with "desktop": true it is also shown as a
desktop notification on the machine running Taskloom, when that machine has one; with urls it
is also sent to each Apprise URL (ntfy://topic, tgram://BOT_TOKEN/CHAT_ID, discord://ID/TOKEN,
mailtos://user:password@host, matrixs://..., json://host/path; up to 10).

Output: {"delivered": ["log", "webhook", "desktop", "apprise:ntfy"], "not_delivered":
[{"channel": "desktop", "reason": "..."}]}. A desktop notification that cannot be shown is
reported in not_delivered (and warned about at create_task); a webhook or Apprise URL that fails
(unknown scheme, malformed URL, refused address, error status, timeout) fails the step.

Example: {"title": "Price alert", "message": "Lamp is now {{ steps.price.output }} EUR",
"urls": ["{{ secrets.NTFY_URL }}"]}. Keep webhook and Apprise URLs in secrets."""


def _looks_like_url(value: str) -> str:
    if SCHEME.match(value) is None:
        raise ValueError(
            f"{value[:80]!r} is not an Apprise URL (scheme://...); e.g. ntfy://my-topic"
        )
    return value


AppriseUrl = Annotated[
    str, Field(min_length=1, max_length=MAX_URL_CHARS), AfterValidator(_looks_like_url)
]


class NotifyArgs(ToolArgs):
    message: str = Field(
        min_length=1, max_length=MAX_MESSAGE_CHARS, description="the text of the notification"
    )
    title: str = Field(default="Taskloom", max_length=MAX_TITLE_CHARS, description="a headline")
    webhook_url: str | None = Field(
        default=None, description="Slack-compatible incoming webhook URL (https://...)"
    )
    desktop: bool = Field(default=False, description="also show a desktop notification")
    urls: list[AppriseUrl] = Field(
        default_factory=list,
        max_length=MAX_URLS,
        description="Apprise URLs to notify too (ntfy://, tgram://, discord://, mailtos://, ...)",
    )
    level: Literal["info", "success", "warning", "failure"] = Field(
        default="info", description="how services that show it (colour, icon) present it"
    )

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http://)")
        return value


async def notify(args: NotifyArgs, ctx: ToolContext) -> dict[str, Any]:
    import structlog

    # Never the text: it is rendered from step outputs and may carry secrets or personal data.
    structlog.get_logger("taskloom_tools.notify").info(
        "notify_sent",
        title_chars=len(args.title),
        message_chars=len(args.message),
        message_sha256=hashlib.sha256(args.message.encode()).hexdigest()[:16],
    )
    delivered = ["log"]
    not_delivered: list[dict[str, str]] = []
    if args.desktop:
        reason = await show_on_desktop(args.title, args.message, ctx.desktop_timeout_s)
        if reason is None:
            delivered.append("desktop")
        else:
            not_delivered.append({"channel": "desktop", "reason": reason})
    if args.webhook_url is not None:
        await post_to_webhook(ctx, args.webhook_url, args.title, args.message)
        delivered.append("webhook")
    delivered += await notify_apprise(args, ctx)
    return {"delivered": delivered, "not_delivered": not_delivered}


async def notify_apprise(args: NotifyArgs, ctx: ToolContext) -> list[str]:
    """Deliver to every Apprise URL at once; raise naming each one that failed (by index: the
    URL itself is a credential)."""
    sent = await asyncio.gather(
        *(deliver(url, args.title, args.message, ctx.allow_hosts, args.level) for url in args.urls),
        return_exceptions=True,
    )
    failed = [
        f"urls[{i}]: {result.message if isinstance(result, StepToolError) else result!r}"
        for i, result in enumerate(sent)
        if isinstance(result, BaseException)
    ]
    if failed:
        raise StepToolError("; ".join(failed))
    return [f"apprise:{url.split(':', 1)[0].lower()}" for url in args.urls]


async def post_to_webhook(ctx: ToolContext, url: str, title: str, message: str) -> None:
    """POST `{"text": ...}` through the same address guard and limits as `http_request`."""
    import httpx

    from taskloom_tools.fetch import Outgoing, fetch

    target = httpx.URL(url)
    text = f"*{title}*\n{message}" if title else message
    outgoing = Outgoing(
        method="POST",
        url=target,
        headers={"Content-Type": "application/json"},
        content=json.dumps({"text": text}, ensure_ascii=False).encode(),
        label=f"The webhook at {target.host}",  # the full URL is a credential: never shown
    )
    fetched = await fetch(ctx, outgoing, WEBHOOK_TIMEOUT_S)
    if fetched.status >= 400:
        raise StepToolError(
            f"{outgoing.describe()} answered {fetched.status}: {fetched.text[:200]!r}. Check "
            "that webhook_url is a current incoming-webhook URL."
        )


async def show_on_desktop(title: str, message: str, timeout_s: float) -> str | None:
    """Show a desktop notification; None when shown, else why it was not."""
    argv = desktop_argv(title, message)
    if argv is None:
        return (
            f"no desktop notifier found on this {sys.platform} machine (needs notify-send on "
            "Linux or osascript on macOS)"
        )
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return f"could not start {argv[0]}: {exc}"
    return await _outcome(process, argv[0], timeout_s)


async def _outcome(
    process: asyncio.subprocess.Process, program: str, timeout_s: float
) -> str | None:
    try:
        async with asyncio.timeout(timeout_s):
            _, stderr = await process.communicate()
    except TimeoutError:
        return f"{program} did not finish within {timeout_s:g} s"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        said = stderr.decode(errors="replace").strip()[:200]
        return f"{program} exited with status {process.returncode}: {said or 'no message'}"
    return None


def desktop_argv(title: str, message: str) -> list[str] | None:
    """The command that shows a notification here (argv, never a shell), or None."""
    if sys.platform == "darwin":
        osascript = shutil.which("osascript")
        if osascript is None:
            return None
        # Title and message travel as arguments, so no quoting of AppleScript strings is needed.
        script = "on run argv\ndisplay notification (item 2 of argv) with title (item 1 of argv)"
        return [osascript, "-e", script + "\nend run", title, message]
    notify_send = shutil.which("notify-send")
    if notify_send is None:
        return None
    return [notify_send, "--app-name=Taskloom", "--", title, message]


TOOL = StepTool(
    name="notify",
    description=DESCRIPTION,
    args_model=NotifyArgs,
    run=typed_run(NotifyArgs, notify),
    read_only=False,
    open_world=True,
)
