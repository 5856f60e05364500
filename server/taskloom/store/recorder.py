"""Group commit of run records: the finished runs and progress snapshots of every run of this
process that asks in the same turn of the event loop are written in ONE write transaction.

Per run nothing changes: a record is written only while this process holds the run (status
`running` and `lease_owner` = us, checked under the write lock: BEGIN IMMEDIATE on SQLite, row
locks on PostgreSQL, taken tasks first, then runs, each in id order, as every transaction that
locks both does), the task's outcome fields move with it in the same transaction, and each
caller gets its own answer (recorded or not). A run about to execute asks first (`begin`):
only a run whose lease is ours and unexpired in the database starts, and its lease is renewed.
What changes is the cost: a burst of one-step runs paid two transactions and ~8 statements
each; a batch pays ~6 statements in all (Core, executemany), which is what lets one SQLite
writer record > 1,000 runs/s.
"""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskloom.domain.outcome import OUTCOME_FIELDS, Outcome, apply_run
from taskloom.domain.runs import Run, RunStatus
from taskloom.errors import is_outage
from taskloom.store.database import TASKS_REVISION, Database
from taskloom.store.records import paused_itself, record_left_behind
from taskloom.store.tables import CounterRow, RunRow, StepResultRow, TaskRow

log = structlog.get_logger(__name__)

MAX_BATCH = 500
RUNNING = RunStatus.RUNNING.value


@dataclass(eq=False)
class _Request:
    run: Run
    holder: str
    future: "asyncio.Future[bool]"
    kind: Literal["begin", "progress", "final"]
    outcome: Outcome | None = None
    follow_up: Run | None = None
    now: datetime | None = None  # begin: the lease must still be valid then
    until: datetime | None = None  # begin: the renewed lease


@dataclass(frozen=True)
class _Holder:
    lease_owner: str
    owner: str
    expires_at: datetime | None


class RunRecorder:
    """One per process (owned by `RunService`); batches whatever is pending, no added delay."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.dialect = db.dialect
        self._pending: list[_Request] = []
        self._writer: asyncio.Task[None] | None = None

    async def begin(self, run: Run, *, holder: str, now: datetime, until: datetime) -> bool:
        """Before a run executes a step: True (and its lease renewed to `until`) only if
        `holder` still holds it (`now` is kept for the record of when it asked); a run swept or
        cancelled meanwhile never starts."""
        return await self._submit(_Request(run, holder, _future(), "begin", now=now, until=until))

    async def save_progress(self, run: Run, *, holder: str) -> bool:
        """Write a running run's progress; False when `holder` no longer holds it."""
        return await self._submit(_Request(run, holder, _future(), "progress"))

    async def finish(
        self, run: Run, *, holder: str, outcome: Outcome, follow_up: Run | None = None
    ) -> bool:
        """Record a finished run, its effect on the task and its retry (`follow_up`), but only
        while `holder` still holds the run (a swept or cancelled run stays as others left it)."""
        request = _Request(run, holder, _future(), "final", outcome, follow_up)
        return await self._submit(request)

    async def _submit(self, request: _Request) -> bool:
        self._pending.append(request)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="taskloom-recorder")
        return await request.future

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # runs finishing in this turn of the loop join the batch
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            await self._record(batch)

    async def _record(self, batch: list[_Request]) -> None:
        try:
            written = await self._write(batch)
        except Exception as exc:
            if len(batch) > 1 and not is_outage(exc):  # one bad record must not sink others
                for request in batch:
                    await self._record([request])
                return
            for request in batch:
                _settle(request.future, exc)
            return
        for request in batch:
            _settle(request.future, id(request) in written)

    async def _write(self, batch: list[_Request]) -> set[int]:
        """One transaction; returns the ids of the requests whose run was still held."""
        finals = [r for r in batch if r.kind == "final"]
        async with self.db.transaction() as conn:
            states = await self._lock_tasks(conn, finals)  # tasks first, then runs
            holders = await self._holders(conn, batch)
            written = await self._write_begins(conn, holders, _of(batch, "begin"))
            written |= await self._write_progress(conn, holders, _of(batch, "progress"))
            written |= await self._write_finals(conn, holders, states, finals)
        return written

    async def _write_begins(
        self, conn: AsyncConnection, holders: dict[str, _Holder], requests: list[_Request]
    ) -> set[int]:
        held = [r for r in requests if _valid(holders.get(r.run.id), r)]
        if held:
            await conn.execute(
                _RENEW_HELD, [_held_key(r) | {"lease_expires_at": r.until} for r in held]
            )
        return {id(r) for r in held}

    async def _write_progress(
        self, conn: AsyncConnection, holders: dict[str, _Holder], requests: list[_Request]
    ) -> set[int]:
        held = [r for r in requests if _holder(holders, r.run.id) == r.holder]
        await _update_held(conn, [_held_key(r) | {"started_at": r.run.started_at} for r in held])
        await self._save_steps(conn, held)
        return {id(r) for r in held}

    async def _write_finals(
        self,
        conn: AsyncConnection,
        holders: dict[str, _Holder],
        states: dict[str, dict[str, Any]],
        requests: list[_Request],
    ) -> set[int]:
        if not requests:
            return set()
        unfinished = dict(holders)
        held: list[tuple[_Request, str]] = []
        for request in requests:
            holder = unfinished.pop(request.run.id, None)  # a run finishes once
            if holder is not None and holder.lease_owner == request.holder:
                held.append((request, holder.owner))
        await _update_held(conn, [_held_key(r) | _final_values(r.run) for r, _ in held])
        # As before batching: step results are written even for a run no longer held.
        await self._save_steps(conn, requests)
        await self._apply_outcomes(conn, states, [r for r, _ in held])
        await _insert_runs(conn, [(r.follow_up, owner) for r, owner in held if r.follow_up])
        return {id(r) for r, _ in held}

    async def _holders(self, conn: AsyncConnection, requests: list[_Request]) -> dict[str, _Holder]:
        """run id -> its holder, of the requested runs that are still running, locked until
        commit in id order (on SQLite the transaction's write lock covers it)."""
        ids = sorted({r.run.id for r in requests})
        query = (
            select(RUNS.c.id, RUNS.c.lease_owner, RUNS.c.owner, RUNS.c.lease_expires_at)
            .where(RUNS.c.id.in_(ids))
            .where(RUNS.c.status == RUNNING)
            .order_by(RUNS.c.id)
        )
        rows = (await conn.execute(self.dialect.locked(query))).all()
        # Unpacked, not row.<name>: a Core row's attribute lookup raises on its class first.
        return {
            run_id: _Holder(lease_owner or "", owner, _aware(expires_at))
            for run_id, lease_owner, owner, expires_at in rows
        }

    async def _save_steps(self, conn: AsyncConnection, requests: Iterable[_Request]) -> None:
        """Insert or update the step results of all the runs with one executemany."""
        rows = {
            (r.run.id, step.index): StepResultRow.values(r.run.id, step)
            for r in requests
            for step in r.run.steps
        }
        if not rows:
            return
        upsert = self.dialect.upsert(STEPS)
        changed = {c.name: upsert.excluded[c.name] for c in STEPS.c if not c.primary_key}
        statement = upsert.on_conflict_do_update(index_elements=STEP_KEY, set_=changed)
        await conn.execute(statement, list(rows.values()))

    async def _lock_tasks(
        self, conn: AsyncConnection, finals: list[_Request]
    ) -> dict[str, dict[str, Any]]:
        """The outcome fields of the finishing runs' tasks, locked in id order before any run."""
        if not finals:
            return {}
        ids = sorted({r.run.task_id for r in finals})
        query = (
            select(TASKS.c.id, *(TASKS.c[name] for name in OUTCOME_FIELDS))
            .where(TASKS.c.id.in_(ids))
            .order_by(TASKS.c.id)
        )
        rows = (await conn.execute(self.dialect.locked(query))).all()
        return {row[0]: dict(row._mapping) for row in rows}  # row[0]: its id

    async def _apply_outcomes(
        self, conn: AsyncConnection, states: dict[str, dict[str, Any]], held: list[_Request]
    ) -> None:
        """Fold each recorded run into its task (in finishing order), then write each task once."""
        moved = False
        touched: set[str] = set()
        for request in held:
            state = states.get(request.run.task_id)
            if state is not None and request.outcome is not None:
                was = state["status"]
                moved |= apply_run(state, request.run, request.outcome)
                touched.add(request.run.task_id)
                if paused_itself(was, state):
                    await record_left_behind(conn, request.run, state)
        params = [
            {**{k: v for k, v in states[task_id].items() if k != "id"}, "b_id": task_id}
            for task_id in sorted(touched)
        ]
        if params:
            await conn.execute(update(TASKS).where(TASKS.c.id == bindparam("b_id")), params)
        if moved:
            await _bump_revision(conn)


RUNS: Table = RunRow.__table__  # type: ignore[attr-defined]
STEPS: Table = StepResultRow.__table__  # type: ignore[attr-defined]
TASKS: Table = TaskRow.__table__  # type: ignore[attr-defined]
COUNTERS: Table = CounterRow.__table__  # type: ignore[attr-defined]
STEP_KEY = [c.name for c in STEPS.primary_key.columns]
_UPDATE_HELD = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("b_id"))
    .where(RUNS.c.status == RUNNING)
    .where(RUNS.c.lease_owner == bindparam("b_holder"))
)
_RENEW_HELD = _UPDATE_HELD


def _of(batch: list[_Request], kind: str) -> list[_Request]:
    return [r for r in batch if r.kind == kind]


def _holder(holders: dict[str, _Holder], run_id: str) -> str:
    found = holders.get(run_id)
    return found.lease_owner if found is not None else ""


def _valid(holder: _Holder | None, request: _Request) -> bool:
    """Still running under our lease. An expired lease is taken again: no process swept the run
    (a sweep ends it), and the sweep locks the same row, so it sees the renewed lease."""
    return holder is not None and holder.lease_owner == request.holder


def _aware(value: datetime | None) -> datetime | None:
    """Core rows bypass the ORM column type's conversion on SQLite (naive UTC there)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _future() -> "asyncio.Future[bool]":
    return asyncio.get_running_loop().create_future()


def _settle(future: "asyncio.Future[bool]", result: bool | BaseException) -> None:
    if future.done():  # its caller was cancelled; the record was written all the same
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _held_key(request: _Request) -> dict[str, Any]:
    return {"b_id": request.run.id, "b_holder": request.holder}


def _final_values(run: Run) -> dict[str, Any]:
    return {
        "status": run.status.value,
        "finished_at": run.finished_at,
        "duration_ms": run.duration_ms,
        "output": run.output,
        "summary": run.summary,
        "error": run.error,
        "lease_expires_at": None,
    }


async def _update_held(conn: AsyncConnection, params: list[dict[str, Any]]) -> None:
    """The holder check is repeated in the WHERE: the rows were selected under the same lock."""
    if params:
        await conn.execute(_UPDATE_HELD, params)


async def _insert_runs(conn: AsyncConnection, runs: list[tuple[Run | None, str]]) -> None:
    rows = [RunRow.values(run, owner) for run, owner in runs if run is not None]
    if rows:
        await conn.execute(insert(RUNS), rows)


async def _bump_revision(conn: AsyncConnection) -> None:
    name = COUNTERS.c.name == TASKS_REVISION
    bumped = await conn.execute(update(COUNTERS).where(name).values(value=COUNTERS.c.value + 1))
    if not bumped.rowcount:
        await conn.execute(insert(COUNTERS).values(name=TASKS_REVISION, value=1))
