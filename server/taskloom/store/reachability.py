"""Why the configured database cannot be used: the SQLite file or the PostgreSQL server, each
problem named by its true cause (a damaged or read-only file is not "unreachable"). Used by the
start-up checks (`taskloom.preflight`) and by the store when a connection fails."""

import asyncio
import os
from pathlib import Path

SQLITE_HEADER = b"SQLite format 3\x00"
PG_CONNECT_TIMEOUT_S = 10.0


def sqlite_problem(database: str | None) -> str | None:
    """Why Taskloom cannot open and write the SQLite file `database`, or None."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        return (f"{folder} is a file, not a folder, so the database cannot be created under "
                "it; point the setting at a path inside a folder")  # fmt: skip
    if path.is_dir():
        return f"{path} is a folder; name a file, e.g. {path / 'taskloom.db'}"
    if path.exists():
        return _file_problem(path)
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is read-only for this user; make it writable or choose another"
    return None


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _file_problem(path: Path) -> str | None:
    if not os.access(path, os.R_OK):
        return f"{path} cannot be read by this user; fix its permissions or choose another file"
    if not os.access(path, os.W_OK):
        return (f"{path} is read-only for this user (Taskloom writes its runs there); make it "
                "writable (chmod u+rw) or point the setting at another file")  # fmt: skip
    with path.open("rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        return (f"{path} is not a SQLite database (damaged, or another kind of file); move it "
                "aside and restore a backup, or point the setting at a new file")  # fmt: skip
    if not os.access(path.parent, os.W_OK | os.X_OK) and not _wal_exists(path):
        return (f"the folder {path.parent} is read-only for this user, and SQLite creates its "
                "-wal and -shm files beside the database; make the folder writable")  # fmt: skip
    return None


def _wal_exists(path: Path) -> bool:
    return all(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm"))


async def postgresql_problem(url: str) -> str | None:
    """Why the PostgreSQL server at `url` refuses us, or None once a connection opened."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        conn = await asyncio.wait_for(asyncpg.connect(plain), PG_CONNECT_TIMEOUT_S)
    except asyncpg.InvalidCatalogNameError:
        return f"database {make_url(url).database!r} does not exist; create it (createdb) first"
    except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError) as exc:
        return f"PostgreSQL refused the login ({exc}); fix the user or password in the URL"
    except (OSError, TimeoutError, asyncpg.PostgresError, ValueError) as exc:
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"cannot connect ({cause}); start PostgreSQL there or fix the host, port or database"
    await conn.close()
    return None
