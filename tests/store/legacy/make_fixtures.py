"""Writes the schema fixtures: for each release, its own 0001 migration (read from git) applied to
a fresh SQLite file and a fresh PostgreSQL database, the rows of `rows.py` inserted, then dumped
(`sqlite3` iterdump; `pg_dump`). Run from the repository root with PostgreSQL reachable:

    python -m tests.store.legacy.make_fixtures
"""

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Table, insert
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from taskloom.store.dialects import async_url
from taskloom.store.tables import CounterRow, ProcessRow, RunRow, StepResultRow, TaskRow
from tests.conftest import pg_database
from tests.store.legacy import RELEASES, Release, rows

MIGRATIONS = "server/taskloom/store/migrations"


def _git_show(commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


@contextmanager
def _migrations_of(release: Release) -> Iterator[Path]:
    """The release's env.py and versions/ in a temporary script location."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "versions").mkdir()
        (root / "env.py").write_text(_git_show(release.commit, f"{MIGRATIONS}/env.py"))
        name = "versions/0001_initial_schema.py"
        (root / name).write_text(_git_show(release.commit, f"{MIGRATIONS}/{name}"))
        yield root


def _table_rows(release: Release) -> list[tuple[Table, list[dict[str, Any]]]]:
    def table(row: Any) -> Table:
        return row.__table__  # type: ignore[no-any-return]

    return [
        (table(TaskRow), rows.tasks()),
        (table(RunRow), rows.runs(not_before=release.has_not_before)),
        (table(StepResultRow), rows.step_results()),
        (table(ProcessRow), rows.processes()),
        (table(CounterRow), rows.counters()),
    ]


async def _build(release: Release, url: str, script_location: Path) -> None:
    def migrate_and_fill(conn: Connection) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(script_location))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        for table, values in _table_rows(release):
            conn.execute(insert(table), values)

    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(migrate_and_fill)
    finally:
        await engine.dispose()


def _dump_sqlite(path: Path, target: Path) -> None:
    import sqlite3

    with sqlite3.connect(path) as conn:
        target.write_text("\n".join(conn.iterdump()) + "\n")


def _dump_postgresql(url: str, target: Path) -> None:
    plain = make_url(url).set(drivername="postgresql").render_as_string(False)
    flags = ["--no-owner", "--no-privileges", "--no-comments", "--inserts"]
    dump = subprocess.run(["pg_dump", *flags, plain], check=True, capture_output=True, text=True)
    # psql meta-commands (`\restrict` with a random key) and version banners: neither is SQL.
    skip = ("-- Dumped", "\\")
    lines = [line for line in dump.stdout.splitlines() if not line.startswith(skip)]
    target.write_text("\n".join(lines) + "\n")


def make(release: Release) -> None:
    with _migrations_of(release) as script_location, tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "release.db"
        asyncio.run(_build(release, f"sqlite:///{db}", script_location))
        _dump_sqlite(db, release.dump("sqlite"))
        for url in pg_database():
            asyncio.run(_build(release, url, script_location))
            _dump_postgresql(url, release.dump("postgresql"))


if __name__ == "__main__":
    for release in RELEASES:
        make(release)
        names = [release.dump(dialect).name for dialect in ("sqlite", "postgresql")]
        sys.stderr.write(f"wrote {', '.join(names)}\n")
