"""What every benchmark shares: result rows, percentiles, Taskloom processes, seeding, databases."""

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.stdio import python

PG_ADMIN_URL = os.environ.get("TASKLOOM_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Row:
    """One line of the table: a figure, its baseline, and the target it is held to."""

    bench: str
    metric: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


@dataclass
class Config:
    quick: bool = False
    keep: bool = False
    profile: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="taskloom-bench-")))


def pct(values: Iterable[float], q: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


async def timed_ms(n: int, call: Callable[[], Awaitable[Any]], *, warmup: int = 3) -> list[float]:
    """Milliseconds of each of `n` calls, after `warmup` calls that are not counted."""
    for _ in range(warmup):
        await call()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def now() -> datetime:
    return datetime.now(UTC)


def as_dt(value: Any) -> datetime:
    """SQLite hands text back to raw queries, PostgreSQL aware datetimes."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def taskloom_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
    env.update(
        TASKLOOM_DATABASE_URL=database_url,
        TASKLOOM_DATA_DIR=str(data_dir),
        TASKLOOM_CONFIG_FILE=str(data_dir / "no-config.toml"),
        TASKLOOM_LOG_FORMAT="json",
        TASKLOOM_MAX_TASKS_PER_OWNER="1000000",
        TASKLOOM_SHUTDOWN_GRACE_S="5",
        FASTMCP_SHOW_SERVER_BANNER="false",
        FASTMCP_CHECK_FOR_UPDATES="off",
    )
    env.update(extra)
    return env


def sqlite_url(directory: Path, name: str = "taskloom.db") -> str:
    return f"sqlite:///{directory / name}"


# -- Taskloom worker processes ----------------------------------------------------------------


class Worker:
    """A `taskloom worker` subprocess; `ready` is set when it logs worker_ready."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        argv = [python(), "-m", "taskloom", "worker"]
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        self._reader = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        with self.log_path.open("wb") as log:
            while line := await self.proc.stderr.readline():
                log.write(line)
                if b"worker_ready" in line:
                    self.ready.set()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)


@contextlib.asynccontextmanager
async def workers(
    count: int,
    env: dict[str, str],
    logs: Path,
    *,
    ready_timeout: float = 60.0,
) -> AsyncIterator[list[Worker]]:
    started = [Worker(env, logs / f"worker-{i}.log") for i in range(count)]
    try:
        for w in started:
            await w.start()
        await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in started)), ready_timeout)
        yield started
    finally:
        await asyncio.gather(*(w.stop() for w in started), return_exceptions=True)


# -- seeding ------------------------------------------------------------------------------------

WAIT_0 = [{"id": "pause", "tool": "wait", "args": {"seconds": 0}}]


async def open_store(url: str) -> Any:
    from taskloom.store.sql import SqlStore as Store

    store = Store(url)
    await store.open()
    return store


async def seed_tasks(
    store: Any,
    count: int,
    *,
    trigger: Callable[[int], dict[str, Any] | None],
    next_fire_at: Callable[[int], datetime | None],
    steps: list[dict[str, Any]] | None = None,
    owner: str = "local",
) -> list[str]:
    """Insert `count` tasks with one Core executemany (setup speed), count them in the owner's
    number of tasks (as the store's own inserts do), then bump the revision so running
    processes rebuild their timers."""
    from sqlalchemy import insert, update

    from taskloom.domain.tasks import Task
    from taskloom.ids import new_id
    from taskloom.store.database import TASKS_REVISION, bump
    from taskloom.store.tables import OwnerTasksRow, TaskRow

    created = now() - timedelta(seconds=1)
    rows: list[dict[str, Any]] = []
    ids: list[str] = []
    for i in range(count):
        task = Task.model_validate(
            {
                "id": new_id("tsk", created),
                "name": f"bench task {i}",
                "steps": steps or WAIT_0,
                "trigger": trigger(i),
                "owner": owner,
                "timezone": "UTC",
                "created_at": created,
                "updated_at": created,
                "next_fire_at": next_fire_at(i),
            }
        )
        ids.append(task.id)
        rows.append(TaskRow.from_domain(task).model_dump())
    table: Any = TaskRow.__table__  # type: ignore[attr-defined]
    counts: Any = OwnerTasksRow.__table__  # type: ignore[attr-defined]
    async with store.write() as s:
        for start in range(0, len(rows), 5000):
            await s.exec(insert(table), params=rows[start : start + 5000])
        more = update(counts).where(counts.c.owner == owner).values(tasks=counts.c.tasks + count)
        if (await s.exec(more)).rowcount == 0:
            await s.exec(insert(counts).values(owner=owner, tasks=count))
        await bump(s, TASKS_REVISION)
    return ids


# -- databases ----------------------------------------------------------------------------------


async def pg_available() -> bool:
    try:
        import asyncpg

        conn = await asyncio.wait_for(asyncpg.connect(PG_ADMIN_URL), 5)
        await conn.close()
        return True
    except Exception:
        return False


@contextlib.asynccontextmanager
async def pg_database(prefix: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one benchmark, dropped afterwards."""
    import asyncpg

    name = f"{prefix}_{os.getpid()}_{int(time.time())}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        yield f"{base}/{name}"
    finally:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


async def fetch(url: str, sql: str, **params: Any) -> list[Any]:
    """Rows of one read-only query, through the drivers Taskloom uses."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from taskloom.store.dialects import async_url

    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def wait_for_count(
    url: str, sql: str, wanted: int, *, timeout_s: float, every: float = 0.05
) -> tuple[int, float]:
    """Poll a count query until it reaches `wanted` or `timeout_s` passes."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from taskloom.store.dialects import async_url

    engine = create_async_engine(async_url(url))
    deadline = time.perf_counter() + timeout_s
    count = 0
    try:
        async with engine.connect() as conn:
            while time.perf_counter() < deadline:
                count = int((await conn.execute(text(sql))).scalar() or 0)
                await conn.rollback()
                if count >= wanted:
                    break
                await asyncio.sleep(every)
    finally:
        await engine.dispose()
    return count, time.perf_counter()


FINISHED = "('succeeded','failed','cancelled','interrupted','skipped','missed')"


async def run_figures(url: str) -> dict[str, Any]:
    """Counts, duplicates and timing of the runs recorded in a benchmark database."""
    rows = await fetch(
        url,
        "SELECT task_id, fire_time, status, created_at, started_at, finished_at, lease_owner "
        "FROM runs",
    )
    per_fire: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r[0], str(r[1]))
        per_fire[key] = per_fire.get(key, 0) + 1
    duplicates = sum(n - 1 for n in per_fire.values() if n > 1)
    return {"rows": rows, "duplicates": duplicates}
