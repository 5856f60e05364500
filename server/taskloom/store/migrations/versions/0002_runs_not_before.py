"""runs.not_before, for databases made by the first release

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 16:40:00

0.1 edited 0001 in place to add this column, so a database stamped 0001 may or may not have it:
the first release's databases lack it, 0.1's have it. The column is added only where missing.
From here on migrations are append-only (tests/store/test_migrations.py keeps them so).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _has_not_before() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("runs")
    return any(column["name"] == "not_before" for column in columns)


def upgrade() -> None:
    if _has_not_before():
        return
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("not_before")
