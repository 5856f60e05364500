"""Priority: a burst of queued runs of mixed priority on one worker that starts one run at a
time. The order of starts and the longest wait per priority, against the same burst with every
task at the default priority (first in, first out), measured in the same run."""

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.common import Config, Row, sqlite_url
from taskloom.domain.runs import RunCause, RunStatus
from taskloom.domain.tasks import TaskSpec
from taskloom.scheduling.scheduler import Timing
from taskloom.services import build_services
from taskloom.settings import Settings

PRIORITIES = (1, 5, 10)
STEP = {"id": "pause", "tool": "wait", "args": {"seconds": 0.02}}


async def _burst(workdir: Path, priorities: list[int]) -> list[tuple[int, float]]:
    """(priority, seconds waited from queueing to start) per run, in the order runs started."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    settings = Settings(data_dir=workdir, database_url=sqlite_url(workdir), shutdown_grace_s=0)
    services = build_services(settings, timing=Timing(poll_s=0.05, max_concurrent_runs=1))
    await services.start(schedule=False)
    try:
        runs = []
        for n, priority in enumerate(priorities):
            spec = TaskSpec(name=f"burst {n}", steps=[STEP], priority=priority)
            task = (await services.tasks.create(spec, owner="local")).task
            run = services.runs.new_run(task, RunCause.MANUAL, status=RunStatus.QUEUED)
            await services.store.add_run(run, owner="local")
            runs.append((priority, run.id))
        assert services.scheduler is not None
        await services.scheduler.start()
        return await _started(services, runs)
    finally:
        await services.stop(grace_s=0)


async def _started(services: Any, runs: list[tuple[int, str]]) -> list[tuple[int, float]]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        stored = [await services.store.get_run(run_id) for _, run_id in runs]
        if all(r is not None and r.status.finished for r in stored):
            waits = [
                (priority, r.started_at, (r.started_at - r.created_at).total_seconds())
                for (priority, _), r in zip(runs, stored, strict=True)
            ]
            return [(p, w) for p, _, w in sorted(waits, key=lambda x: x[1])]
        await asyncio.sleep(0.1)
    raise TimeoutError("the burst did not finish in 300 s")


def _max_wait(order: list[tuple[int, float]], priority: int) -> float:
    return max(w for p, w in order if p == priority)


def _mean_position(order: list[tuple[int, float]], priority: int) -> float:
    places = [i for i, (p, _) in enumerate(order) if p == priority]
    return sum(places) / len(places)


async def priority_burst(cfg: Config) -> list[Row]:
    size = 30 if cfg.quick else 90
    mixed = [PRIORITIES[n % len(PRIORITIES)] for n in range(size)]
    ordered = await _burst(cfg.workdir / "priority", mixed)
    fifo = await _burst(cfg.workdir / "priority-fifo", [5] * size)
    # In the FIFO baseline, the runs that had priority p in the mixed burst sit at the same
    # positions of the queue (every third run): their waits are the baseline.
    fifo_by_slot = [(mixed[i], w) for i, (_, w) in enumerate(sorted(fifo, key=lambda x: x[1]))]
    rows = []
    for p in PRIORITIES:
        value, base = _max_wait(ordered, p), _max_wait(fifo_by_slot, p)
        rows.append(
            Row("priority", f"max wait, priority {p} ({size} queued, 1 at a time)", value, "s",
                "same burst, all priority 5 (FIFO)", base, value / base if base else None)
        )  # fmt: skip
    first_ten = [p for p, _ in ordered[:10]]
    rows.append(
        Row("priority", "mean start position of priority-10 runs", _mean_position(ordered, 10),
            "", "FIFO", _mean_position(fifo_by_slot, 10), target="lower than FIFO",
            met=_mean_position(ordered, 10) < _mean_position(fifo_by_slot, 10))
    )  # fmt: skip
    rows.append(
        Row("priority", "priority-10 runs among the first 10 starts",
            first_ten.count(10), "runs", target="10 (fewer when ageing promotes older runs)")
    )  # fmt: skip
    return rows
