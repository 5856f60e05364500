"""Alembic, driven programmatically (imported only when the schema needs to move)."""

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from taskloom.store.sql import MIGRATIONS_DIR


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Connection, revision: str = "head") -> None:
    command.upgrade(config(connection), revision)


def autogenerate(connection: Connection, message: str, rev_id: str) -> None:
    """Developer helper: write a new migration from the difference to the tables."""
    command.revision(config(connection), message=message, autogenerate=True, rev_id=rev_id)
