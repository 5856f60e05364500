"""12. Retention: pruning a large SQLite history with the scheduler's batched prune, against one
raw `DELETE` of the same rows, and how long a write transaction (what a claim or a final record
needs) waits while the prune goes on, against the same writes with no prune."""

import asyncio
import sqlite3
import time
from datetime import timedelta

from bench.common import Config, Row, open_store, pct, seed_tasks, sqlite_url
from bench.history import bulk_runs

TASKS = 100
KEEP_LAST = 20


async def _writes(store: object, stop: asyncio.Event, out: list[float]) -> None:
    """Small write transactions, one every 20 ms, timed, until `stop` is set."""
    from taskloom.store.database import bump
    from taskloom.store.sql import SqlStore

    assert isinstance(store, SqlStore)
    while not stop.is_set():
        started = time.perf_counter()
        async with store.write() as s:
            await bump(s, "bench_retention")
        out.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)


async def _prepare(cfg: Config, name: str, total: int) -> tuple[str, object, list[str]]:
    data = cfg.workdir / name
    data.mkdir(parents=True, exist_ok=True)
    url = sqlite_url(data)
    store = await open_store(url)
    ids = await seed_tasks(store, TASKS, trigger=lambda i: None, next_fire_at=lambda i: None)
    await store.close()
    bulk_runs(data / "taskloom.db", ids, total, ago=timedelta(days=200))
    return url, await open_store(url), ids


async def retention(cfg: Config) -> list[Row]:
    from taskloom.clock import SystemClock
    from taskloom.runs.retention import Retention, RetentionPolicy

    total = 50_000 if cfg.quick else 500_000
    _, store, _ = await _prepare(cfg, "retention", total)
    policy = RetentionPolicy(days=90, keep_last=KEEP_LAST, failed_days=180, batch=500)
    keeper = Retention(store, SystemClock(), policy)
    idle: list[float] = []
    stop = asyncio.Event()
    writer = asyncio.create_task(_writes(store, stop, idle))
    await asyncio.sleep(3)
    stop.set()
    await writer
    busy: list[float] = []
    stop = asyncio.Event()
    writer = asyncio.create_task(_writes(store, stop, busy))
    started = time.perf_counter()
    report = await keeper.prune()
    prune_s = time.perf_counter() - started
    stop.set()
    await writer
    await store.close()  # type: ignore[attr-defined]
    raw_s = await _raw_delete(cfg, total)
    rate, raw_rate = report.pruned / prune_s, report.pruned / raw_s
    return [
        Row("retention", f"prune {report.pruned:,} of {total:,} runs (batches of 500)", rate,
            "runs/s", "one raw sqlite3 DELETE", raw_rate, rate / raw_rate),
        Row("retention", "write transaction p50 during the prune", pct(busy, 50), "ms",
            "no prune", pct(idle, 50), pct(busy, 50) / max(pct(idle, 50), 1e-3)),
        Row("retention", "write transaction p99 during the prune", pct(busy, 99), "ms",
            "no prune", pct(idle, 99), pct(busy, 99) / max(pct(idle, 99), 1e-3),
            "< 1000 ms", pct(busy, 99) < 1000),
        Row("retention", "write transactions done during the prune", len(busy), ""),
    ]  # fmt: skip


async def _raw_delete(cfg: Config, total: int) -> float:
    """The same history, pruned by one DELETE of everything older than 90 days (no keep_last:
    the cheapest statement that removes about as many rows)."""
    url, store, _ = await _prepare(cfg, "retention-raw", total)
    await store.close()  # type: ignore[attr-defined]
    db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    started = time.perf_counter()
    db.execute("DELETE FROM runs WHERE finished_at < datetime('now', '-90 days')")
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed
