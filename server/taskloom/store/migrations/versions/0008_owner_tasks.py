"""owner_tasks: how many tasks each owner has, for the per-owner cap

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 02:00:00

create_task checked TASKLOOM_MAX_TASKS_PER_OWNER by counting the owner's tasks in its write
transaction: one index walk over every task of the owner (0.6 ms at 10,000 tasks, the largest
part of a create). Now one row per owner holds the number, moved in the transaction of every
task insert and delete, so the check reads (and locks, on PostgreSQL) that one row.

Back-fill: each owner's row is counted here from `tasks`; an owner with no task has no row (the
first create makes it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "owner_tasks",
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("tasks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("owner"),
    )
    op.execute(
        "INSERT INTO owner_tasks (owner, tasks) SELECT owner, count(*) FROM tasks GROUP BY owner"
    )


def downgrade() -> None:
    op.drop_table("owner_tasks")
