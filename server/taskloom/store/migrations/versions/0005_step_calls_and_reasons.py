"""step_results.calls (an agent step's tool calls) and step_results.reason (why it was skipped)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 20:00:00

Both columns are nullable and new, so every existing row keeps its values (null in both).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("step_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("calls", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("step_results", schema=None) as batch_op:
        batch_op.drop_column("reason")
        batch_op.drop_column("calls")
