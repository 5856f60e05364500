"""Migrations are append-only, and a database made by each earlier release upgrades to today's
schema with every row intact, on SQLite and on PostgreSQL."""

import asyncio
import hashlib
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from taskloom.domain.runs import RunCause, RunStatus
from taskloom.domain.tasks import TaskStatus
from taskloom.errors import Conflict
from taskloom.services import build_services
from taskloom.store.migrate import MIGRATIONS_DIR, schema_head, upgrade
from taskloom.store.sql import SqlStore
from taskloom.store.tables import TaskRow
from tests.conftest import make_settings
from tests.fixtures.taskloom_process import SERVE, server_env
from tests.store.factories import make_task
from tests.store.legacy import RELEASES, Release, load, rows

VERSIONS = MIGRATIONS_DIR / "versions"
CHECKSUMS = Path(__file__).parent / "migration_checksums.txt"
# Columns a later migration folded into another: task -> its status (0003).
DROPPED = {"tasks": {"enabled"}}
TABLES = {
    "tasks": "id",
    "runs": "id",
    "step_results": "run_id, step_index",
    "processes": "id",
    "counters": "name",
}


async def snapshot(store: SqlStore) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as the driver returns it."""
    async with store.transaction() as conn:
        return {
            table: [
                dict(row)
                for row in (await conn.execute(text(f"SELECT * FROM {table} ORDER BY {key}")))
                .mappings()
                .all()
            ]
            for table, key in TABLES.items()
        }


@pytest.fixture(params=RELEASES, ids=[r.name for r in RELEASES])
async def legacy(request: pytest.FixtureRequest, db_url: str) -> Release:
    """The test's database (SQLite file or PostgreSQL) restored from a release's dump."""
    release: Release = request.param
    await load(release, db_url)
    return release


async def test_every_row_survives_the_upgrade(legacy: Release, db_url: str) -> None:
    """Upgrading a release's database reaches the newest revision and keeps every row and value."""
    store = SqlStore(db_url)
    await store.open(migrate=False)
    try:
        assert await store.schema_revision() == "0001"
        before = await snapshot(store)
        await store.migrate()
        after = await snapshot(store)
        assert await store.schema_revision() == schema_head()
    finally:
        await store.close()
    assert {t: len(r) for t, r in after.items()} == {t: len(r) for t, r in before.items()}
    assert len(after["runs"]) == len(rows.runs(not_before=False))
    for table, old_rows in before.items():
        kept = [k for k in old_rows[0] if k not in DROPPED.get(table, set())] if old_rows else []
        for old, new in zip(old_rows, after[table], strict=True):
            assert {k: new[k] for k in kept} == {k: old[k] for k in kept}, table
            assert not DROPPED.get(table, set()) & set(new), table
    if not legacy.has_not_before:
        assert all(run["not_before"] is None for run in after["runs"])


async def test_a_task_not_enabled_is_paused_after_the_upgrade(legacy: Release, db_url: str) -> None:
    """A task stored as not enabled is paused once `enabled` is folded into its status, even a
    row whose status still said active."""
    store = SqlStore(db_url)
    await store.open(migrate=False)
    try:
        async with store.transaction() as conn:
            await conn.execute(
                text("UPDATE tasks SET enabled = :no, status = 'active' WHERE id = :id"),
                {"no": False, "id": rows.TASK_EVENT},
            )
        await store.migrate()
        after = {row["id"]: row["status"] for row in (await snapshot(store))["tasks"]}
    finally:
        await store.close()
    expected = {
        row["id"]: "paused" if not row["enabled"] else row["status"] for row in rows.tasks()
    }
    assert after == {**expected, rows.TASK_EVENT: "paused"}


async def test_the_app_works_on_an_upgraded_database(
    legacy: Release, db_url: str, tmp_path: Path
) -> None:
    """After the upgrade the services read every task and run and a task runs to the end."""
    settings = make_settings(tmp_path, database_url=db_url, scheduler=False)
    services = build_services(settings, role="test")
    await services.start(schedule=False)
    try:
        tasks = (await services.store.list_tasks(owner=None)).items
        assert sorted(t.id for t in tasks) == sorted(r["id"] for r in rows.tasks())
        for run in rows.runs(not_before=False):
            stored = await services.store.get_run(run["id"])
            assert stored is not None
            assert stored.status == run["status"]
        task = await services.tasks.get(rows.TASK_EVENT, owner=None)
        run = services.runs.new_run(task, RunCause.MANUAL)
        await services.store.start_run(run, owner=task.owner)
        finished = await services.runs.execute(task, run)
        assert finished.status == RunStatus.SUCCEEDED
        assert (await services.store.get_run(run.id)) is not None
    finally:
        await services.stop(grace_s=0)


def released_checksums() -> dict[str, str]:
    lines = [line.split() for line in CHECKSUMS.read_text().splitlines()]
    return {name: digest for digest, name in (line for line in lines if line and line[0] != "#")}


def test_released_migrations_are_never_edited() -> None:
    """Every released migration file is byte for byte what was released; new ones only append."""
    released = released_checksums()
    for name, digest in released.items():
        path = VERSIONS / name
        assert path.is_file(), f"released migration {name} was removed; add a new one instead"
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        assert actual == digest, f"released migration {name} was edited; add a new one instead"
    newest = max(name[:4] for name in released)
    for path in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"):
        assert path.name in released or path.name[:4] > newest, (
            f"{path.name} is numbered below a released migration; number it after {newest}"
        )


def test_migrations_form_one_line() -> None:
    """Each migration revises the one numbered before it, so there is one head and no branch."""
    files = sorted(VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))
    previous = None
    for path in files:
        source = path.read_text()
        revision = re.search(r'^revision: str = "(\d{4})"', source, re.M)
        down = re.search(r"^down_revision: str \| None = (None|\"\d{4}\")", source, re.M)
        assert revision, f"{path.name} does not declare its revision"
        assert down, f"{path.name} does not declare its down_revision"
        assert revision.group(1) == path.name[:4]
        assert down.group(1).strip('"') == (previous or "None"), path.name
        previous = revision.group(1)


async def test_a_fresh_database_matches_the_tables(sql_store: SqlStore) -> None:
    """Running every migration on an empty database gives exactly the schema the code expects."""

    def differences(conn: Connection) -> list[Any]:
        return compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)

    async with sql_store.transaction() as conn:
        assert await conn.run_sync(differences) == []


def test_db_upgrade_moves_a_first_release_database(tmp_path: Path) -> None:
    """`taskloom db upgrade` on the first release's SQLite file reports and reaches the newest
    revision."""
    db = tmp_path / "first.db"
    asyncio.run(load(RELEASES[0], f"sqlite:///{db}"))
    env = server_env(db)
    done = subprocess.run(
        [*SERVE[:-1], "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert f"revision {schema_head()}" in done.stdout
    with sqlite3.connect(db) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    assert "not_before" in columns


async def test_name_keys_are_filled_and_older_names_keep_theirs(db_url: str) -> None:
    """0007 fills every task's name key in Python (non-ASCII letters folded too); where an owner
    already had names differing only in case (made before the rule, or on SQLite whose lower()
    did not fold 'Ä'), the oldest task gets the key, each later one keeps its row and gets a
    marked key. Every task then still works: found by name (the oldest), saved, renamed."""
    names = {
        1: ("alice", "Report"),
        2: ("alice", "report"),
        3: ("alice", "REPORT"),
        4: ("alice", "Ärger"),
        5: ("alice", "ärger"),
        6: ("alice", "Other"),
        7: ("bob", "report"),
    }
    tasks = {n: make_task(n, owner, name=name) for n, (owner, name) in names.items()}
    store = SqlStore(db_url)
    await store.open(migrate=False)
    try:
        async with store.transaction() as conn:
            await conn.run_sync(lambda c: upgrade(c, "0006"))
            for n in (3, 7, 5, 1, 6, 2, 4):  # not in age order: the migration sorts
                values = TaskRow.values(tasks[n])
                del values["name_key"]
                await conn.execute(insert(TaskRow.__table__), values)  # type: ignore[attr-defined]
        await store.migrate()
        async with store.transaction() as conn:
            found = await conn.execute(text("SELECT id, name_key FROM tasks"))
            keys = {task_id: key for task_id, key in found.all()}
        ids = {n: task.id for n, task in tasks.items()}
        assert keys == {
            ids[1]: "report",
            ids[2]: f"report #DUPLICATE {ids[2]}",
            ids[3]: f"report #DUPLICATE {ids[3]}",
            ids[4]: "ärger",
            ids[5]: f"ärger #DUPLICATE {ids[5]}",
            ids[6]: "other",
            ids[7]: "report",
        }
        assert await store.task_named("alice", "REPORT") == ids[1]
        assert await store.task_named("alice", "ÄRGER") == ids[4]
        assert await store.task_named("bob", "Report") == ids[7]
        later = tasks[2].model_copy(update={"status": TaskStatus.PAUSED, "revision": 2})
        await store.save_task(later, expected_revision=1)  # its marked key stays
        assert await store.get_task(ids[2]) == later
        renamed = later.model_copy(update={"name": "Report (old)", "revision": 3})
        await store.save_task(renamed, expected_revision=2)
        assert await store.task_named("alice", "report (OLD)") == ids[2]
        assert len((await store.list_tasks(owner=None)).items) == len(names)
    finally:
        await store.close()


async def test_owner_task_numbers_are_counted_from_the_tasks(db_url: str) -> None:
    """0008 counts each owner's tasks into owner_tasks; the cap then holds from that number: an
    owner at it is refused, one below it is not."""
    store = SqlStore(db_url)
    await store.open(migrate=False)
    try:
        async with store.transaction() as conn:
            await conn.run_sync(lambda c: upgrade(c, "0007"))
            for n, owner in enumerate(["alice", "alice", "alice", "bob"]):
                await conn.execute(insert(TaskRow.__table__), TaskRow.values(make_task(n, owner)))  # type: ignore[attr-defined]
        await store.migrate()
        async with store.transaction() as conn:
            found = await conn.execute(text("SELECT owner, tasks FROM owner_tasks"))
            assert dict(found.all()) == {"alice": 3, "bob": 1}
        with pytest.raises(Conflict, match="already has 3 tasks"):
            await store.add_task(make_task(4, "alice"), max_per_owner=3)
        await store.add_task(make_task(5, "bob"), max_per_owner=3)
    finally:
        await store.close()
