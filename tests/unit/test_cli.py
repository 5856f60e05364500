"""The `taskloom` command against a real SQLite file: output, exit codes and messages.

`cli._run` calls `asyncio.run`, so these tests are synchronous."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import Result
from typer.testing import CliRunner

from taskloom import __version__
from taskloom.cli import app
from taskloom.domain.runs import RunCause
from taskloom.domain.tasks import TaskSpec
from taskloom.services import Services, build_services
from taskloom.settings import Settings
from taskloom.store.migrate import schema_head

T = TypeVar("T")

runner = CliRunner()
WAIT_0 = {"id": "pause", "tool": "wait", "args": {"seconds": 0}}


@pytest.fixture(autouse=True)
def _database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads its settings from the environment; logging keeps the suite's setup (the
    CLI's own would bind structlog to the runner's short-lived stderr); tables get a terminal
    wide enough for two ids and the other columns."""
    monkeypatch.setenv("TASKLOOM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.setattr("taskloom.logging.configure", lambda *_, **__: None)


def through_services(make: Callable[[Services], Awaitable[T]]) -> T:
    """Runs `make` on services opened on the CLI's database, as another process would."""

    async def body() -> T:
        services = build_services(Settings(), role="cli")
        await services.start(schedule=False)
        try:
            return await make(services)
        finally:
            await services.stop()

    return asyncio.run(body())


@pytest.fixture
def task_id() -> str:
    """A manual task whose one step waits 0 s, created through the services."""

    async def create(s: Services) -> str:
        spec = TaskSpec.model_validate({"name": "Nightly digest", "steps": [WAIT_0]})
        return (await s.tasks.create(spec, owner="local")).task.id

    return through_services(create)


@pytest.fixture
def run_id(task_id: str) -> str:
    """A finished manual run of `task_id`."""

    async def execute(s: Services) -> str:
        task = await s.tasks.get(task_id, owner=None)
        run = s.runs.new_run(task, RunCause.MANUAL)
        await s.store.start_run(run, owner=task.owner)
        return (await s.runs.execute(task, run)).id

    return through_services(execute)


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def shown(*args: str) -> dict[str, Any]:
    """The JSON a `show --json` command prints, after checking it exited 0."""
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_version_prints_the_package_version() -> None:
    """`taskloom --version` prints the version and exits 0."""
    result = invoke("--version")
    assert (result.exit_code, result.stdout) == (0, f"taskloom {__version__}\n")


def test_serve_help_documents_every_setting() -> None:
    """`taskloom serve --help` names the environment variable of every setting."""
    result = invoke("serve", "--help")
    assert result.exit_code == 0
    for name, field in Settings.model_fields.items():
        variable = field.validation_alias or f"TASKLOOM_{name.upper()}"
        assert variable in result.stdout, variable


def test_tasks_list_shows_the_task(task_id: str) -> None:
    """`taskloom tasks list` shows each task's id and status."""
    result = invoke("tasks", "list")
    assert result.exit_code == 0
    assert task_id in result.stdout
    assert "active" in result.stdout


def test_tasks_list_says_when_there_are_none() -> None:
    """`taskloom tasks list` on an empty database says there are no tasks."""
    result = invoke("tasks", "list")
    assert (result.exit_code, result.stdout) == (0, "No tasks yet.\n")


def test_tasks_show_prints_the_task_as_json(task_id: str) -> None:
    """`taskloom tasks show --json` prints the whole task as JSON."""
    task = shown("tasks", "show", task_id)["task"]
    assert (task["id"], task["name"], task["steps"][0]["tool"]) == (
        task_id,
        "Nightly digest",
        "wait",
    )


def test_tasks_pause_pauses_the_task(task_id: str) -> None:
    """`taskloom tasks pause` stops the task firing."""
    result = invoke("tasks", "pause", task_id)
    assert result.exit_code == 0
    assert task_id in result.stdout
    assert shown("tasks", "show", task_id)["task"]["status"] == "paused"


def test_tasks_resume_reactivates_a_paused_task(task_id: str) -> None:
    """`taskloom tasks resume` makes a paused task active again."""
    invoke("tasks", "pause", task_id)
    result = invoke("tasks", "resume", task_id)
    assert result.exit_code == 0
    assert shown("tasks", "show", task_id)["task"]["status"] == "active"


def test_tasks_delete_removes_the_task(task_id: str) -> None:
    """`taskloom tasks delete --yes` deletes the task, which is then not found."""
    result = invoke("tasks", "delete", task_id, "--yes")
    assert result.exit_code == 0
    assert f"Deleted {task_id}" in result.stdout
    assert invoke("tasks", "show", task_id).exit_code == 1


def test_tasks_revisions_lists_each_change(task_id: str) -> None:
    """`taskloom tasks revisions` lists the create and a pause, newest first, by principal."""
    invoke("tasks", "pause", task_id)
    result = invoke("tasks", "revisions", task_id)
    assert result.exit_code == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split()[:3] == ["revision", "action", "principal"]
    assert lines[0].split()[:3] == ["2", "pause", "operator"]
    assert lines[1].split()[:3] == ["1", "create", "local"]


def test_tasks_restore_brings_back_a_deleted_task(task_id: str) -> None:
    """`taskloom tasks restore` creates a deleted task again from its last revision."""
    invoke("tasks", "delete", task_id, "--yes")
    result = invoke("tasks", "restore", task_id, "2")
    assert result.exit_code == 0, result.stderr
    new_id = result.stdout.split(":")[0]
    assert shown("tasks", "show", new_id)["task"]["name"] == "Nightly digest"


@pytest.mark.parametrize(
    "command",
    [
        ["tasks", "show"], ["tasks", "pause"], ["tasks", "resume"], ["tasks", "delete", "--yes"],
        ["run"], ["runs", "show"],
    ],
    ids=lambda c: "-".join(w for w in c if not w.startswith("-")),
)  # fmt: skip
def test_unknown_id_exits_1_with_a_message_on_stderr(command: list[str]) -> None:
    """A command given an id that does not exist exits 1 and names the id on stderr."""
    result = invoke(*command, "tsk_missing")
    assert result.exit_code == 1
    assert "tsk_missing" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        (["tasks", "pause"], "Missing argument"),
        (["tasks", "list", "--limit", "0"], "--limit"),
        (["serve", "--transport", "carrier-pigeon"], "--transport"),
        (["frobnicate"], "No such command"),
    ],
    ids=["missing-argument", "bad-option", "bad-choice", "unknown-command"],
)
def test_usage_errors_exit_2(command: list[str], fragment: str) -> None:
    """A usage mistake exits 2 and says what was wrong on stderr."""
    result = invoke(*command)
    assert result.exit_code == 2
    assert fragment in result.stderr


def test_bad_setting_exits_2_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An invalid TASKLOOM_* value exits 2 and names the variable and the value."""
    monkeypatch.setenv("TASKLOOM_TIMEZONE", "Mars/Olympus")
    result = invoke("tasks", "list")
    assert result.exit_code == 2
    assert "TASKLOOM_TIMEZONE" in result.stderr
    assert "Mars/Olympus" in result.stderr


def test_run_executes_the_task_and_prints_succeeded(task_id: str) -> None:
    """`taskloom run` runs a task in this process, prints `succeeded` and exits 0."""
    result = invoke("run", task_id)
    assert result.exit_code == 0, result.stdout
    assert "succeeded" in result.stdout
    assert "pause (wait): succeeded" in result.stdout


def test_run_refuses_a_finished_task() -> None:
    """`taskloom run` on a task that reached max_runs exits 1 saying it has finished, as run_task
    does (one start path for both)."""

    async def create(s: Services) -> str:
        spec = TaskSpec.model_validate({"name": "Once only", "steps": [WAIT_0], "max_runs": 1})
        return (await s.tasks.create(spec, owner="local")).task.id

    once = through_services(create)
    assert invoke("run", once).exit_code == 0
    result = invoke("run", once)
    assert result.exit_code == 1
    assert "has finished" in result.stderr


def test_run_follows_the_overlap_policy(task_id: str) -> None:
    """`taskloom run` while a run of the task is going is refused under overlap 'skip', naming
    the policy, and nothing is recorded."""

    async def hold(s: Services) -> str:
        task = await s.tasks.get(task_id, owner=None)
        run = s.runs.new_run(task, RunCause.MANUAL)
        await s.store.start_run(run, owner=task.owner)
        return run.id

    running = through_services(hold)
    result = invoke("run", task_id)
    assert result.exit_code == 1
    assert "overlap policy is 'skip'" in " ".join(result.stderr.split())
    runs = through_services(lambda s: s.store.list_runs(owner=None, task_id=task_id, limit=10))
    assert [r.id for r in runs.items] == [running]


def test_runs_list_shows_the_run(run_id: str) -> None:
    """`taskloom runs list` shows each run's id and status."""
    result = invoke("runs", "list")
    assert result.exit_code == 0
    assert run_id in result.stdout
    assert "succeeded" in result.stdout


def test_runs_show_prints_the_run_as_json(run_id: str, task_id: str) -> None:
    """`taskloom runs show --json` prints the run with its step results as JSON."""
    run = shown("runs", "show", run_id)
    assert (run["id"], run["task_id"], run["status"]) == (run_id, task_id, "succeeded")
    assert [s["id"] for s in run["steps"]] == ["pause"]


def test_db_upgrade_reports_the_schema_revision() -> None:
    """`taskloom db upgrade` migrates a new file and prints its revision."""
    result = invoke("db", "upgrade")
    expected = f"Database schema at revision {schema_head()}.\n"
    assert (result.exit_code, result.stdout) == (0, expected)


def test_status_reports_processes_queue_and_tasks(task_id: str) -> None:
    """`taskloom status` says whether anything schedules and counts runs and tasks."""
    result = invoke("status")
    assert result.exit_code == 0
    assert "No Taskloom process is scheduling." in result.stdout
    assert "Runs in flight: 0" in result.stdout
    assert "tasks: 1 active" in result.stdout


def test_error_wording_names_commands_instead_of_mcp_tools() -> None:
    """A domain message that names MCP tools reads, on the command line, with the commands."""
    from taskloom.cli.common import cli_message
    from taskloom.errors import InvalidInput, InvalidInputs

    fix = "Pick another name, or change that task with update_task(task_id='tsk_1', ...)."
    message = cli_message(InvalidInputs([InvalidInput("name", "Digest", fix)]))
    assert message == (
        "1 problem: name: 'Digest' is not valid. Pick another name, or change that task with "
        "`taskloom tasks update tsk_1 -f FILE`."
    )
