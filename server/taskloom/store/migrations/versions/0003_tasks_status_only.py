"""tasks.enabled dropped: a task's state is its status alone

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 20:10:00

`enabled` and `status` said the same thing twice (paused = not enabled). Before the column goes,
a row that says "not enabled" but not "paused" becomes paused, so no task starts firing because
of the upgrade. `enabled` stays an input of create_task/update_task (mapped to the status).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TASKS = sa.table("tasks", sa.column("enabled", sa.Boolean()), sa.column("status", sa.String()))


def upgrade() -> None:
    op.execute(
        TASKS.update()
        .where(TASKS.c.enabled == sa.false())
        .where(TASKS.c.status == "active")
        .values(status="paused")
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("enabled")


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.execute(TASKS.update().where(TASKS.c.status == "paused").values(enabled=False))
