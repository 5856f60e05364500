"""The rows kept in the schema fixtures: a bit of every table, as a release would have left them.

Values are literal (fixed ids and times) so the fixtures regenerate byte for byte."""

from datetime import UTC, datetime
from typing import Any

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TASK_CRON = "tsk_01kaqm1n80000000000000000a"
TASK_EVERY = "tsk_01kaqm1n80000000000000000b"
TASK_EVENT = "tsk_01kaqm1n80000000000000000c"
WAIT = {"id": "pause", "tool": "wait", "args": {"seconds": 0}}


def _at(minutes: int) -> datetime:
    return T0.replace(minute=minutes)


def _task(task_id: str, name: str, trigger: dict[str, Any] | None, **state: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"steps": [WAIT]} | ({"trigger": trigger} if trigger else {})
    kinds = [k for k in ("cron", "every", "event") if k in (trigger or {})]
    kind = kinds[0] if kinds else "manual"
    return {
        "id": task_id, "owner": "local", "name": name, "description": f"{name} (kept)",
        "spec": spec, "timezone": "Europe/Berlin", "trigger_kind": kind,
        "event_name": (trigger or {}).get("event"), "enabled": True, "status": "active",
        "revision": 1, "created_at": T0, "updated_at": T0, "next_fire_at": None,
        "last_attempt_at": None, "last_run_at": None, "last_run_status": None,
        "last_summary": None, "last_error": None, "run_count": 0, "consecutive_failures": 0,
        **state,
    }  # fmt: skip


def tasks() -> list[dict[str, Any]]:
    return [
        _task(TASK_CRON, "Morning digest", {"cron": "0 9 * * *"}, next_fire_at=_at(59),
              last_run_at=_at(1), last_run_status="succeeded", last_summary="ok", run_count=2),
        _task(TASK_EVERY, "Ping", {"every": "1m"}, status="paused", enabled=False,
              last_run_status="failed", last_error="boom", consecutive_failures=1, run_count=1),
        _task(TASK_EVENT, "On deploy", {"event": "deploy"}),
    ]  # fmt: skip


def _run(run_id: str, task_id: str, status: str, minute: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": run_id, "task_id": task_id, "owner": "local", "status": status,
        "trigger": "schedule", "fire_time": _at(minute), "attempt": 1, "created_at": _at(minute),
        "started_at": _at(minute), "finished_at": None, "duration_ms": None, "output": None,
        "summary": None, "error": None, "event": None, "lease_owner": None,
        "lease_expires_at": None, **extra,
    }  # fmt: skip


def runs(*, not_before: bool) -> list[dict[str, Any]]:
    """A finished, a failed, a running (leased) and a queued retry; `not_before` only where the
    release's schema has the column."""
    done = {"finished_at": _at(2), "duration_ms": 5}
    rows = [
        _run("run_01kaqm1n80000000000000000a", TASK_CRON, "succeeded", 0, output={"n": 1},
             summary="ok", **done),
        _run("run_01kaqm1n80000000000000000b", TASK_EVERY, "failed", 1, error="boom", **done),
        _run("run_01kaqm1n80000000000000000c", TASK_CRON, "running", 3,
             lease_owner="host:4242:abc", lease_expires_at=_at(4)),
        _run("run_01kaqm1n80000000000000000d", TASK_EVERY, "queued", 1, attempt=2,
             started_at=None),
        _run("run_01kaqm1n80000000000000000e", TASK_EVENT, "succeeded", 5, trigger="event",
             fire_time=None, event={"version": "1.2"}, **done),
    ]  # fmt: skip
    if not_before:
        for row in rows:
            row["not_before"] = _at(2) if row["status"] == "queued" else None
    return rows


def step_results() -> list[dict[str, Any]]:
    return [
        {"run_id": run_id, "step_index": 0, "step_id": "pause", "tool": "wait",
         "status": status, "args": {"seconds": 0}, "output": output, "error": error,
         "started_at": T0, "finished_at": T0, "duration_ms": 0, "attempts": 1}
        for run_id, status, output, error in [
            ("run_01kaqm1n80000000000000000a", "succeeded", {"waited_s": 0}, None),
            ("run_01kaqm1n80000000000000000b", "failed", None, "boom"),
        ]
    ]  # fmt: skip


def processes() -> list[dict[str, Any]]:
    return [{"id": "host:4242:abc", "hostname": "host", "pid": 4242, "role": "worker",
             "started_at": T0, "heartbeat_at": _at(3)}]  # fmt: skip


def counters() -> list[dict[str, Any]]:
    return [{"name": "tasks_revision", "value": 3}]
