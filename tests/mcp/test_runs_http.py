"""Runs against a real HTTP API on 127.0.0.1: a JSON API, a failing, a slow and a redirecting
endpoint, and the task's notify policy posting to a loopback webhook."""

from typing import Any

import pytest

from tests.fixtures.api_server import ApiServer
from tests.mcp.conftest import Loom


def get(api: ApiServer, path: str, step_id: str = "fetch", **args: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": "http_request", "args": {"url": api.url(path), **args}}


async def test_a_chain_reads_a_json_api(loom: Loom, api: ApiServer) -> None:
    """A fetch step's JSON feeds a render step through a template."""
    render = {
        "id": "report",
        "tool": "render",
        "args": {
            "template": "{% for i in items %}{{ i.name }}={{ i.price }};{% endfor %}",
            "data": {"items": "{{ steps.fetch.output.json['items'] }}"},
        },
    }
    run = await loom.run(await loom.create([get(api, "/items"), render]))
    assert run["output"] == "lamp=19.9;mug=7.5;"
    assert run["steps"][0]["output"]["status"] == 200


async def test_a_failing_endpoint_fails_the_step_with_its_status(
    loom: Loom, api: ApiServer
) -> None:
    """A 500 answer fails the step with the status and the start of the body."""
    run = await loom.run(await loom.create([get(api, "/fail")]))
    error = run["steps"][0]["error"]
    assert "answered 500" in error
    assert "boom: database down" in error
    assert "raise_for_status" in error


async def test_a_slow_endpoint_fails_at_the_request_timeout(loom: Loom, api: ApiServer) -> None:
    """An endpoint slower than the request's timeout_s fails the step, and the run goes on
    to record it."""
    run = await loom.run(await loom.create([get(api, "/slow", timeout_s=0.2)]))
    assert run["status"] == "failed"
    assert "0.2" in run["steps"][0]["error"]


async def test_a_slow_endpoint_fails_at_the_step_timeout(loom: Loom, api: ApiServer) -> None:
    """A step timeout_s shorter than the request stops the step and names the timeout."""
    step = get(api, "/slow") | {"timeout_s": 0.2}
    run = await loom.run(await loom.create([step]))
    assert "Step 'fetch' timed out after 0.2 s" in run["steps"][0]["error"]


@pytest.mark.parametrize("target", ["http://10.0.0.1/admin", "http://169.254.169.254/latest/"])
async def test_a_redirect_to_a_private_address_is_refused(
    loom: Loom, api: ApiServer, target: str
) -> None:
    """Loopback is allowed, but a redirect from it to a private address fails the step."""
    run = await loom.run(await loom.create([get(api, "/redirect", params={"to": target})]))
    assert run["status"] == "failed"
    error = run["steps"][0]["error"]
    assert target.split("/")[2] in error
    assert "TASKLOOM_HTTP_ALLOW_HOSTS" in error


def notify(api: ApiServer, key: str, on: str) -> dict[str, Any]:
    return {"on": on, "webhook_url": api.url(f"/hook/{key}")}


@pytest.mark.parametrize(
    ("on", "path", "posted"),
    [
        ("always", "/items", 1),
        ("always", "/fail", 1),
        ("failure", "/items", 0),
        ("failure", "/fail", 1),
        ("never", "/fail", 0),
    ],
)
async def test_notify_policy_decides_whether_the_webhook_is_called(
    loom: Loom, api: ApiServer, on: str, path: str, posted: int
) -> None:
    """Each notify policy posts to the webhook exactly when it says it will."""
    key = f"policy-{on}{path.replace('/', '-')}"
    task_id = await loom.create([get(api, path)], name="Watcher", notify=notify(api, key, on))
    run = await loom.run(task_id)
    assert len(api.hooks[key]) == posted
    if posted:
        verdict = "succeeded" if run["status"] == "succeeded" else "failed"
        assert api.hooks[key][0]["text"].startswith(f"*Taskloom: Watcher {verdict}*\n")


async def test_notify_on_failure_carries_the_error(loom: Loom, api: ApiServer) -> None:
    """A failure notification's text is the run's error, the step's error included."""
    task_id = await loom.create([get(api, "/fail")], notify=notify(api, "failure-text", "failure"))
    run = await loom.run(task_id)
    stored = (await loom.call("get_run", {"run_id": run["id"], "view": "full"}))["run"]
    assert api.hooks["failure-text"][0]["text"].endswith(stored["error"])
    assert run["steps"][0]["error"] in stored["error"]


async def test_notify_on_change_posts_only_when_the_output_changes(
    loom: Loom, api: ApiServer
) -> None:
    """With on=change the first run and each changed output notify; a repeat does not."""
    task_id = await loom.create(
        [get(api, "/count/change"), {"id": "n", "tool": "extract",
         "args": {"data": "{{ steps.fetch.output.json }}", "expression": "n > `1`"}}],
        notify=notify(api, "change", "change"),
    )  # fmt: skip
    outputs = [(await loom.run(task_id))["output"] for _ in range(4)]
    assert outputs == [False, True, True, True]
    assert len(api.hooks["change"]) == 2
