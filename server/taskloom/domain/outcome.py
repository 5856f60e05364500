"""How a finished run changes its task: run_count, the last_* fields, consecutive failures, and
the pause/finish rules. Pure functions over the task's stored values, so the single-run path
(`Store.apply_outcome`) and the batched recorder compute exactly the same thing."""

from collections.abc import Mapping
from typing import Any

from taskloom.domain.runs import Run, RunStatus

# The task columns a finished run reads and writes.
OUTCOME_FIELDS = (
    "run_count",
    "last_run_status",
    "last_run_at",
    "last_summary",
    "last_error",
    "consecutive_failures",
    "status",
    "next_fire_at",
    "revision",
)


class Outcome:
    """How a finished run changes its task beyond the last_* fields: pause after N consecutive
    failures, finish after max_runs."""

    def __init__(self, *, pause_on_failure: int | None, max_runs: int | None) -> None:
        self.pause_on_failure = pause_on_failure
        self.max_runs = max_runs

    def task_changes(self, state: Mapping[str, Any]) -> dict[str, Any]:
        if self.max_runs is not None and state["run_count"] >= self.max_runs:
            return {"status": "finished", "next_fire_at": None}
        if self.pause_on_failure and state["consecutive_failures"] >= self.pause_on_failure:
            return {"status": "paused", "next_fire_at": None}
        return {}


def apply_run(state: dict[str, Any], run: Run, outcome: Outcome) -> bool:
    """Fold a finished run into the task's values (`OUTCOME_FIELDS`, changed in place); True when
    the task's definition changed too (paused or finished), which moves its revision."""
    state["run_count"] += 1
    state["last_run_status"] = run.status.value
    if run.status == RunStatus.SUCCEEDED:
        state["last_run_at"] = run.finished_at
        state["last_summary"] = run.summary
        state["last_error"] = None
        state["consecutive_failures"] = 0
    elif run.status in (RunStatus.FAILED, RunStatus.INTERRUPTED):
        state["last_error"] = run.error
        state["consecutive_failures"] += 1
    changes = outcome.task_changes(state)
    state.update(changes)
    if changes:
        state["revision"] += 1
    return bool(changes)
