"""The SQL of the queue's order (`domain/priority.py`): a queued run's `created_at` in epoch
seconds less its task's priority times AGEING_S, earliest first."""

from typing import Any

from sqlalchemy import Float, Integer, cast, func
from sqlmodel import col

from taskloom.domain.priority import AGEING_S, DEFAULT_PRIORITY
from taskloom.store.dialects import Dialect
from taskloom.store.tables import RunRow, TaskRow


def queue_order(dialect: Dialect) -> list[Any]:
    """ORDER BY terms for due queued runs (the query outer-joins their task)."""
    priority = func.coalesce(cast(TaskRow.spec["priority"].as_integer(), Integer), DEFAULT_PRIORITY)
    key = dialect.epoch_s(col(RunRow.created_at)) - cast(priority, Float) * AGEING_S
    return [key, col(RunRow.fire_time), col(RunRow.id)]
