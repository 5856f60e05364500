"""Real `taskloom worker` processes on one database, a writer that creates tasks in-process (with
no scheduler of its own), and `wait_until`, which polls the database instead of sleeping.

For tests that must not depend on timing, `pair` gives two processes' services on one database
with a frozen clock and no loops: a test drives their claim, launch and sweep steps itself.

Downtime is simulated without waiting for it: a task is created while no worker runs, then its
`next_fire_at` is moved into the past directly in the store (`Db.move_next_fire`), exactly as if
the processes had been down since then.
"""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from taskloom.clock import FrozenClock, SystemClock
from taskloom.domain.runs import Run
from taskloom.domain.storage import Claimed
from taskloom.domain.tasks import Task, TaskSpec
from taskloom.scheduling.scheduler import Scheduler
from taskloom.services import Services, build_services
from taskloom.settings import Settings
from taskloom.store.tables import ProcessRow, RunRow, TaskRow
from tests.conftest import make_settings
from tests.fixtures.api_server import ApiServer

T = TypeVar("T")
LEASE_S = 3
WORKER = [sys.executable, "-m", "taskloom", "worker"]


async def wait_until(
    probe: Callable[[], Awaitable[T]], timeout_s: float, *, what: str = "the condition"
) -> T:
    """The first truthy value of `probe` (a database query), polled every 100 ms; fails the
    test after `timeout_s` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass
class Workers:
    """`taskloom worker` subprocesses on `url`; every one left running is killed at teardown."""

    url: str
    logs: Path
    grace_s: float = 5
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("TASKLOOM_", "FASTMCP_"))}
        return {
            **keep,
            "TASKLOOM_DATABASE_URL": self.url,
            "TASKLOOM_LEASE_S": str(LEASE_S),
            "TASKLOOM_SHUTDOWN_GRACE_S": str(self.grace_s),
            "TASKLOOM_LOG_FORMAT": "json",
            "TASKLOOM_CONFIG_FILE": str(self.logs / "no-config.toml"),
            "TASKLOOM_DATA_DIR": str(self.logs / "data"),
            "FASTMCP_SHOW_SERVER_BANNER": "false",
            "FASTMCP_CHECK_FOR_UPDATES": "off",
        }

    def start(self, count: int = 1) -> list[subprocess.Popen[bytes]]:
        started = []
        for _ in range(count):
            log = (self.logs / f"worker-{len(self.procs)}.log").open("wb")
            proc = subprocess.Popen(WORKER, env=self.env(), stdout=log, stderr=log)
            log.close()
            self.procs.append(proc)
            started.append(proc)
        return started

    def stop(self, *procs: subprocess.Popen[bytes]) -> list[int]:
        """SIGTERM (graceful drain), then the exit codes."""
        chosen = procs or tuple(self.procs)
        for proc in chosen:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        return [proc.wait(timeout=self.grace_s + 20) for proc in chosen]

    def kill(self, pid: int) -> None:
        proc = next(p for p in self.procs if p.pid == pid)
        proc.kill()
        proc.wait(timeout=10)

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    def log_text(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.logs.glob("worker-*.log")))


@dataclass
class Db:
    """The writer's services (no scheduler) and the queries the tests check."""

    services: Services
    created: int = 0

    async def create(self, **fields: Any) -> Task:
        """A new task, named apart from the others (names are unique per owner) unless given."""
        self.created += 1
        named = {"name": f"t{self.created}", "steps": [step(0)], **fields}
        spec = TaskSpec.model_validate(named)
        answer = await self.services.tasks.create(spec, owner="local")
        return answer.task

    async def runs(self, task_id: str) -> list[Run]:
        async with self.services.store.read() as s:
            query = select(RunRow).where(RunRow.task_id == task_id).order_by(col(RunRow.id))
            return [row.to_domain() for row in (await s.exec(query)).all()]

    async def all_runs(self) -> list[Run]:
        async with self.services.store.read() as s:
            return [row.to_domain() for row in (await s.exec(select(RunRow))).all()]

    async def task(self, task_id: str) -> Task:
        return await self.services.tasks.get(task_id, owner=None)

    async def move_next_fire(self, task_id: str, at: datetime) -> None:
        """Pretend every process was down since `at`: the task's next fire is in the past."""
        async with self.services.store.write() as s:
            await s.exec(update(TaskRow).where(col(TaskRow.id) == task_id).values(next_fire_at=at))

    async def processes(self) -> list[ProcessRow]:
        async with self.services.store.read() as s:
            return list((await s.exec(select(ProcessRow))).all())

    async def pid_holding(self, run_id: str) -> int | None:
        run = await self.services.store.get_run(run_id)
        if run is None or run.lease_owner is None:
            return None
        return int(run.lease_owner.split(":")[-2])

    def now(self) -> datetime:
        return SystemClock().now()


def step(seconds: float | str) -> dict[str, Any]:
    return {"id": "pause", "tool": "wait", "args": {"seconds": seconds}}


def ago(seconds: float) -> datetime:
    return SystemClock().now() - timedelta(seconds=seconds)


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes on the test's database (SQLite file or PostgreSQL), killed at teardown."""
    made = Workers(db_url, tmp_path)
    yield made
    made.cleanup()


@pytest.fixture
async def db(db_url: str, tmp_path: Path) -> AsyncIterator[Db]:
    """The writer: this process's services on the same database, with no scheduler."""
    settings = make_settings(tmp_path, database_url=db_url, scheduler=False)
    services = build_services(settings, role="test")
    await services.start(schedule=False)
    yield Db(services)
    await services.stop(grace_s=0)


# -- two processes driven step by step, on a frozen clock ----------------------------------

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
async def pair(
    db_url: str, tmp_path: Path, clock: FrozenClock
) -> AsyncIterator[tuple[Services, Services]]:
    """Processes A and B on one database (SQLite file or PostgreSQL), store open, no loops."""
    settings = make_settings(
        tmp_path, database_url=db_url, lease_s=LEASE_S, http_allow_hosts="127.0.0.1"
    )
    async with two_processes(settings, clock) as both:
        yield both


@asynccontextmanager
async def two_processes(
    settings: Settings, clock: FrozenClock
) -> AsyncIterator[tuple[Services, Services]]:
    """Services A and B on `settings`' database, store open, no scheduler loops running."""
    both = [build_services(settings, clock, role=name) for name in ("a", "b")]
    for services in both:
        await services.start(schedule=False)
    yield both[0], both[1]
    for services in both:
        await services.stop(grace_s=0)


@dataclass(frozen=True)
class Gate:
    """A loopback endpoint that holds each request until the test opens it: a step that stays in
    progress for exactly as long as the test wants, whatever the machine's speed."""

    url: str
    entered: Callable[[], int]  # how many requests reached it
    open: Callable[[], None]


@pytest.fixture
def gate(api: ApiServer) -> Iterator[Gate]:
    """A closed gate of its own; opened at teardown so no request stays held."""
    key = uuid.uuid4().hex
    opened = api.gates[key]  # made here, before any request can race to make it
    yield Gate(api.url(f"/gate/{key}"), lambda: api.calls[key], opened.set)
    opened.set()


@pytest.fixture
def counted(api: ApiServer) -> tuple[str, Callable[[], int]]:
    """A step that counts its executions on the loopback API, and the count."""
    key = uuid.uuid4().hex
    return api.url(f"/count/{key}"), lambda: api.calls[key]


async def hourly(services: Services, url: str, **fields: object) -> Task:
    """An hourly task that hits `url`; each is named apart (names are unique per owner)."""
    spec = TaskSpec.model_validate(
        {
            "name": f"counted {uuid.uuid4().hex[:8]}",
            "trigger": {"every": "1h", "start_at": (T0 + timedelta(hours=1)).isoformat()},
            "steps": [{"id": "hit", "tool": "http_request", "args": {"url": url}}],
            **fields,
        }
    )
    return (await services.tasks.create(spec, owner="local")).task


def scheduler(services: Services) -> Scheduler:
    assert services.scheduler is not None
    return services.scheduler


async def claim_due(services: Services, task: Task) -> Claimed:
    assert task.next_fire_at is not None
    (claimed,) = await scheduler(services)._claim_batch({task.id: task.next_fire_at})
    return claimed


async def drain(services: Services) -> None:
    await asyncio.gather(*services.runs.inflight.values())


async def runs_of(services: Services, task: Task) -> list[Run]:
    page = await services.store.list_runs(owner=None, task_id=task.id, limit=10)
    return sorted(page.items, key=lambda r: (r.attempt, r.id))
