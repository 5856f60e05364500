"""The task's notification channels through a real MCP client: Apprise URLs delivered to the
loopback test API, secret references, a change notification that says "changed", and channels
that cannot deliver reported at create time and on the run."""

import uuid
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from taskloom.access import Access, parse_grants
from taskloom.domain.tasks import TaskSpec
from taskloom.errors import InvalidInputs
from taskloom.tasks.secret_use import check_grants
from tests.fixtures.api_server import ApiServer
from tests.mcp.conftest import Loom, task_args

WAIT = {"id": "pause", "tool": "wait", "args": {"seconds": 0}}


def json_url(api: ApiServer) -> tuple[str, str]:
    """A json:// Apprise URL that the test API records under its key."""
    key = uuid.uuid4().hex
    return f"json://127.0.0.1:{api.port}/hook/{key}", key


async def test_an_apprise_url_receives_the_run_notification(loom: Loom, api: ApiServer) -> None:
    """notify.urls delivers the run's notification to a json:// receiver on loopback."""
    url, key = json_url(api)
    task_id = await loom.create([WAIT], name="Backup", notify={"on": "always", "urls": [url]})
    run = await loom.run(task_id)
    await _posted(api, key)
    (posted,) = api.hooks[key]
    assert posted["title"] == "Taskloom: Backup succeeded"
    assert posted["type"] == "success"
    assert "error" not in await loom.get_run(run["id"])


async def test_a_change_notification_says_changed(loom: Loom, api: ApiServer) -> None:
    """With on=change the notification's title says "changed", not "succeeded"."""
    url, key = json_url(api)
    counter = {"id": "n", "tool": "http_request",
               "args": {"url": api.url(f"/count/{uuid.uuid4().hex}")}}  # fmt: skip
    task_id = await loom.create([counter], name="Watch", notify={"on": "change", "urls": [url]})
    await loom.run(task_id)
    await _posted(api, key)
    assert api.hooks[key][0]["title"] == "Taskloom: Watch changed"


async def test_a_secret_reference_is_resolved_and_never_shown(
    loom: Loom, api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL given as {{ secrets.NAME }} is delivered to, and get_task shows the reference."""
    url, key = json_url(api)
    monkeypatch.setenv("TASKLOOM_SECRET_NTFY_URL", url)
    notify = {"on": "always", "urls": ["{{ secrets.NTFY_URL }}"]}
    task_id = await loom.create([WAIT], notify=notify)
    await loom.run(task_id)
    await _posted(api, key)
    shown = await loom.task(task_id)
    assert shown["notify"]["urls"] == ["{{ secrets.NTFY_URL }}"]
    assert url not in str(shown)


async def test_an_unknown_scheme_is_refused_at_create(client: Client[Any]) -> None:
    """create_task refuses an Apprise URL with an unknown scheme, naming field, value and fix."""
    args = task_args(name="Unknown scheme", notify={"on": "failure", "urls": ["slak://hook"]})
    result = await client.call_tool("create_task", args, raise_on_error=False)
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error
    assert "notify.urls[0]" in text
    assert "slak://hook" in text
    assert "ntfy://" in text


async def test_a_credential_in_a_literal_url_is_warned_about(client: Client[Any]) -> None:
    """A literal URL with a token is accepted with a warning to keep it in a secret, which does
    not repeat the token."""
    token = "123456789:abcdefg_hijklmnop"
    notify = {"on": "failure", "urls": [f"tgram://{token}/12315544"]}
    answer = await client.call_tool("create_task", task_args(name="Tg", notify=notify))
    content = answer.structured_content
    assert content is not None
    (warning,) = [w for w in content["warnings"] if w["field"] == "notify.urls[0]"]
    assert "{{ secrets.NOTIFY_URL }}" in warning["message"]
    assert token not in warning["message"]


async def test_a_malformed_step_url_is_refused_by_dry_run(client: Client[Any]) -> None:
    """dry_run refuses a notify step whose Apprise URL its service cannot parse."""
    step = {"id": "tell", "tool": "notify", "args": {"message": "hi", "urls": ["tgram://"]}}
    result = await client.call_tool("dry_run", {"steps": [step]}, raise_on_error=False)
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error
    assert "steps[0].args.urls[0]" in text
    assert "Telegram" in text


async def test_a_desktop_channel_without_notifier_is_warned_at_create(
    client: Client[Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On a machine with no desktop notifier, desktop: true is accepted with a warning."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    args = task_args(name="Desktop", notify={"on": "always", "desktop": True})
    answer = (await client.call_tool("create_task", args)).structured_content
    assert answer is not None
    (warning,) = [w for w in answer["warnings"] if w["field"] == "notify.desktop"]
    assert "no desktop notifier" in warning["message"]
    assert "ntfy://" in warning["message"]


async def test_a_desktop_step_without_notifier_is_warned_by_dry_run(
    client: Client[Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """dry_run warns about a notify step's desktop: true where no notifier exists."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    step = {"id": "tell", "tool": "notify", "args": {"message": "hi", "desktop": True}}
    answer = (await client.call_tool("dry_run", {"steps": [step]})).structured_content
    assert answer is not None
    fields = [w["field"] for w in answer["warnings"]]
    assert "steps[0].args.desktop" in fields
    assert answer["run"]["output"]["not_delivered"][0]["channel"] == "desktop"


async def test_an_undeliverable_channel_is_recorded_on_the_run(loom: Loom) -> None:
    """A notification the address guard refuses is recorded in the run's error, by field."""
    notify = {"on": "always", "urls": ["json://10.255.255.1/hook"]}
    task_id = await loom.create([WAIT], notify=notify)
    run = await loom.run(task_id)

    async def noted() -> str | None:
        error = (await loom.get_run(run["id"])).get("error")
        return error if error and "Notification not delivered" in error else None

    from tests.mcp.conftest import eventually

    error = await eventually(noted)
    assert "10.255.255.1" in error
    assert "TASKLOOM_HTTP_ALLOW_HOSTS" in error


def test_an_ungranted_secret_in_notify_urls_is_refused() -> None:
    """With several principals, a notify URL naming an ungranted secret is refused by field."""
    access = Access(frozenset({"alice", "bob"}), frozenset(), parse_grants("TG=alice"), "local")
    spec = TaskSpec.model_validate(
        {"name": "t", "steps": [WAIT], "notify": {"urls": ["{{ secrets.TG }}"]}}
    )
    check_grants(spec, owner="alice", access=access)
    with pytest.raises(InvalidInputs, match=r"notify\.urls\[0\].*not granted to 'bob'"):
        check_grants(spec, owner="bob", access=access)


async def _posted(api: ApiServer, key: str) -> None:
    """The notification is sent after the run's record: wait for it to arrive."""
    from tests.mcp.conftest import eventually

    async def arrived() -> bool:
        return bool(api.hooks.get(key))

    await eventually(arrived)
