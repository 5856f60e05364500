"""The dashboard in a real headless Chromium against a real `serve --transport http`: sign in
with a token, see what was made through MCP, watch a run live, act from the page, and a second
principal sees none of it. Each page's screenshot goes to tests/artifacts/ (gitignored).

Skips with the reason when no Chromium is installed (`apt-get install -y chromium`); under
CI=true it fails instead."""

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.fixtures.taskloom_process import HttpServer, http_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
DEADLINE_MS = 30_000
TOP = {"x": 0, "y": 0, "width": 1280, "height": 1080}  # the README's picture of a task


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "No Chromium found for the browser tests; install it: apt-get install -y chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    db = tmp_path_factory.mktemp("dashboard") / "t.db"
    tokens = f"alice={ALICE},bob={BOB}"
    with http_server(db, TASKLOOM_HTTP_TOKENS=tokens, TASKLOOM_OPERATORS="alice") as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for the module (each test opens its own context: its own cookies)."""
    path = chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path)
        yield launched
        await launched.close()


async def mcp(http: HttpServer, token: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    async with Client(StreamableHttpTransport(f"{http.url}/mcp", auth=token)) as client:
        result = await client.call_tool(tool, args)
    assert result.structured_content is not None
    return result.structured_content


async def create(http: HttpServer, name: str, steps: list[dict[str, Any]], **more: Any) -> str:
    answer = await mcp(http, ALICE, "create_task", {"name": name, "steps": steps, **more})
    task_id: str = answer["task"]["id"]
    return task_id


def waits(*seconds: float) -> list[dict[str, Any]]:
    return [
        {"id": f"wait{i}", "tool": "wait", "args": {"seconds": s}} for i, s in enumerate(seconds)
    ]


async def sign_in(browser: Browser, http: HttpServer, token: str, **context: Any) -> Page:
    page = await (await browser.new_context(viewport=context.get("viewport", DESKTOP))).new_page()
    await page.goto(f"{http.url}/dashboard/")
    await expect(page).to_have_url(f"{http.url}/dashboard/login")
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{http.url}/dashboard/")
    return page


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_sign_in_shows_a_task_created_through_mcp(browser: Browser, http: HttpServer) -> None:
    """After signing in with a token, the task list shows a task made through MCP with its
    status, its trigger in words with the timezone, and its next fire."""
    trigger = {"cron": "0 8 * * 1-5", "timezone": "Europe/Berlin"}
    await create(http, "EUR morning rates", waits(0), trigger=trigger)
    page = await sign_in(browser, http, ALICE)
    row = page.get_by_role("row").filter(has_text="EUR morning rates")
    await expect(row).to_contain_text("active")
    await expect(row).to_contain_text("At 08:00, Monday through Friday (Europe/Berlin)")
    await expect(row).to_contain_text("CET")
    await shot(page, "dashboard-tasks")
    await page.context.close()


async def test_a_running_run_updates_without_a_reload(browser: Browser, http: HttpServer) -> None:
    """The run page of a running run shows each step finish and then the run succeed, while
    the page itself is never reloaded."""
    task_id = await create(http, "Slow chain", waits(1.5, 1.5, 1.5))
    run = (await mcp(http, ALICE, "run_task", {"task_id": task_id, "wait": False}))["run"]
    page = await sign_in(browser, http, ALICE)
    await page.goto(f"{http.url}/dashboard/runs/{run['id']}")
    await expect(page.locator("#run-live h1 .badge")).to_have_text("running")
    await page.evaluate("window.notReloaded = true")
    await expect(page.locator("#step-0 h3 .badge")).to_have_text("succeeded", timeout=DEADLINE_MS)
    await expect(page.locator("#run-live h1 .badge")).to_have_text("succeeded", timeout=DEADLINE_MS)
    await expect(page.locator("#step-2 h3 .badge")).to_have_text("succeeded")
    assert await page.evaluate("window.notReloaded") is True
    await shot(page, "dashboard-run")
    await page.context.close()


async def test_pause_resume_and_run_now_from_the_task_page(
    browser: Browser, http: HttpServer
) -> None:
    """Pause (pressed from the keyboard), resume and run now on the task page change the task
    as the MCP tools see it, and run now opens the new run."""
    trigger = {"cron": "30 7 * * *", "timezone": "Europe/Berlin"}
    task_id = await create(http, "Morning digest", waits(0.1, 0.2), trigger=trigger)
    page = await sign_in(browser, http, ALICE)
    await page.goto(f"{http.url}/dashboard/tasks/{task_id}")
    await page.get_by_role("button", name="Pause").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("h1 .badge")).to_have_text("paused")
    assert (await mcp(http, ALICE, "get_task", {"task_id": task_id}))["task"]["status"] == "paused"
    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("h1 .badge")).to_have_text("active")
    await page.get_by_role("button", name="Run now").click()
    await expect(page.locator("#run-live h1 .badge")).to_have_text("succeeded", timeout=DEADLINE_MS)
    history = await mcp(http, ALICE, "task_history", {"task_id": task_id})
    assert [r["trigger"] for r in history["runs"]] == ["manual"]
    await more_history(http, task_id)
    await page.goto(f"{http.url}/dashboard/tasks/{task_id}")
    await expect(page.get_by_role("heading", name="Next fires")).to_be_visible()
    await shot(page, "dashboard-task")
    await page.screenshot(path=str(ARTIFACTS / "dashboard-task-top.png"), clip=TOP)
    await page.goto(f"{http.url}/dashboard/scheduler")
    await expect(page.get_by_role("heading", name="Processes")).to_be_visible()
    await shot(page, "dashboard-scheduler")
    await page.context.close()


async def test_cancel_stops_a_running_run_from_its_page(browser: Browser, http: HttpServer) -> None:
    """ "Cancel run" on a running run's page cancels it, as cancel_run does."""
    task_id = await create(http, "Long wait", waits(120))
    run = (await mcp(http, ALICE, "run_task", {"task_id": task_id, "wait": False}))["run"]
    page = await sign_in(browser, http, ALICE)
    await page.goto(f"{http.url}/dashboard/runs/{run['id']}")
    await page.get_by_role("button", name="Cancel run").click()
    await expect(page.locator("#run-live h1 .badge")).to_have_text("cancelled", timeout=DEADLINE_MS)
    got = await mcp(http, ALICE, "get_run", {"run_id": run["id"]})
    assert got["run"]["status"] == "cancelled"
    await page.context.close()


async def more_history(http: HttpServer, task_id: str) -> None:
    """A few more runs, one of them failed, so the task page's charts have something to say."""
    refused = {"id": "fetch", "tool": "http_request", "args": {"url": "http://127.0.0.1:9/"}}
    for seconds in (0.3, 0.1, 0.5):
        await mcp(http, ALICE, "update_task", {"task_id": task_id, "steps": waits(seconds)})
        await mcp(http, ALICE, "run_task", {"task_id": task_id})
    await mcp(http, ALICE, "update_task", {"task_id": task_id, "steps": [*waits(0.2), refused]})
    await mcp(http, ALICE, "run_task", {"task_id": task_id})
    await mcp(http, ALICE, "update_task", {"task_id": task_id, "steps": waits(0.1, 0.2)})
    await mcp(http, ALICE, "run_task", {"task_id": task_id})


async def test_a_second_principal_sees_none_of_it(browser: Browser, http: HttpServer) -> None:
    """Bob, signed in with his own token, sees none of alice's tasks or runs, and cannot act
    on them."""
    task_id = await create(http, "Alice only", waits(0))
    run = (await mcp(http, ALICE, "run_task", {"task_id": task_id}))["run"]
    page = await sign_in(browser, http, BOB)
    await expect(page.get_by_text("No tasks yet")).to_be_visible()
    for path in (f"tasks/{task_id}", f"runs/{run['id']}"):
        answer = await page.goto(f"{http.url}/dashboard/{path}")
        assert answer is not None
        assert answer.status == 404
    csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    refused = await page.request.post(
        f"{http.url}/dashboard/tasks/{task_id}/pause", form={"csrf": csrf or ""}
    )
    assert refused.status == 404
    assert (await mcp(http, ALICE, "get_task", {"task_id": task_id}))["task"]["status"] == "active"
    await page.context.close()


async def test_show_more_loads_the_rest_of_a_long_output(
    browser: Browser, http: HttpServer
) -> None:
    """A step output longer than the preview shows its head; "Show more" loads the rest."""
    render = {"id": "long", "tool": "render", "args": {"template": "{{ 'x' * 5000 }}"}}
    task_id = await create(http, "Long output", [render])
    run = (await mcp(http, ALICE, "run_task", {"task_id": task_id}))["run"]
    page = await sign_in(browser, http, ALICE)
    await page.goto(f"{http.url}/dashboard/runs/{run['id']}")
    value = page.locator("#v-0-output")
    assert len(await value.inner_text()) == 2000
    await page.get_by_role("button", name="Show more").first.click()
    await expect(page.get_by_role("button", name="Show more")).to_have_count(0)
    assert await value.inner_text() == "x" * 5000
    await page.context.close()


async def test_the_task_list_fits_a_phone_screen(browser: Browser, http: HttpServer) -> None:
    """On a phone-sized screen the task list needs no sideways scrolling, and the first Tab
    reaches the skip link."""
    await create(http, "Phone sized", waits(0), trigger={"every": 60})
    page = await sign_in(browser, http, ALICE, viewport=PHONE)
    await expect(page.get_by_text("Phone sized")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await shot(page, "dashboard-tasks-phone")
    await page.context.close()


async def test_an_action_without_the_csrf_token_is_refused(http: HttpServer) -> None:
    """A signed-in session's POST without its CSRF token is refused and changes nothing."""
    task_id = await create(http, "CSRF target", waits(0))
    async with httpx.AsyncClient(base_url=http.url) as raw:
        signed = await raw.post("/dashboard/login", data={"token": ALICE})
        assert signed.status_code == 303
        assert "taskloom_session" in raw.cookies
        refused = await raw.post(f"/dashboard/tasks/{task_id}/pause", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert (await mcp(http, ALICE, "get_task", {"task_id": task_id}))["task"]["status"] == "active"


async def test_a_wrong_token_does_not_sign_in(http: HttpServer) -> None:
    """A token that is not one of TASKLOOM_HTTP_TOKENS gets the sign-in page again, no session."""
    async with httpx.AsyncClient(base_url=http.url) as raw:
        answer = await raw.post("/dashboard/login", data={"token": "x" * 30})
        assert answer.status_code == 401
        assert "taskloom_session" not in raw.cookies
