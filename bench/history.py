"""5. History: task_history page latency with 1,000,000 stored runs on SQLite, through the MCP
tool (in-memory client) and at the store, against the same page read with raw sqlite3."""

import random
import sqlite3
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    Config,
    Row,
    now,
    open_store,
    pct,
    seed_tasks,
    sqlite_url,
    taskloom_env,
    timed_ms,
)

TASKS = 1000


def _ulid(prefix: str, ms: int, rnd: random.Random) -> str:
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    value = (ms << 80) | rnd.getrandbits(80)
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(alphabet[digit])
    return f"{prefix}_{''.join(reversed(chars))}"


def bulk_runs(
    db_path: Path, task_ids: list[str], total: int, *, ago: timedelta = timedelta(0)
) -> None:
    """`total` finished runs, spread over the tasks, one per second of history ending `ago`
    before now, 3% failed."""
    rnd = random.Random(7)
    start = now() - ago - timedelta(seconds=total + 60)
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    sql = (
        "INSERT INTO runs (id, task_id, owner, status, trigger, fire_time, attempt, created_at, "
        "started_at, finished_at, duration_ms, output, summary, error) "
        "VALUES (?, ?, 'local', ?, 'schedule', ?, 1, ?, ?, ?, 12, '{\"waited_s\": 0.0}', NULL, ?)"
    )
    chunk: list[tuple[Any, ...]] = []
    for i in range(total):
        at = start + timedelta(seconds=i)
        stamp = at.strftime(fmt)
        failed = rnd.random() < 0.03
        chunk.append((
            _ulid("run", int(at.timestamp() * 1000), rnd), task_ids[i % len(task_ids)],
            "failed" if failed else "succeeded", stamp, stamp, stamp,
            (at + timedelta(milliseconds=12)).strftime(fmt), "boom" if failed else None,
        ))  # fmt: skip
        if len(chunk) == 50_000:
            db.executemany(sql, chunk)
            chunk.clear()
    db.executemany(sql, chunk)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def _raw(db_path: Path, sql: str, params: tuple[Any, ...], n: int) -> list[float]:
    db = sqlite3.connect(db_path)
    out = []
    for i in range(n + 5):
        started = time.perf_counter()
        db.execute(sql, params).fetchall()
        if i >= 5:
            out.append((time.perf_counter() - started) * 1000)
    db.close()
    return out


@dataclass(frozen=True)
class Corpus:
    """A SQLite database of TASKS manual tasks and many runs, and how long the runs took to
    insert."""

    url: str
    data: Path
    task_ids: list[str]
    setup_s: float

    @property
    def db_path(self) -> Path:
        return self.data / "taskloom.db"

    def settings(self) -> Any:
        """Settings of a server on the corpus that does not schedule."""
        from taskloom.settings import Settings

        env = taskloom_env(
            self.url, self.data, TASKLOOM_SCHEDULER="false", TASKLOOM_LOG_LEVEL="warning"
        )
        return Settings(**{k[9:].lower(): v for k, v in env.items() if k.startswith("TASKLOOM_")})


async def runs_corpus(cfg: Config, name: str, total: int) -> Corpus:
    """TASKS tasks and `total` runs spread over them, in `cfg.workdir / name`."""
    data = cfg.workdir / name
    data.mkdir(parents=True, exist_ok=True)
    url = sqlite_url(data)
    store = await open_store(url)
    task_ids = await seed_tasks(store, TASKS, trigger=lambda i: None, next_fire_at=lambda i: None)
    await store.close()
    started = time.perf_counter()
    bulk_runs(data / "taskloom.db", task_ids, total)
    return Corpus(url, data, task_ids, time.perf_counter() - started)


async def history(cfg: Config) -> list[Row]:
    from fastmcp import Client

    from taskloom.app import build_server
    from taskloom.services import build_services

    total = 200_000 if cfg.quick else 1_000_000
    n = 30 if cfg.quick else 100
    corpus = await runs_corpus(cfg, "history", total)
    db_path, task_ids, setup_s = corpus.db_path, corpus.task_ids, corpus.setup_s
    services = build_services(corpus.settings())
    server = build_server(services)
    mid = (
        sqlite3.connect(db_path)
        .execute("SELECT id FROM runs ORDER BY id LIMIT 1 OFFSET ?", (total // 2,))
        .fetchone()[0]
    )
    from taskloom.domain.storage import encode_cursor

    task = task_ids[TASKS // 2]
    cases: list[tuple[str, dict[str, Any], str, tuple[Any, ...]]] = [
        ("all runs, first page", {}, "owner = ? ORDER BY id DESC", ("local",)),
        ("one task, first page", {"task_id": task},
         "owner = ? AND task_id = ? ORDER BY id DESC", ("local", task)),
        ("all runs, page at the middle (cursor)", {"cursor": encode_cursor(mid)},
         "owner = ? AND id < ? ORDER BY id DESC", ("local", mid)),
        ("status=failed (3%), first page", {"status": ["failed"]},
         "owner = ? AND status IN (?) ORDER BY id DESC", ("local", "failed")),
        ("status=cancelled (none stored)", {"status": ["cancelled"]},
         "owner = ? AND status IN (?) ORDER BY id DESC", ("local", "cancelled")),
        ("one task, status=failed", {"task_id": task, "status": ["failed"]},
         "owner = ? AND task_id = ? AND status IN (?) ORDER BY id DESC",
         ("local", task, "failed")),
    ]  # fmt: skip
    rows = [Row("history", f"setup: {total:,} runs bulk-inserted", setup_s, "s")]
    async with Client(server) as client:
        # The sandbox workers start a few seconds after start-up (two fresh interpreters): let
        # them be up first, or they land in the middle of some cases and not others.
        if services._warming is not None:
            await services._warming
        for label, args, where, params in cases:

            async def tool(args: dict[str, Any] = args) -> Any:
                return await client.call_tool("task_history", {"limit": 20, **args})

            got = await timed_ms(n, tool, warmup=5)
            raw = _raw(db_path, f"SELECT * FROM runs WHERE {where} LIMIT 21", params, n)
            p50 = pct(got, 50)
            rows.append(Row("history", f"task_history p50: {label}", p50, "ms",
                            "raw sqlite3 same page", pct(raw, 50), p50 / max(pct(raw, 50), 1e-3),
                            "< 3 ms", p50 < 3))  # fmt: skip
            rows.append(Row("history", f"task_history p99: {label}", pct(got, 99), "ms"))
    return rows
