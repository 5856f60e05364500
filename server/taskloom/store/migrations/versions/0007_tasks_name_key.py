"""tasks.name_key: the lower-cased name, unique per owner

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 23:00:00

The check that an owner's task names differ ignoring case compared `lower(name)` in SQL, which
read every task of the owner (15-60 ms at 10,000 tasks) and did not hold between two creates
racing each other. Now each task stores `domain.tasks.name_key(name)` (Python's `str.lower`,
the same for every database, also for non-ASCII letters that SQLite's lower() left alone), and
a unique index (owner, name_key) answers the lookup and keeps the rule.

Back-fill: every row's key is computed here in Python. Databases made before the rule (or on
SQLite, where lower() did not fold non-ASCII letters) may hold two tasks of one owner whose
names differ only in case: the oldest (created_at, then id) gets the key; each later one keeps
its name, its runs and everything else, and gets the key with a marker and its id
(`'report #DUPLICATE tsk_...'`), which no name's key can equal (a lower-cased name holds no
upper-case ASCII letter). Such a task is not found by `task_named`; renaming it gives it a
plain key. Nothing is refused and no row is lost.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from taskloom.domain.tasks import name_key

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_CHARS = 500
BATCH = 1000
TASKS = sa.table(
    "tasks",
    sa.column("id", sa.String()),
    sa.column("owner", sa.String()),
    sa.column("name", sa.String()),
    sa.column("name_key", sa.String()),
    sa.column("created_at", sa.DateTime()),
)


def duplicate_key(key: str, task_id: str) -> str:
    """The key of a task whose name an older task of its owner already has (ignoring case)."""
    return f"{key} #DUPLICATE {task_id}"


def keys(rows: Sequence[tuple[str, str, str]]) -> list[dict[str, str]]:
    """Each row's key, oldest first per owner; `rows` are (id, owner, name) in that order."""
    seen: set[tuple[str, str]] = set()
    out = []
    for task_id, owner, name in rows:
        key = name_key(name)
        if (owner, key) in seen:
            key = duplicate_key(key, task_id)
        seen.add((owner, key))
        out.append({"b_id": task_id, "b_key": key})
    return out


def upgrade() -> None:
    op.add_column("tasks", sa.Column("name_key", sa.String(length=KEY_CHARS), nullable=True))
    bind = op.get_bind()
    query = sa.select(TASKS.c.id, TASKS.c.owner, TASKS.c.name).order_by(
        TASKS.c.owner, TASKS.c.created_at, TASKS.c.id
    )
    values = keys([(task_id, owner, name) for task_id, owner, name in bind.execute(query)])
    fill = TASKS.update().where(TASKS.c.id == sa.bindparam("b_id"))
    for start in range(0, len(values), BATCH):
        bind.execute(fill.values(name_key=sa.bindparam("b_key")), values[start : start + BATCH])
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.alter_column("name_key", existing_type=sa.String(length=KEY_CHARS), nullable=False)
    op.create_index("uq_tasks_owner_name_key", "tasks", ["owner", "name_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_tasks_owner_name_key", table_name="tasks")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("name_key")
