"""Databases as earlier releases left them: one SQL dump per release and store, made by
`python -m tests.store.legacy.make_fixtures` from the migration each release shipped."""

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Release:
    name: str
    commit: str  # where this schema was made; the migration file is read from it
    has_not_before: bool

    def dump(self, dialect: str) -> Path:
        return HERE / f"{self.name}.{dialect}.sql"


RELEASES = [
    # The first release: 0001 as first committed.
    Release("0001_original", "aab55562af312da817bd34cf52b6805dd0064418", has_not_before=False),
    # 0.1: 0001 edited in place to add runs.not_before, still stamped 0001.
    Release("0001_edited", "b480ede81b067e4d7d3fcf90af6a0b1facc8ee72", has_not_before=True),
]


async def load(release: Release, url: str) -> None:
    """Restores `release`'s dump into the empty database at `url` (a SQLite file or PostgreSQL)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with sqlite3.connect(str(parsed.database)) as conn:
            conn.executescript(release.dump("sqlite").read_text())
        return
    conn = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(False))
    try:
        await conn.execute(release.dump("postgresql").read_text())
    finally:
        await conn.close()
