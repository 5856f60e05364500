"""Retention: how long run history is kept, and pruning it in small batches.

The policy (TASKLOOM_RETENTION_*): finished runs older than `days` go, failed and interrupted ones
only after `failed_days` (never sooner than the others), and each task's newest `keep_last`
finished runs always stay; 0 days means "keep forever". Queued and running runs are never
pruned. The scheduler calls `prune` every `interval_s`; each batch is one short transaction, and
the pruner yields between batches, so claims and final records of runs go on meanwhile.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from taskloom.clock import Clock
from taskloom.domain.storage import Cutoffs, Footprint, Prunable, Store

if TYPE_CHECKING:
    from taskloom.settings import Settings

log = structlog.get_logger(__name__)

# Between two batches the pruner steps aside this long, so a burst of claims waiting for the
# (SQLite: single) writer connection gets it first.
BATCH_PAUSE_S = 0.05


@dataclass(frozen=True)
class RetentionPolicy:
    days: int = 90
    keep_last: int = 20
    failed_days: int = 180
    batch: int = 500
    interval_s: float = 600.0

    @classmethod
    def from_settings(cls, settings: "Settings") -> "RetentionPolicy":
        return cls(
            days=settings.retention_days,
            keep_last=settings.retention_keep_last,
            failed_days=settings.retention_failed_days,
            batch=settings.retention_batch,
            interval_s=settings.retention_interval_s,
        )

    @property
    def keeps_forever(self) -> bool:
        return self.days == 0

    def cutoffs(self, now: datetime) -> Cutoffs:
        """Failed runs are kept at least as long as the others (0: forever, for them too)."""
        if self.days == 0:
            return Cutoffs(None, None, self.keep_last)
        failed = None if self.failed_days == 0 else max(self.failed_days, self.days)
        return Cutoffs(
            before=now - timedelta(days=self.days),
            failed_before=None if failed is None else now - timedelta(days=failed),
            keep_last=self.keep_last,
        )

    def describe(self) -> str:
        if self.keeps_forever:
            return "runs are kept forever (TASKLOOM_RETENTION_DAYS=0)"
        failed = "forever" if self.failed_days == 0 else f"{max(self.failed_days, self.days)} days"
        return (
            f"runs kept {self.days} days, failed runs {failed}, and at least the last "
            f"{self.keep_last} of each task"
        )


@dataclass(frozen=True)
class PruneReport:
    pruned: int
    per_task: list[Prunable]
    dry_run: bool


class Retention:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        policy: RetentionPolicy,
        *,
        pause_s: float = BATCH_PAUSE_S,
    ) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy
        self.pause_s = pause_s

    async def prune(self, *, dry_run: bool = False) -> PruneReport:
        """Remove (or, dry, only count) every run the policy lets go, task by task, in batches."""
        if self.policy.keeps_forever:
            return PruneReport(0, [], dry_run)
        cutoffs = self.policy.cutoffs(self.clock.now())
        total, per_task = 0, []
        for task_id in await self.store.tasks_with_runs():
            keep_from = await self.store.keep_from(task_id, cutoffs.keep_last)
            if dry_run:
                found = await self.store.prunable(task_id, cutoffs, keep_from)
                per_task += [found] if found.runs else []
                total += found.runs
            else:
                total += await self._prune_task(task_id, cutoffs, keep_from)
        if total and not dry_run:
            log.info("runs_pruned", runs=total, policy=self.policy.describe())
        return PruneReport(total, per_task, dry_run)

    async def _prune_task(self, task_id: str, cutoffs: Cutoffs, keep_from: str | None) -> int:
        pruned = 0
        while True:
            gone = await self.store.prune_batch(task_id, cutoffs, keep_from, self.policy.batch)
            pruned += gone
            if gone < self.policy.batch:
                return pruned
            await asyncio.sleep(self.pause_s)

    async def footprint(self) -> Footprint:
        return await self.store.footprint()

    async def vacuum(self) -> None:
        await self.store.vacuum()
