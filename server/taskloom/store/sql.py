"""`SqlStore`: the `Store` protocol (`taskloom.domain.storage`) over SQLite or PostgreSQL.

A facade: each query lives in the module of its concern (`records`, `claims`, `recorder`,
`admission`, `stats`), each dialect's SQL in `dialects`, and the translation of driver errors in
`database`. Built by `app.py` alone; everything above the store sees only the protocol.
"""

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from taskloom.domain.outcome import Outcome
from taskloom.domain.revisions import TaskRevision
from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.storage import (
    ClaimResult,
    Cutoffs,
    Figures,
    FireContext,
    Footprint,
    Gauges,
    MakeRun,
    Page,
    ProcessInfo,
    Prunable,
    Quotas,
    RunPoint,
    Store,
    Unclaimed,
)
from taskloom.domain.tasks import Task
from taskloom.store import stats
from taskloom.store.admission import Admission
from taskloom.store.claims import Claims
from taskloom.store.database import Database
from taskloom.store.notes import RunNotes
from taskloom.store.recorder import RunRecorder
from taskloom.store.records import Records
from taskloom.store.retention import RetentionStore

__all__ = ["SqlStore"]


class SqlStore:
    def __init__(self, url: str, *, keep_revisions: int = 100) -> None:
        self.db = Database(url)
        self.url = self.db.url
        self.dialect = self.db.dialect.name  # "sqlite" or "postgresql"
        self.records = Records(self.db, keep_revisions)
        self.claims = Claims(self.db)
        self.recorder = RunRecorder(self.db)  # one per process: it batches what is pending
        self.admission = Admission(self.db)
        self.retention = RetentionStore(self.db)
        self.notes = RunNotes(self.db)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        await self.db.open(migrate=migrate)

    async def close(self) -> None:
        await self.db.close()

    async def migrate(self) -> None:
        await self.db.migrate()

    async def schema_revision(self) -> str | None:
        return await self.db.schema_revision()

    # Raw transactions for tests, benchmarks and migrations' tooling; services never see them.
    def read(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self.db.read()

    def write(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self.db.write()

    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self.db.transaction()

    # -- tasks -------------------------------------------------------------------------------

    async def add_task(
        self, task: Task, *, max_per_owner: int, revision: TaskRevision | None = None
    ) -> None:
        await self.records.add_task(task, max_per_owner=max_per_owner, revision=revision)

    async def get_task(self, task_id: str, owner: str | None = None) -> Task | None:
        return await self.records.get_task(task_id, owner)

    async def task_named(self, owner: str, name: str) -> str | None:
        return await self.records.task_named(owner, name)

    async def list_tasks(
        self,
        *,
        owner: str | None,
        status: str | None = None,
        name_contains: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Task]:
        return await self.records.list_tasks(
            owner=owner, status=status, name_contains=name_contains, limit=limit, cursor=cursor
        )

    async def save_task(
        self,
        task: Task,
        *,
        expected_revision: int | None = None,
        unclaimed: Unclaimed = None,
        revision: TaskRevision | None = None,
    ) -> Task:
        return await self.records.save_task(
            task, expected_revision=expected_revision, unclaimed=unclaimed, revision=revision
        )

    async def delete_task(
        self, task_id: str, *, delete_runs: bool, revision: TaskRevision | None = None
    ) -> int:
        return await self.records.delete_task(task_id, delete_runs=delete_runs, revision=revision)

    async def tasks_revision(self) -> int:
        return await self.records.tasks_revision()

    def made_here(self, after: int, upto: int) -> bool:
        return self.records.made_here(after, upto)

    # -- runs --------------------------------------------------------------------------------

    async def add_run(self, run: Run, *, owner: str) -> None:
        await self.records.add_run(run, owner=owner)

    async def start_run(self, run: Run, *, owner: str) -> None:
        await self.records.start_run(run, owner=owner)

    async def get_run(self, run_id: str, owner: str | None = None) -> Run | None:
        return await self.records.get_run(run_id, owner)

    async def list_runs(
        self,
        *,
        owner: str | None,
        task_id: str | None = None,
        statuses: Sequence[RunStatus] = (),
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[Run]:
        return await self.records.list_runs(
            owner=owner, task_id=task_id, statuses=statuses, limit=limit, cursor=cursor
        )

    async def update_run_status(
        self, run_id: str, status: RunStatus, *, when: datetime, error: str | None = None
    ) -> bool:
        return await self.records.update_run_status(run_id, status, when=when, error=error)

    async def last_finished_run(self, task_id: str, *, before: str) -> Run | None:
        return await self.records.last_finished_run(task_id, before=before)

    # -- recording the runs this process holds -----------------------------------------------

    async def begin_run(self, run: Run, *, holder: str, now: datetime, until: datetime) -> bool:
        return await self.recorder.begin(run, holder=holder, now=now, until=until)

    async def save_progress(self, run: Run, *, holder: str) -> bool:
        return await self.recorder.save_progress(run, holder=holder)

    async def finish_run(
        self, run: Run, *, holder: str, outcome: Outcome, follow_up: Run | None = None
    ) -> bool:
        return await self.recorder.finish(run, holder=holder, outcome=outcome, follow_up=follow_up)

    # -- admission ---------------------------------------------------------------------------

    async def admit_manual(
        self, task_id: str, owner: str | None, now: datetime, quotas: Quotas, make: MakeRun
    ) -> tuple[Task, Run]:
        return await self.admission.admit_manual(task_id, owner, now, quotas, make)

    async def admit_event(
        self, name: str, owner: str | None, now: datetime, quotas: Quotas, make: MakeRun
    ) -> list[tuple[Task, Run]]:
        return await self.admission.admit_event(name, owner, now, quotas, make)

    # -- scheduling --------------------------------------------------------------------------

    async def scheduled(self) -> list[tuple[str, datetime]]:
        return await self.claims.scheduled()

    async def claim_fires(
        self, due: dict[str, datetime], context: FireContext
    ) -> dict[str, ClaimResult]:
        return await self.claims.claim_fires(due, context)

    async def claim_queued(
        self, holder: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[tuple[Task, Run]]:
        return await self.claims.claim_queued(holder, now, lease_until, limit)

    async def renew_leases(self, holder: str, run_ids: Sequence[str], until: datetime) -> set[str]:
        return await self.claims.renew_leases(holder, run_ids, until)

    async def sweep_expired(self, now: datetime) -> list[Run]:
        return await self.claims.sweep_expired(now)

    # -- processes and figures ---------------------------------------------------------------

    async def heartbeat(self, info: ProcessInfo) -> None:
        await self.claims.heartbeat(info)

    async def forget_process(self, process_id: str) -> None:
        await self.claims.forget_process(process_id)

    async def forget_dead(self, before: datetime) -> list[str]:
        return await self.claims.forget_dead(before)

    async def processes(self, alive_since: datetime) -> list[ProcessInfo]:
        return await self.claims.processes(alive_since)

    async def figures(self, now: datetime, *, owner: str | None, top: int = 20) -> Figures:
        return await stats.figures(self.db, now, owner=owner, top=top)

    async def recent_runs(
        self, task_ids: list[str], *, per_task: int, owner: str | None
    ) -> dict[str, list[RunPoint]]:
        return await stats.recent_runs(self.db, task_ids, per_task=per_task, owner=owner)

    async def recent_starts(self, *, owner: str | None, limit: int) -> list[RunPoint]:
        return await stats.recent_starts(self.db, owner=owner, limit=limit)

    async def gauges(self, now: datetime, *, owner: str | None = None) -> Gauges:
        return await stats.gauges(self.db, now, owner=owner)

    async def next_fires(self, *, owner: str | None, limit: int) -> list[tuple[str, str, datetime]]:
        return await stats.next_fires(self.db, owner=owner, limit=limit)

    # -- retention and notes on runs ---------------------------------------------------------

    async def tasks_with_runs(self) -> list[str]:
        return await self.retention.tasks_with_runs()

    async def keep_from(self, task_id: str, keep_last: int) -> str | None:
        return await self.retention.keep_from(task_id, keep_last)

    async def prune_batch(
        self, task_id: str, cutoffs: Cutoffs, keep_from: str | None, batch: int
    ) -> int:
        return await self.retention.prune_batch(task_id, cutoffs, keep_from, batch)

    async def prunable(self, task_id: str, cutoffs: Cutoffs, keep_from: str | None) -> Prunable:
        return await self.retention.prunable(task_id, cutoffs, keep_from)

    async def footprint(self) -> Footprint:
        return await self.retention.footprint()

    async def vacuum(self) -> None:
        await self.retention.vacuum()

    async def note_on_run(self, run_id: str, note: str) -> bool:
        return await self.notes.add(run_id, note)


def _implements(store: SqlStore) -> Store:
    """Never called: mypy checks here that SqlStore keeps the whole protocol."""
    return store
