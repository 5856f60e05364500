"""The chaos script shared by tests/chaos (short) and bench/chaos.py (100 kills).

Several `taskloom worker` processes run tasks that fire every second; each run's one step POSTs
(task, fire time, attempt, run id) to a loopback receiver, which counts executions (not rows).
Meanwhile a seeded RNG SIGKILLs and SIGTERMs workers (each replaced at once) and the database is
paused once in a while (SQLite: an exclusive lock held; PostgreSQL: the workers' connections
terminated, then the tables locked). At the end the tasks are paused, the workers stopped
gracefully, one worker sweeps what the killed ones held, and every fire of every task's grid is
checked: one execution, or a run row that says why not.
"""

import asyncio
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url

from taskloom.domain.runs import Run, RunStatus
from tests.fixtures.api_server import ApiServer
from tests.scheduling.conftest import LEASE_S, Db, Workers

EVERY = timedelta(seconds=1)
# A run that did not execute must say why in one of these statuses.
REASONS = {
    RunStatus.MISSED,
    RunStatus.SKIPPED,
    RunStatus.INTERRUPTED,
    RunStatus.CANCELLED,
    RunStatus.FAILED,
}
# Fires this close to the moment a task was paused may legitimately never have been claimed.
EDGE = timedelta(seconds=1.5)


@dataclass(frozen=True)
class Plan:
    seed: int
    tasks: int = 4
    workers: int = 3
    disruptions: int = 20  # SIGKILLs + SIGTERMs
    kills: int | None = None  # if set: go on until this many SIGKILLs (bench/chaos.py)
    budget_s: float | None = None  # if set: stop disrupting after this long, whatever the count
    kill_share: float = 0.7
    gap_s: tuple[float, float] = (0.5, 1.5)  # between disruptions
    pauses: int = 1
    pause_s: float = 3.0
    grace_s: float = 3.0


@dataclass
class Tally:
    """What happened and what the checks found; `problems` lists every violation found."""

    seed: int
    store: str
    fires: int = 0
    executions: int = 0
    duplicates: int = 0
    reruns_after_kill: int = 0
    missing: int = 0
    recorded_at_pause: int = 0  # missed rows the final pause wrote for fires nobody had claimed
    unexpected: int = 0
    stuck: int = 0
    kills: int = 0
    sigterms: int = 0
    pauses: int = 0
    stop_hangs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    log_events: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def counts(self) -> str:
        keys = ["fires", "executions", "duplicates", "reruns_after_kill", "missing",
                "recorded_at_pause", "unexpected", "stuck", "kills", "sigterms", "pauses",
                "stop_hangs"]  # fmt: skip
        shown = " ".join(f"{k}={getattr(self, k)}" for k in keys)
        return f"{self.store} seed={self.seed}: {shown} statuses={dict(self.statuses)}"

    def details(self) -> str:
        """The counts, the workers' warning/error log events, then the first problems."""
        noisy = {k: n for k, n in self.log_events.most_common() if n}
        return "\n".join([self.counts(), f"worker log events: {noisy}", *self.problems[:30]])


def task_fields(receiver: ApiServer) -> dict[str, Any]:
    """A task that fires every second and reports each execution to the receiver."""
    body = {"task": "{{ task.id }}", "fire": "{{ run.fire_time }}",
            "attempt": "{{ run.attempt }}", "run": "{{ run.id }}"}  # fmt: skip
    args = {"url": receiver.url("/hook/chaos"), "method": "POST", "json": body}
    step = {"id": "report", "tool": "http_request", "args": args}
    retry = {"attempts": 2, "backoff_s": 0.5}
    return {"trigger": {"every": "1s"}, "steps": [step], "retry": retry}


@dataclass
class ChaosWorkers(Workers):
    """Workers that may call the loopback receiver, and remember whom they SIGKILLed."""

    killed_pids: set[int] = field(default_factory=set)

    def env(self) -> dict[str, str]:
        return {**super().env(), "TASKLOOM_HTTP_ALLOW_HOSTS": "127.0.0.1"}

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]


async def run_chaos(
    db: Db, workers: ChaosWorkers, receiver: ApiServer, plan: Plan, report: Any = None
) -> Tally:
    """Runs the plan and returns the tally; `report(text)` gets progress lines if given."""
    say = report or (lambda _text: None)
    tally = Tally(plan.seed, db.services.store.dialect)
    rng = random.Random(plan.seed)
    workers.start(plan.workers)
    await _until(lambda: _alive(db, plan.workers), "the workers to start")
    tasks = [await db.create(name=f"chaos {i}", **task_fields(receiver)) for i in range(plan.tasks)]
    ran = {t.id for t in tasks}
    await _until(lambda: _ran(receiver, ran), "every task to run once")
    pauses_at = {round(plan.disruptions * i / (plan.pauses + 1)) for i in range(1, plan.pauses + 1)}
    n, started = 0, time.monotonic()
    while n < plan.disruptions or (plan.kills is not None and tally.kills < plan.kills):
        if plan.budget_s is not None and time.monotonic() - started > plan.budget_s:
            say(f"{tally.store}: time budget spent after {tally.kills} kills")
            break
        n += 1
        await asyncio.sleep(rng.uniform(*plan.gap_s))  # pacing the chaos, not waiting for state
        if n in pauses_at:
            await pause_database(db, plan.pause_s)
            tally.pauses += 1
        try:
            await disrupt(db, workers, rng, plan, tally)
        except AssertionError as exc:  # no worker came up: the long form keeps what it has
            if plan.budget_s is None:
                raise
            tally.problems.append(f"chaos ended early: {exc}")
            break
        say(f"{tally.store}: {n} disruptions, {tally.kills} kills")
    paused = {t.id: await _pause_task(db, t.id) for t in tasks}
    await _stop_all(workers, tally)
    await _sweep(db, workers, tally)
    await tally_runs(db, receiver, paused, {t.id: t.created_at for t in tasks}, workers, tally)
    tally.log_events = worker_log_events(workers)
    return tally


def worker_log_events(workers: Workers) -> Counter[str]:
    """How often each warning or error event appears in the workers' JSON logs."""
    import json

    found: Counter[str] = Counter()
    for line in filter(None, map(str.strip, workers.log_text().splitlines())):
        try:
            record = json.loads(line)
        except ValueError:
            found["(not JSON) " + line[:80]] += 1
            continue
        if isinstance(record, dict) and record.get("level") in ("warning", "error", "critical"):
            found[str(record.get("event"))[:80]] += 1
    return found


async def _until(probe: Any, what: str, timeout_s: float = 300) -> None:
    """Chaos starts once the workers are up and every task has run: a worker takes seconds to
    start on a busy machine, and killing only ones still starting would test nothing."""
    deadline = time.monotonic() + timeout_s
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.2)


async def _alive(db: Db, count: int) -> bool:
    return len(await _retrying(db.processes)) >= count


async def _ran(receiver: ApiServer, task_ids: set[str]) -> bool:
    return {post["task"] for post in list(receiver.hooks["chaos"])} >= task_ids


async def disrupt(
    db: Db, workers: ChaosWorkers, rng: random.Random, plan: Plan, tally: Tally
) -> None:
    """SIGKILL or SIGTERM one running worker (a random one that has started scheduling) and
    start its replacement. Waiting for a started victim keeps the chaos meaningful on a busy
    machine, where a worker takes seconds to start."""
    victim = rng.choice(await _ready(db, workers))
    if rng.random() < plan.kill_share:
        victim.send_signal(signal.SIGKILL)
        workers.killed_pids.add(victim.pid)
        tally.kills += 1
    else:
        victim.send_signal(signal.SIGTERM)
        tally.sigterms += 1
    workers.start(1)


async def _ready(db: Db, workers: ChaosWorkers, timeout_s: float = 300) -> list[Any]:
    """The live workers that registered their process row, once there is at least one."""
    deadline = time.monotonic() + timeout_s
    while True:
        pids = {p.pid for p in await _retrying(db.processes)}
        ready = sorted((p for p in workers.alive() if p.pid in pids), key=lambda p: p.pid)
        if ready:
            return ready
        if time.monotonic() > deadline:
            raise AssertionError(f"no worker started scheduling within {timeout_s:g} s")
        await asyncio.sleep(0.2)


async def pause_database(db: Db, seconds: float) -> None:
    """Makes the database unusable for `seconds`, without waiting for it to end."""
    url = db.services.store.url
    sqlite = db.services.store.dialect == "sqlite"
    target = _hold_sqlite_lock if sqlite else _hold_postgresql_lock
    threading.Thread(target=target, args=(url, seconds), daemon=True).start()


def _hold_sqlite_lock(url: str, seconds: float) -> None:
    conn = sqlite3.connect(str(make_url(url).database), timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)  # the outage itself
        conn.execute("COMMIT")
    finally:
        conn.close()


def _hold_postgresql_lock(url: str, seconds: float) -> None:
    asyncio.run(_postgresql_outage(url, seconds))


async def _postgresql_outage(url: str, seconds: float) -> None:
    import asyncpg

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(plain)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        async with conn.transaction():
            await conn.execute("LOCK TABLE tasks, runs IN ACCESS EXCLUSIVE MODE")
            await asyncio.sleep(seconds)  # the outage itself
    finally:
        await conn.close()


@dataclass(frozen=True)
class Paused:
    """When a task's pause took effect, as the product records it (`at`, the task's
    updated_at: taken before its transaction), and when the call had returned (`done`, after
    the commit). Fires up to `at` are claimed or recorded by the pause itself; a fire due
    between the two may still have been claimed, and run, by a worker whose claim took the
    task's lock first (the call may take seconds on a loaded machine); none after `done`."""

    at: datetime
    done: datetime


async def _pause_task(db: Db, task_id: str) -> Paused:
    await _retrying(lambda: db.services.tasks.set_enabled(task_id, False, owner=None))
    done = datetime.now(UTC)
    task = await _retrying(lambda: db.task(task_id))
    return Paused(task.updated_at, done)


async def _stop_all(workers: ChaosWorkers, tally: Tally) -> None:
    """SIGTERM every live worker; one that outlives its grace by 20 s is a stop hang."""
    alive = workers.alive()
    for proc in alive:
        proc.send_signal(signal.SIGTERM)
    for proc in alive:
        try:
            await asyncio.to_thread(proc.wait, workers.grace_s + 20)
        except subprocess.TimeoutExpired:
            tally.stop_hangs += 1
            tally.problems.append(f"worker {proc.pid} did not stop within its grace + 20 s")
            proc.kill()
            workers.killed_pids.add(proc.pid)


async def _sweep(db: Db, workers: ChaosWorkers, tally: Tally) -> None:
    """One worker reclaims what killed ones held (leases expire after LEASE_S), then stops."""
    workers.start(1)
    deadline = time.monotonic() + 6 * LEASE_S + 30
    while time.monotonic() < deadline:
        runs = await _retrying(db.all_runs)
        if not [r for r in runs if not r.status.finished]:
            break
        await asyncio.sleep(0.2)
    await _stop_all(workers, tally)


async def _retrying(make: Any, attempts: int = 10) -> Any:
    """The writer's own connections may have been terminated by a PostgreSQL outage."""
    from taskloom.errors import StoreUnavailable

    for attempt in range(attempts):
        try:
            return await make()
        except StoreUnavailable:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def tally_runs(
    db: Db,
    receiver: ApiServer,
    paused: dict[str, Paused],
    created_at: dict[str, datetime],
    workers: ChaosWorkers,
    tally: Tally,
) -> None:
    runs: list[Run] = await _retrying(db.all_runs)
    posts = list(receiver.hooks["chaos"])
    tally.executions = len(posts)
    tally.statuses = Counter(r.status.value for r in runs)
    tally.recorded_at_pause = sum("when the task was paused" in (r.error or "") for r in runs)
    stuck = [r.id for r in runs if not r.status.finished]
    tally.stuck = len(stuck)
    if stuck:
        tally.problems.append(f"{len(stuck)} runs still queued/running: {stuck[:5]}")
    by_fire_runs: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        if run.fire_time is not None:
            by_fire_runs[(run.task_id, run.fire_time.isoformat())].append(run)
    by_fire_posts: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for post in posts:
        by_fire_posts[(post["task"], post["fire"])].append(post)
    grid = _grids(created_at, paused)
    _spread_summaries(runs, grid, by_fire_runs)
    off_grid = [key for key in by_fire_runs if key not in grid and key[0] in created_at]
    late = [k for k in off_grid if k[1] > paused[k[0]].at.isoformat()]
    if len(off_grid) > len(late):
        tally.problems.append(f"run rows for instants off the grid: {sorted(off_grid)[:5]}")
    _check_fires(grid, by_fire_runs, by_fire_posts, {r.id: r for r in runs}, workers, tally)


def _spread_summaries(
    runs: list[Run], grid: dict[tuple[str, str], bool], by_fire: dict[tuple[str, str], list[Run]]
) -> None:
    """A fire older than the catch-up bound is recorded by one summary row whose output names
    the range (`missed_fires`: first, last); it stands for each grid fire in that range."""
    for run in runs:
        summary = run.output.get("missed_fires") if isinstance(run.output, dict) else None
        if not summary:
            continue
        first, last = (datetime.fromisoformat(summary[k]) for k in ("first", "last"))
        for task_id, fire in grid:
            if task_id == run.task_id and first <= datetime.fromisoformat(fire) <= last:
                by_fire[(task_id, fire)].append(run)


def _grids(
    created_at: dict[str, datetime], paused: dict[str, Paused]
) -> dict[tuple[str, str], bool]:
    """Every grid instant of every task up to the return of its pause: True where it must have
    been handled (not within EDGE of the pause, nor after it took effect)."""
    grid: dict[tuple[str, str], bool] = {}
    for task_id, start in created_at.items():
        fire = start + EVERY
        while fire <= paused[task_id].done:
            grid[(task_id, fire.isoformat())] = fire <= paused[task_id].at - EDGE
            fire += EVERY
    return grid


def _check_fires(
    grid: dict[tuple[str, str], bool],
    runs: dict[tuple[str, str], list[Run]],
    posts: dict[tuple[str, str], list[dict[str, Any]]],
    run_by_id: dict[str, Run],
    workers: ChaosWorkers,
    tally: Tally,
) -> None:
    tally.fires = sum(grid.values())
    for key in posts.keys() - grid.keys():
        tally.unexpected += len(posts[key])
        tally.problems.append(f"executed {key}, which is no fire of the task's grid")
    for key, required in grid.items():
        executed = sorted(posts.get(key, []), key=lambda p: int(p["attempt"]))
        if executed:
            _check_executions(key, executed, run_by_id, workers.killed_pids, tally)
        elif required and not _has_reason(runs.get(key, [])):
            tally.missing += 1
            shown = [(r.status.value, r.error) for r in runs.get(key, [])]
            tally.problems.append(f"fire {key} neither executed nor has a reason: {shown}")


def _has_reason(runs: list[Run]) -> bool:
    return any(r.status in REASONS and r.error for r in runs)


def _check_executions(
    key: tuple[str, str],
    executed: list[dict[str, Any]],
    run_by_id: dict[str, Run],
    killed: set[int],
    tally: Tally,
) -> None:
    """More than one execution of a fire is a duplicate, unless each earlier one was cut short
    by SIGKILL (its run interrupted, its holder one of the processes we killed): a step that
    ran just before its process died is re-run by the retry, which no scheduler can tell."""
    attempts = Counter(p["attempt"] for p in executed)
    for earlier in executed[:-1]:
        run = run_by_id.get(earlier["run"])
        if attempts[earlier["attempt"]] == 1 and run is not None and _killed_holder(run, killed):
            tally.reruns_after_kill += 1
        else:
            tally.duplicates += 1
            status = run.status.value if run else "no row"
            tally.problems.append(f"fire {key} executed again after attempt "
                                  f"{earlier['attempt']} ({status})")  # fmt: skip


def _killed_holder(run: Run, killed: set[int]) -> bool:
    if run.status != RunStatus.INTERRUPTED or run.lease_owner is None:
        return False
    return int(run.lease_owner.split(":")[-2]) in killed
