"""`taskloom runs prune` (and `--dry-run`) and the storage lines of `taskloom status`, against a
real SQLite file."""

from pathlib import Path

import pytest
from tests.store.test_retention import add_runs, saved_task
from tests.unit.test_cli import invoke, through_services

from taskloom.services import Services
from taskloom.store.tables import RunRow


@pytest.fixture(autouse=True)
def _policy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A SQLite file of the test's own, the suite's logging kept (as in test_cli), and a policy
    of 30 days and the last run of each task."""
    monkeypatch.setenv("TASKLOOM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.setattr("taskloom.logging.configure", lambda *_, **__: None)
    monkeypatch.setenv("TASKLOOM_RETENTION_DAYS", "30")
    monkeypatch.setenv("TASKLOOM_RETENTION_KEEP_LAST", "1")


@pytest.fixture
def old_runs() -> str:
    """A task with three runs about 200 days old and one from about a week ago; its id."""

    async def make(s: Services) -> str:
        task = await saved_task(s.store, 1)
        await add_runs(s.store, task, [200, 201, 202, 7])
        return task.id

    return through_services(make)


def count_runs() -> int:
    async def count(s: Services) -> int:
        from sqlalchemy import func
        from sqlmodel import select

        async with s.store.read() as session:
            return int((await session.exec(select(func.count()).select_from(RunRow))).one())

    return through_services(count)


def test_dry_run_lists_what_would_go_and_keeps_it(old_runs: str) -> None:
    """`runs prune --dry-run` names the task and the count, and removes nothing."""
    result = invoke("runs", "prune", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert old_runs in result.stdout
    assert "3 runs would be removed" in result.stdout
    assert count_runs() == 4


def test_prune_removes_the_old_runs(old_runs: str) -> None:
    """`runs prune` removes the runs the policy lets go and says how many."""
    result = invoke("runs", "prune")
    assert result.exit_code == 0, result.stderr
    assert "Removed 3 runs" in result.stdout
    assert count_runs() == 1


def test_prune_with_vacuum_gives_space_back(old_runs: str) -> None:
    """`runs prune --vacuum` prunes, then vacuums, and still exits 0."""
    result = invoke("runs", "prune", "--vacuum")
    assert result.exit_code == 0, result.stderr
    assert count_runs() == 1


def test_status_shows_database_size_and_oldest_run(old_runs: str) -> None:
    """`taskloom status` shows the database's size, the oldest run kept and the policy."""
    result = invoke("status")
    assert result.exit_code == 0, result.stderr
    assert "Database: " in result.stdout
    assert "oldest run kept: 2026-" in result.stdout
    assert "runs kept 30 days" in result.stdout


def test_zero_days_says_runs_are_kept_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    """With TASKLOOM_RETENTION_DAYS=0 status says runs are kept forever."""
    monkeypatch.setenv("TASKLOOM_RETENTION_DAYS", "0")
    result = invoke("status")
    assert "kept forever" in result.stdout


def test_negative_days_is_a_bad_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A negative retention is refused at start, naming the setting."""
    monkeypatch.setenv("TASKLOOM_RETENTION_DAYS", "-1")
    result = invoke("status")
    assert result.exit_code == 2
    assert "TASKLOOM_RETENTION_DAYS" in result.stderr


def test_prune_json_reports_counts_and_storage(old_runs: str) -> None:
    """`runs prune --dry-run --json` prints the count, the task and the storage figures."""
    import json

    result = invoke("runs", "prune", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["pruned"], answer["per_task"][0]["task_id"]) == (3, old_runs)
    assert answer["storage"]["runs"] == 4


def test_status_json_carries_storage(old_runs: str) -> None:
    """`status --json` adds the storage figures to scheduler_status's shape."""
    import json

    result = invoke("status", "--json")
    assert result.exit_code == 0, result.stderr
    storage = json.loads(result.stdout)["storage"]
    assert storage["runs"] == 4
    assert storage["oldest_run_at"].startswith("2026-")
