"""notify: log, webhook (to a real local server) and desktop (through real subprocesses)."""

import hashlib
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from taskloom_tools.base import StepToolError, ToolContext
from taskloom_tools.notify import TOOL

from .conftest import ApiServer

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses notify-send")


def fake_notifier(folder: Path, script: str) -> None:
    """Put an executable `notify-send` running `script` first on PATH."""
    path = folder / "notify-send"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


async def test_always_logs_notify_sent(strict_ctx: ToolContext) -> None:
    """A notification is logged as notify_sent with sizes and a hash, never its text."""
    with capture_logs() as logs:
        out = await TOOL.invoke({"title": "Done", "message": "3 new items"}, strict_ctx)
    assert out == {"delivered": ["log"], "not_delivered": []}
    assert logs == [
        {
            "event": "notify_sent",
            "title_chars": 4,
            "message_chars": 11,
            "message_sha256": hashlib.sha256(b"3 new items").hexdigest()[:16],
            "log_level": "info",
        }
    ]
    assert "3 new items" not in repr(logs)


async def test_posts_slack_compatible_json_to_the_webhook(ctx: ToolContext, api: ApiServer) -> None:
    """The webhook receives {"text": "*title*\\nmessage"}."""
    args = {"title": "Price alert", "message": "Lamp is 19.9", "webhook_url": api.url("/webhook")}
    out = await TOOL.invoke(args, ctx)
    assert out["delivered"] == ["log", "webhook"]
    assert api.webhook_posts[-1] == {"text": "*Price alert*\nLamp is 19.9"}


async def test_a_webhook_to_a_private_address_is_refused_without_showing_the_url(
    strict_ctx: ToolContext, api: ApiServer
) -> None:
    """The webhook goes through the address guard, and the error does not reveal its URL."""
    url = api.url("/webhook?token=s3cret")
    with pytest.raises(StepToolError, match=r"Refused to connect to 127.0.0.1") as caught:
        await TOOL.invoke({"message": "hi", "webhook_url": url}, strict_ctx)
    assert "s3cret" not in str(caught.value)


async def test_a_failing_webhook_fails_the_step(ctx: ToolContext, api: ApiServer) -> None:
    """An error status from the webhook fails the step, naming only its host."""
    url = api.url("/webhook-gone?token=s3cret")
    with pytest.raises(StepToolError, match=r"webhook at 127.0.0.1 answered 404") as caught:
        await TOOL.invoke({"message": "hi", "webhook_url": url}, ctx)
    assert "s3cret" not in str(caught.value)


@linux_only
@pytest.mark.slow
async def test_shows_a_desktop_notification_with_notify_send(
    strict_ctx: ToolContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With desktop true, notify-send gets the title and message as separate arguments."""
    argv_file = tmp_path / "argv"
    fake_notifier(tmp_path, f"printf '%s\\n' \"$@\" > {argv_file}")
    monkeypatch.setenv("PATH", str(tmp_path))
    args = {"title": "Build", "message": "-v; rm -rf / $(x)", "desktop": True}
    out = await TOOL.invoke(args, strict_ctx)
    assert out["delivered"] == ["log", "desktop"]
    assert argv_file.read_text().splitlines() == [
        "--app-name=Taskloom",
        "--",
        "Build",
        "-v; rm -rf / $(x)",
    ]


async def test_reports_a_missing_desktop_notifier(
    strict_ctx: ToolContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a notifier the desktop channel is reported not delivered, with a reason."""
    monkeypatch.setenv("PATH", str(tmp_path))
    out = await TOOL.invoke({"message": "hi", "desktop": True}, strict_ctx)
    assert out["delivered"] == ["log"]
    [missed] = out["not_delivered"]
    assert missed["channel"] == "desktop"
    assert missed["reason"].startswith(f"no desktop notifier found on this {sys.platform} machine")


@linux_only
@pytest.mark.slow
async def test_reports_a_failing_desktop_notifier(
    strict_ctx: ToolContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notifier that exits with an error is reported with its message."""
    fake_notifier(tmp_path, "echo 'Cannot connect to D-Bus' >&2; exit 1")
    monkeypatch.setenv("PATH", str(tmp_path))
    out = await TOOL.invoke({"message": "hi", "desktop": True}, strict_ctx)
    assert out["not_delivered"] == [
        {
            "channel": "desktop",
            "reason": f"{tmp_path / 'notify-send'} exited with status 1: Cannot connect to D-Bus",
        }
    ]


@linux_only
@pytest.mark.slow
async def test_reports_a_hanging_desktop_notifier(
    strict_ctx: ToolContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notifier that does not finish in time is stopped and reported."""
    fake_notifier(tmp_path, "exec sleep 30")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    strict_ctx.desktop_timeout_s = 0.2
    out = await TOOL.invoke({"message": "hi", "desktop": True}, strict_ctx)
    assert out["not_delivered"][0]["reason"].endswith("did not finish within 0.2 s")
