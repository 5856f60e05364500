"""Stopping ends within the grace, every time, in every mode: `taskloom serve` over stdio (stdin
a pipe the client keeps open) and over HTTP, and `taskloom worker`, on SIGINT and on SIGTERM,
with a run in flight that outlasts the grace. And the scheduler's own stop, when a cancellation
arrives as a loop's wake-up event is set."""

import asyncio
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from taskloom.clock import SystemClock
from taskloom.domain.runs import RunStatus
from taskloom.domain.tasks import TaskSpec
from taskloom.services import Services, build_services
from tests.conftest import make_settings
from tests.fixtures.taskloom_process import free_port, server_env

GRACE_S = 2
# Generous: start-up on a busy machine plus the grace plus the store's close; a stop that hangs
# (the defect) never ends at all.
EXIT_DEADLINE_S = 90
COMMANDS = {
    "stdio": ["serve"],
    "http": ["serve", "--transport", "http", "--port", "{port}"],
    "worker": ["worker"],
}


async def long_run_due(db: Path) -> tuple[Services, str]:
    """A one-shot task due now whose only step outlasts the grace; the writer's services."""
    settings = make_settings(db.parent, database_url=f"sqlite:///{db}", scheduler=False)
    services = build_services(settings, role="test")
    await services.start(schedule=False)
    at = (SystemClock().now() + timedelta(seconds=1)).isoformat()
    spec = TaskSpec.model_validate(
        {
            "name": "long",
            "trigger": {"at": at},
            "steps": [{"id": "pause", "tool": "wait", "args": {"seconds": 600}}],
        }
    )
    task = (await services.tasks.create(spec, owner="local")).task
    return services, task.id


async def poll(probe: object, what: str, timeout_s: float = EXIT_DEADLINE_S) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await probe() if asyncio.iscoroutinefunction(probe) else probe()  # type: ignore[operator]
        if value:
            return value
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")


def spawn(args: list[str], env: dict[str, str], log: Path) -> "subprocess.Popen[bytes]":
    """The process, its stdin a pipe kept open (as a client keeps it), stderr to `log`."""
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "taskloom", *args],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
        )  # fmt: skip


def end(proc: "subprocess.Popen[bytes]") -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("mode", list(COMMANDS))
async def test_a_signal_stops_the_process_within_the_grace(
    tmp_path: Path, mode: str, sig: signal.Signals
) -> None:
    """One signal stops the process: the run that outlasts the grace is recorded interrupted,
    the process exits by itself, and its stderr holds no traceback."""
    db, log = tmp_path / "t.db", tmp_path / f"{mode}.log"
    services, task_id = await long_run_due(db)
    args = [a.replace("{port}", str(free_port())) for a in COMMANDS[mode]]
    env = server_env(db, TASKLOOM_SHUTDOWN_GRACE_S=str(GRACE_S), TASKLOOM_LEASE_S="3")
    proc = spawn(args, env, log)
    try:

        async def running() -> str | None:
            page = await services.store.list_runs(owner=None, task_id=task_id, limit=1)
            found = page.items[0] if page.items else None
            return found.id if found and found.status == RunStatus.RUNNING else None

        run_id = str(await poll(running, "the run to start"))
        proc.send_signal(sig)
        await poll(lambda: proc.poll() is not None, "the process to exit")
        final = await services.runs.get(run_id, owner=None)
    finally:
        end(proc)
        await services.stop(grace_s=0)
    text = log.read_text()
    assert (final.status, "shutting down" in (final.error or "")) == (RunStatus.INTERRUPTED, True)
    assert "Traceback" not in text, text
    assert proc.returncode in (0, 128 + sig), text


async def test_stop_ends_when_a_cancellation_meets_a_wake_up(tmp_path: Path) -> None:
    """A stop whose cancellation reaches the queue loop as its wake-up event is set (which
    asyncio.wait_for of Python 3.11 swallows) still ends."""
    settings = make_settings(tmp_path)
    services = build_services(settings, role="test")
    await services.start(schedule=True)
    scheduler = services.scheduler
    assert scheduler is not None
    for _ in range(3):  # let the loops reach their first wait (a yield, not a timed sleep)
        await asyncio.sleep(0)
    scheduler._wake_queue.set()
    await asyncio.wait_for(services.stop(grace_s=0), timeout=60)
    assert all(loop.done() for loop in scheduler._loops.values())
