"""Chaos, the long form of tests/chaos: the same script until 100 workers were SIGKILLed (with
SIGTERMs and database pauses between), on SQLite and PostgreSQL; prints the counts.

    python -m bench --only chaos          # both stores, as a table row per count
    python -m bench.chaos --store sqlite --kills 100 --seed 7
"""

import argparse
import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.chaos.harness import ChaosWorkers, Plan, Tally, run_chaos
from tests.conftest import make_settings
from tests.fixtures.api_server import ApiServer, serve_api
from tests.scheduling.conftest import Db

from bench.common import Config, Row, pg_database
from taskloom.services import build_services

KILLS = 100
SEED = 20261130
COUNTS = ["fires", "executions", "duplicates", "reruns_after_kill", "missing", "stuck", "kills",
          "sigterms", "pauses", "stop_hangs"]  # fmt: skip


def plan(kills: int, seed: int, budget_s: float | None = None) -> Plan:
    # ~1.3 disruptions per kill (70 % are SIGKILLs); a database pause every ~35 of them.
    disruptions = round(kills / 0.7)
    return Plan(seed=seed, tasks=5, workers=3, disruptions=disruptions, kills=kills,
                gap_s=(0.5, 1.5), pauses=max(1, disruptions // 35), budget_s=budget_s)  # fmt: skip


@asynccontextmanager
async def database(store: str, folder: Path) -> AsyncIterator[str]:
    if store == "sqlite":
        yield f"sqlite:///{folder / 'chaos.db'}"
    else:
        async with pg_database("taskloom_chaos") as url:
            yield url


@asynccontextmanager
async def writer(url: str, folder: Path) -> AsyncIterator[Db]:
    settings = make_settings(folder, database_url=url, scheduler=False)
    services = build_services(settings, role="bench")
    await services.start(schedule=False)
    try:
        yield Db(services)
    finally:
        await services.stop(grace_s=0)


async def run_store(
    store: str, folder: Path, kills: int, seed: int, budget_s: float | None = None
) -> Tally:
    chosen = plan(kills, seed, budget_s)
    async with database(store, folder) as url:
        with serve_api() as receiver:
            return await _run(url, folder, chosen, receiver)


async def _run(url: str, folder: Path, chosen: Plan, receiver: ApiServer) -> Tally:
    workers = ChaosWorkers(url, folder, grace_s=chosen.grace_s)
    try:
        async with writer(url, folder) as db:
            return await run_chaos(db, workers, receiver, chosen, _progress)
    finally:
        workers.cleanup()


def _progress(text: str) -> None:
    print(f"   {text}", file=sys.stderr, flush=True)


async def chaos(cfg: Config) -> list[Row]:
    """Both stores; 10 kills with --quick."""
    rows: list[Row] = []
    for store in ("sqlite", "postgresql"):
        (cfg.workdir / f"chaos-{store}").mkdir(parents=True, exist_ok=True)
        tally = await run_store(store, cfg.workdir / f"chaos-{store}", 10 if cfg.quick else KILLS,
                                SEED)  # fmt: skip
        print(tally.details(), file=sys.stderr, flush=True)
        rows += [Row("chaos", f"{store} {name}", getattr(tally, name), "") for name in COUNTS]
    return rows


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--kills", type=int, default=KILLS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--workdir", type=Path, help="for the databases and worker logs (default: a new temp dir)"
    )
    parser.add_argument("--budget-s", type=float, help="stop disrupting after this many seconds")
    args = parser.parse_args()
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="taskloom-chaos-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"databases and worker logs: {args.workdir}", flush=True)
    tally = asyncio.run(run_store(args.store, args.workdir, args.kills, args.seed, args.budget_s))
    print(tally.details())


if __name__ == "__main__":
    cli()
