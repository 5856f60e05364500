"""The schema's migrations: where they live, the newest revision, and Alembic driven
programmatically. Alembic itself is imported only when the schema needs to move, so it stays
off the warm start path."""

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def schema_head() -> str:
    """The newest migration's revision id (files are named `NNNN_*.py`, revision `NNNN`)."""
    names = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    return names[-1][:4]


def config(connection: Connection | None = None) -> "Config":
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Connection, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(config(connection), revision)


def autogenerate(connection: Connection, message: str, rev_id: str) -> None:
    """Developer helper: write a new migration from the difference to the tables."""
    from alembic import command

    command.revision(config(connection), message=message, autogenerate=True, rev_id=rev_id)
