"""Alembic environment: always handed a live connection by `taskloom.store.sql` (or the CLI)."""

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import taskloom.store.tables  # noqa: F401 - registers the tables on SQLModel.metadata

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `taskloom db upgrade`, which supplies a connection")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
