"""The SQL of the queue's order (`domain/priority.py`): a queued run's `created_at` in epoch
seconds less its task's priority times AGEING_S, earliest first, per dialect."""

from typing import Any

from sqlalchemy import Float, Integer, cast, func
from sqlmodel import col

from taskloom.domain.priority import AGEING_S, DEFAULT_PRIORITY
from taskloom.store.tables import RunRow, TaskRow


def queue_order(dialect: str) -> list[Any]:
    """ORDER BY terms for due queued runs (the query outer-joins their task)."""
    priority = func.coalesce(cast(TaskRow.spec["priority"].as_integer(), Integer), DEFAULT_PRIORITY)
    key = _epoch_s(col(RunRow.created_at), dialect) - cast(priority, Float) * AGEING_S
    return [key, col(RunRow.fire_time), col(RunRow.id)]


def _epoch_s(column: Any, dialect: str) -> Any:
    if dialect == "sqlite":  # stored as naive UTC text; julianday parses it
        return (func.julianday(column) - 2440587.5) * 86400.0
    return func.extract("epoch", column)
