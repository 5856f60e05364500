"""Chaos on SQLite and PostgreSQL: workers SIGKILLed and SIGTERMed at random, the database paused,
and still every fire runs once or says why not, none runs twice, nothing is left running."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosWorkers, Plan, run_chaos
from tests.fixtures.api_server import ApiServer, serve_api
from tests.scheduling.conftest import Db

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(240)]
SEED = 20261130
PLAN = Plan(seed=SEED, tasks=3, workers=3, disruptions=8, gap_s=(0.6, 1.6), pause_s=3.0)


@pytest.fixture
def receiver() -> Iterator[ApiServer]:
    """A loopback HTTP server of its own: it counts every execution of the tasks' step."""
    with serve_api() as server:
        yield server


@pytest.fixture
def chaos_workers(db_url: str, tmp_path: Path) -> Iterator[ChaosWorkers]:
    made = ChaosWorkers(db_url, tmp_path, grace_s=PLAN.grace_s)
    yield made
    made.cleanup()


async def test_every_fire_runs_once_or_says_why(
    db: Db, chaos_workers: ChaosWorkers, receiver: ApiServer
) -> None:
    """Under kills, stops and a database pause, each fire has one execution or a recorded
    reason, no fire executes twice, and no run is left queued or running."""
    tally = await run_chaos(db, chaos_workers, receiver, PLAN)
    sys.stderr.write(tally.details() + "\n")
    assert tally.fires > 0
    assert tally.problems == [], tally.details()
