"""task_revisions: every change of a task, who made it, when, the diff and the definition after

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 20:15:00

A new table: existing rows are untouched; tasks made before it have no revisions until changed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_revisions",
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("principal", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("diff", sa.JSON(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("task_id", "revision"),
    )


def downgrade() -> None:
    op.drop_table("task_revisions")
