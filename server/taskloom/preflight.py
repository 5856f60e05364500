"""Settings checked against the machine before anything starts: the database can be opened and
written, the files named exist. Each problem is one `BadSetting` with its true cause (a SQLite
file that is damaged or read-only is not "unreachable")."""

import asyncio
from pathlib import Path

from taskloom import dburl
from taskloom.errors import TaskloomError
from taskloom.settings import BadSetting, Settings
from taskloom.store.reachability import postgresql_problem, sqlite_problem


def check(settings: Settings) -> None:
    """Raises `BadSetting` for the first setting Taskloom could not start with."""
    name, value = _database_setting(settings)
    url = dburl.parse(settings.resolved_database_url)
    if url.backend == "sqlite":
        problem = sqlite_problem(url.database)
    else:
        problem = asyncio.run(postgresql_problem(settings.resolved_database_url))
    if problem:
        raise BadSetting(name, value, problem)
    _check_mcp_config(settings.mcp_config)
    if settings.secrets_file is not None and settings.secrets_file.is_dir():
        raise BadSetting("TASKLOOM_SECRETS_FILE", str(settings.secrets_file),
                         "is a folder; point it at a file of NAME=value lines")  # fmt: skip


def _database_setting(settings: Settings) -> tuple[str, str]:
    if settings.database_url:
        shown = dburl.parse(settings.database_url).shown()
        return "TASKLOOM_DATABASE_URL", shown
    return "TASKLOOM_DATA_DIR", str(settings.data_dir)


def _check_mcp_config(path: Path | None) -> None:
    if path is None:
        return
    from taskloom.upstream import _read_servers  # parses without logging or starting servers

    try:
        _read_servers(path)
    except TaskloomError as exc:
        raise BadSetting("TASKLOOM_MCP_CONFIG", str(path), exc.message) from None
