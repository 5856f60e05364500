"""The sandbox worker pool: real child processes hitting real OS limits, then the next job."""

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest
from tests.mcp.conftest import eventually

from taskloom.runs.evaluation import StepJob, evaluate_step
from taskloom.runs.sandbox import LimitExceeded, Sandbox, SandboxLimits

pytestmark = pytest.mark.slow

# A generous wall limit: on a busy machine CPU time accrues slowly, and the CPU limit is tested.
LIMITS = SandboxLimits(workers=1, memory_mb=256, cpu_s=0.5, wall_s=120, value_bytes=1_000_000)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    pool = Sandbox(LIMITS)
    try:
        yield pool
    finally:
        await pool.close()


def render_job(template: str) -> StepJob:
    return StepJob(
        step_id="s",
        tool="render",
        args={"template": template},
        raw_args=frozenset({"template"}),
        context={"steps": {}},
        compute=True,
    )


async def ok(sandbox: Sandbox) -> None:
    values = await sandbox.call(evaluate_step, render_job("{{ 6 * 7 }}"))
    assert (values.error, values.stored_output) == (None, "42")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_a_job_runs_in_another_process(sandbox: Sandbox) -> None:
    """A job runs in a child process and its result comes back to the caller."""
    assert await sandbox.call(os.getpid) != os.getpid()


async def test_cpu_limit_fails_the_job_and_the_worker_serves_the_next(sandbox: Sandbox) -> None:
    """A template looping past the CPU limit fails naming the limit and its setting; the next
    job runs."""
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(LimitExceeded) as caught:
        await sandbox.call(evaluate_step, render_job(loop))
    assert str(caught.value) == "used more than 0.5 s of CPU time (TASKLOOM_SANDBOX_CPU_S)"
    await ok(sandbox)


async def test_cpu_stuck_in_one_c_call_is_killed_by_the_os(sandbox: Sandbox) -> None:
    """A job stuck in one C call, where no Python signal handler runs, is killed by
    RLIMIT_CPU and reported as over the CPU limit; a fresh worker runs the next job."""
    with pytest.raises(LimitExceeded) as caught:
        await sandbox.call(sum, range(10**12))
    assert str(caught.value) == "used more than 0.5 s of CPU time (TASKLOOM_SANDBOX_CPU_S)"
    await ok(sandbox)


async def test_memory_limit_fails_the_job_and_replaces_the_worker(sandbox: Sandbox) -> None:
    """An allocation over the memory limit fails naming the limit; the worker is replaced."""
    before = await sandbox.call(os.getpid)
    with pytest.raises(LimitExceeded) as caught:
        await sandbox.call(bytearray, 1024**3)
    assert str(caught.value) == "used more than 256 MB of memory (TASKLOOM_SANDBOX_MEMORY_MB)"
    assert await sandbox.call(os.getpid) != before
    await ok(sandbox)


async def test_wall_clock_deadline_kills_the_worker() -> None:
    """A job past the wall-clock deadline is killed, not abandoned, and replaced."""
    pool = Sandbox(SandboxLimits(workers=1, wall_s=2))
    try:
        before = await pool.call(os.getpid)
        with pytest.raises(LimitExceeded) as caught:
            await pool.call(time.sleep, 60)
        assert str(caught.value) == "ran longer than 2 s (TASKLOOM_SANDBOX_WALL_S)"
        assert gone(before)
        assert await pool.call(os.getpid) != before
    finally:
        await pool.close()


async def test_a_shorter_caller_timeout_raises_timeout_error(sandbox: Sandbox) -> None:
    """A caller's own timeout under the wall limit raises TimeoutError and kills the worker."""
    before = await sandbox.call(os.getpid)
    with pytest.raises(TimeoutError):
        await sandbox.call(time.sleep, 60, timeout_s=0.2)
    assert gone(before)


async def test_an_oversized_result_is_refused_in_the_child(sandbox: Sandbox) -> None:
    """A result over the value limit is refused with its size and the setting."""
    with pytest.raises(LimitExceeded) as caught:
        await sandbox.call(os.urandom, 2_000_000)
    assert caught.value.setting == "TASKLOOM_SANDBOX_VALUE_BYTES"
    assert "over the 1,000,000 byte limit" in caught.value.detail
    await ok(sandbox)


async def test_the_jobs_own_exception_reaches_the_caller(sandbox: Sandbox) -> None:
    """An exception raised by the job itself is raised in the caller, the worker kept."""
    before = await sandbox.call(os.getpid)
    with pytest.raises(ValueError, match="invalid literal"):
        await sandbox.call(int, "nope")
    assert await sandbox.call(os.getpid) == before


async def test_cancelling_the_caller_kills_the_worker(sandbox: Sandbox) -> None:
    """A cancelled call stops its worker process instead of leaving it running."""
    job = asyncio.create_task(sandbox.call(time.sleep, 60))

    async def busy_pid() -> int | None:
        return next(iter(sandbox.worker_pids()), None)

    pid = await eventually(busy_pid, timeout_s=60)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert gone(pid)
    await ok(sandbox)


async def test_close_stops_every_worker() -> None:
    """Closing the pool stops its idle workers."""
    pool = Sandbox(SandboxLimits(workers=2))
    pids = await asyncio.gather(pool.call(os.getpid), pool.call(os.getpid))
    await pool.close()
    assert all(gone(pid) for pid in pids)
    assert pool.worker_pids() == []
