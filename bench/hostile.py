"""Hostile neighbour: another principal's `list_tasks` latency while a hostile task runs, against
the same figure with no hostile task, in the same `taskloom serve --transport http` process;
server RSS sampled throughout."""

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from bench.common import Config, Row, pct, sqlite_url, taskloom_env
from bench.footprint import rss_mib
from bench.stdio import python

ALICE = "alice-bench-token-0123456789"
BOB = "bob-bench-token-0123456789ab"
BOMB = "|".join(["[@,@,@,@,@,@,@,@,@,@]"] * 9)
FIFTY = [
    {"id": f"e{i}", "tool": "extract",
     "args": {"data": "{{ range(100000)|list }}", "expression": "length(@)"}}
    for i in range(50)
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the parent pid
            found.append(int(stat.parent.name))
    return found


class Sampler:
    """Server RSS (and with its sandbox workers) every 0.2 s while running."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.server: list[float] = []
        self.total: list[float] = []

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.2)

    def sample(self) -> None:
        own = rss_mib(self.pid)
        self.server.append(own)
        self.total.append(own + sum(_rss_or_zero(c) for c in _children(self.pid)))


def _rss_or_zero(pid: int) -> float:
    try:
        return rss_mib(pid)
    except OSError:  # a worker replaced between listing and reading
        return 0.0


def _start(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)


@contextlib.asynccontextmanager
async def _serve(data: Path) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    env = taskloom_env(sqlite_url(data), data, TASKLOOM_HTTP_TOKENS=f"alice={ALICE},bob={BOB}")
    args = [python(), "-m", "taskloom", "serve", "--transport", "http", "--port", str(port)]
    process = _start(args, env, data / "serve.log")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            await asyncio.sleep(0.1)
        yield process, f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _client(url: str, token: str) -> Client[StreamableHttpTransport]:
    return Client(StreamableHttpTransport(url, auth=token), timeout=300)


async def _latencies(bob: Client[Any], seconds: float) -> list[float]:
    found: list[float] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.perf_counter()
        await bob.call_tool("list_tasks", {})
        found.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.05)
    return found


async def _bombs(alice: Client[Any]) -> None:
    bomb = {"id": "bomb", "tool": "extract", "args": {"data": [1], "expression": BOMB}}
    while True:
        await alice.call_tool("dry_run", {"steps": [bomb]})


async def hostile_neighbour(cfg: Config) -> list[Row]:
    seconds = 20.0 if cfg.quick else 45.0
    data = cfg.workdir / "hostile"
    data.mkdir(parents=True, exist_ok=True)
    async with _serve(data) as (process, url), _client(url, BOB) as bob, _client(url, ALICE) as a:
        for i in range(20):  # bob has tasks to list
            await bob.call_tool("create_task", {"name": f"bob {i}", "steps": [FIFTY[0]]})
        sampler = Sampler(process.pid)
        sampling = asyncio.create_task(sampler.run())
        quiet = await _latencies(bob, seconds)
        task = {"name": "hostile", "steps": FIFTY, "trigger": {"every": 1}}
        task_id = (await a.call_tool("create_task", task)).structured_content["task"]["id"]  # type: ignore[index]
        bombing = asyncio.create_task(_bombs(a))
        loud = await _latencies(bob, seconds)
        bombing.cancel()
        await asyncio.gather(bombing, return_exceptions=True)
        await a.call_tool("update_task", {"task_id": task_id, "enabled": False})
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
    quiet_p99, loud_p99 = pct(quiet, 99), pct(loud, 99)
    ratio = loud_p99 / quiet_p99
    server_max, total_max = max(sampler.server), max(sampler.total)
    return [
        Row("hostile", "neighbour list_tasks p99 during a hostile task (HTTP, 2 principals)",
            loud_p99, "ms", "same, no hostile task", quiet_p99, ratio, "<= 3x", ratio <= 3),
        Row("hostile", "same, neighbour list_tasks median", pct(loud, 50), "ms",
            "same, no hostile task", pct(quiet, 50), pct(loud, 50) / pct(quiet, 50)),
        Row("hostile", "server RSS max during both phases", server_max, "MiB", target="< 600 MiB",
            met=server_max < 600),
        Row("hostile", "same, server plus its sandbox workers", total_max, "MiB"),
    ]  # fmt: skip
