"""1. Cold start and 2. tool latency, over stdio, against a bare FastMCP server."""

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bench.common import (
    Config,
    Row,
    median,
    now,
    open_store,
    pct,
    seed_tasks,
    sqlite_url,
    taskloom_env,
)
from bench.footprint import cpu_seconds
from bench.stdio import StdioSession, python, timed_call

BARE = [python(), "-m", "bench.bare_server"]
TASKLOOM = [python(), "-m", "taskloom", "serve"]


def _env(workdir: Path) -> dict[str, str]:
    return taskloom_env(sqlite_url(workdir), workdir)


async def _cold_once(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Wall seconds from spawn to the tools/list answer, and the CPU seconds the server used
    by then (less sensitive to other load on the machine)."""
    session = StdioSession(argv, env, log)
    started = time.perf_counter()
    await session.spawn()
    try:
        await session.initialize()
        await session.request("tools/list", {})
        return time.perf_counter() - started, cpu_seconds(session.pid)
    finally:
        await session.close()


async def cold_start(cfg: Config) -> list[Row]:
    workdir = cfg.workdir / "cold"
    workdir.mkdir(parents=True, exist_ok=True)
    env = _env(workdir)
    runs = 7 if cfg.quick else 15
    # One unmeasured start each: creates and migrates the database, warms the OS file cache.
    first, _ = await _cold_once(TASKLOOM, env, workdir / "serve.log")
    await _cold_once(BARE, env, workdir / "bare.log")
    ours: list[tuple[float, float]] = []
    bare: list[tuple[float, float]] = []
    for _ in range(runs):  # interleaved, so drift in machine load hits both alike
        ours.append(await _cold_once(TASKLOOM, env, workdir / "serve.log"))
        bare.append(await _cold_once(BARE, env, workdir / "bare.log"))
    wall, bare_wall = median(w for w, _ in ours), median(w for w, _ in bare)
    cpu, bare_cpu = median(c for _, c in ours), median(c for _, c in bare)
    return [
        Row("cold_start", f"spawn -> tools/list, wall, median of {runs}", wall * 1000, "ms",
            "bare FastMCP, 16 tools", bare_wall * 1000, wall / bare_wall, "<= 1.3x",
            wall / bare_wall <= 1.3),
        Row("cold_start", "same, server CPU time used by then", cpu * 1000, "ms",
            "bare FastMCP, 16 tools", bare_cpu * 1000, cpu / bare_cpu),
        Row("cold_start", "same, first start (creates + migrates the DB)", first * 1000, "ms"),
    ]  # fmt: skip


def _args_of(args: dict | Callable[[int], dict], i: int) -> dict:
    return args(i) if callable(args) else args


async def _paired(
    ours: StdioSession, bare: StdioSession, tool: str, args: dict | Callable[[int], dict], n: int
) -> tuple[list[float], list[float]]:
    """Latencies of `tool` and of the bare server's echo, call for call in turn, so drift in the
    (shared) machine's load hits both alike."""
    for i in range(min(10, n)):  # warm-up
        await ours.call(tool, _args_of(args, -1 - i))
        await bare.call("echo", {"text": "hello"})
    got: list[float] = []
    echo: list[float] = []
    for i in range(n):
        echo.append(await timed_call(bare, "echo", {"text": "hello"}))
        got.append(await timed_call(ours, tool, _args_of(args, i)))
    return got, echo


async def tool_latency(cfg: Config) -> list[Row]:
    workdir = cfg.workdir / "latency"
    workdir.mkdir(parents=True, exist_ok=True)
    env = _env(workdir)
    n = 100 if cfg.quick else 400
    store = await open_store(sqlite_url(workdir))
    far = now() + timedelta(days=300)
    await seed_tasks(
        store, 10_000, trigger=lambda i: {"cron": "0 9 1 1 *"}, next_fire_at=lambda i: far
    )
    await store.close()

    bare = StdioSession(BARE, env, workdir / "bare.log")
    ours = StdioSession(TASKLOOM, env, workdir / "serve.log")
    await bare.spawn()
    await ours.spawn()
    rows: list[Row] = []
    echo_all: list[float] = []
    try:
        await bare.initialize()
        await ours.initialize()
        steps = [{"id": "pause", "tool": "wait", "args": {"seconds": 0}}]
        created = await ours.call("create_task", {"name": "latency probe", "steps": steps})
        task_id = created["task"]["id"]
        run = await ours.call("run_task", {"task_id": task_id, "wait": True})
        run_id = run["run"]["id"]

        def create(i: int) -> dict:  # names are unique per owner
            return {"name": f"bench create {i}", "steps": steps, "trigger": {"cron": "0 9 1 1 *"}}

        cases: dict[str, dict | Callable[[int], dict]] = {
            "create_task": create,
            "list_tasks": {"limit": 20},
            "get_run": {"run_id": run_id},
        }
        measured: list[tuple[str, list[float], list[float]]] = []
        for tool, args in cases.items():
            got, echo = await _paired(ours, bare, tool, args, n)
            measured.append((tool, got, echo))
            echo_all += echo
        p50_echo, p99_echo = pct(echo_all, 50) * 1000, pct(echo_all, 99) * 1000
        rows.append(Row("tool_latency", "bare FastMCP echo p50", p50_echo, "ms"))
        rows.append(Row("tool_latency", "bare FastMCP echo p99", p99_echo, "ms"))
        for tool, got, echo in measured:
            p50, p99 = pct(got, 50) * 1000, pct(got, 99) * 1000
            e50, e99 = pct(echo, 50) * 1000, pct(echo, 99) * 1000
            label = f"{tool} p50" + (" (10,000 tasks, page of 20)" if tool == "list_tasks" else "")
            rows.append(Row("tool_latency", label, p50, "ms", "echo p50 (paired)", e50,
                            p50 / e50, "<= 2x", p50 / e50 <= 2))  # fmt: skip
            rows.append(Row("tool_latency", f"{tool} p99", p99, "ms", "echo p99 (paired)", e99,
                            p99 / e99, "<= 3x", p99 / e99 <= 3))  # fmt: skip
    finally:
        await ours.close()
        await bare.close()
    return rows


if __name__ == "__main__":
    for r in asyncio.run(cold_start(Config(quick=True))):
        print(r)
