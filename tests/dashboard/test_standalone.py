"""`taskloom dashboard` as a real process beside a stdio server on the same database: the local
user is signed in without a token, still needs the CSRF token to act, and foreign Host headers
are refused."""

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.taskloom_process import free_port, server_env, stdio_client


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "dashboard.log"
    args = [sys.executable, "-m", "taskloom", "dashboard", "--port", str(port)]
    with log.open("wb") as err:
        process = subprocess.Popen(args, env=server_env(tmp_path / "t.db"), stderr=err,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_answering(url, process, log)
        yield url
    finally:
        process.terminate()
        # uvicorn re-raises the SIGTERM it caught once its lifespan (our services) stopped.
        assert process.wait(30) in (0, -signal.SIGTERM), log.read_text()
        assert "Traceback" not in log.read_text()


def _wait_answering(url: str, process: "subprocess.Popen[bytes]", log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            httpx.get(f"{url}/metrics", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(f"taskloom dashboard did not answer:\n{log.read_text()}")


async def test_the_dashboard_shows_what_a_stdio_client_made(tmp_path: Path, dashboard: str) -> None:
    """A task created through a stdio server (as Claude Desktop runs it) shows on the
    dashboard of the same database, for the local user, without signing in."""
    async with stdio_client(tmp_path / "t.db", tmp_path / "stdio.log") as client:
        steps = [{"id": "pause", "tool": "wait", "args": {"seconds": 0}}]
        await client.call_tool("create_task", {"name": "Made over stdio", "steps": steps})
    async with httpx.AsyncClient(base_url=dashboard, follow_redirects=True) as browser:
        page = await browser.get("/")
    assert page.status_code == 200
    assert "Made over stdio" in page.text
    assert "taskloom_session" in browser.cookies


async def test_local_actions_still_need_the_csrf_token(dashboard: str) -> None:
    """Without tokens the local user is signed in, but a POST without the CSRF token is
    refused."""
    async with httpx.AsyncClient(base_url=dashboard, follow_redirects=True) as browser:
        await browser.get("/dashboard/")
        refused = await browser.post("/dashboard/tasks/tsk_x/pause", data={"csrf": "forged"})
    assert refused.status_code == 403


async def test_a_foreign_host_header_is_refused(dashboard: str) -> None:
    """On loopback, a request naming another host (DNS rebinding) is refused."""
    async with httpx.AsyncClient(base_url=dashboard) as raw:
        answer = await raw.get("/dashboard/", headers={"Host": "evil.example"})
    assert answer.status_code == 400
