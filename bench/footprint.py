"""7. Footprint: idle RSS and CPU of `taskloom serve` (stdio, a client connected) with 1,000
scheduled tasks none of which is due, against the bare FastMCP server, side by side."""

import asyncio
import os
from datetime import timedelta

from bench.common import Config, Row, now, open_store, seed_tasks, sqlite_url, taskloom_env
from bench.stdio import StdioSession, python

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def footprint(cfg: Config) -> list[Row]:
    window = 15.0 if cfg.quick else 60.0
    data = cfg.workdir / "footprint"
    data.mkdir(parents=True, exist_ok=True)
    url = sqlite_url(data)
    store = await open_store(url)
    far = now() + timedelta(days=300)
    await seed_tasks(
        store, 1000, trigger=lambda i: {"cron": "0 9 1 1 *"}, next_fire_at=lambda i: far
    )
    await store.close()
    env = taskloom_env(url, data)
    ours = StdioSession([python(), "-m", "taskloom", "serve"], env, data / "serve.log")
    bare = StdioSession([python(), "-m", "bench.bare_server"], env, data / "bare.log")
    sessions = (ours, bare)
    try:
        for s in sessions:
            await s.spawn()
            await s.initialize()
            await s.request("tools/list", {})
        await asyncio.sleep(3)  # let start-up work settle
        before = [cpu_seconds(s.pid) for s in sessions]
        await asyncio.sleep(window)
        cpu = [
            (cpu_seconds(s.pid) - b) / window * 100 for s, b in zip(sessions, before, strict=True)
        ]
        rss = [rss_mib(s.pid) for s in sessions]
    finally:
        for s in sessions:
            await s.close()
    return [
        Row("footprint", f"idle CPU over {window:.0f} s, 1,000 scheduled tasks", cpu[0], "%",
            "bare FastMCP idle", cpu[1], None, "< 1%", cpu[0] < 1),
        Row("footprint", "idle RSS", rss[0], "MiB", "bare FastMCP", rss[1], rss[0] / rss[1]),
    ]  # fmt: skip
