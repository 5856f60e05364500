"""Restarting the workers never fires a one-shot task twice."""

from datetime import timedelta

import pytest

from tests.scheduling.conftest import Db, Workers, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


async def test_restart_after_a_one_shot_fire_does_not_refire_it(db: Db, workers: Workers) -> None:
    """A worker restarted right after an 'at' task fired does not fire it again."""
    workers.start(1)
    at = db.now() + timedelta(seconds=2)
    once = await db.create(trigger={"at": at.isoformat()})
    await wait_until(lambda: db.runs(once.id), 100, what="the one-shot fire")
    assert workers.stop() == [0]
    workers.start(1)
    ticker = await db.create(trigger={"every": "1s"})

    async def ticked_twice() -> bool:
        return len(await db.runs(ticker.id)) >= 2

    await wait_until(ticked_twice, 100, what="the restarted worker to fire")
    assert [r.fire_time for r in await db.runs(once.id)] == [at]
    assert (await db.task(once.id)).status.value == "finished"
