"""What the console script prints: whole values when piped, a drawn and coloured table in a wide
terminal, records in a narrow one, documented `--json` shapes, one-line errors."""

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from taskloom.tasks.files import task_schema
from tests.cli.conftest import Cli

pytestmark = pytest.mark.slow

LONG_NAME = "Weekday morning prices for the whole team, posted before the stand-up meeting"
TASK_FILE = f"""\
name: {LONG_NAME}
trigger:
  cron: 0 8 * * 1-5
  timezone: Europe/Berlin
steps:
  - id: pause
    tool: wait
    args:
      seconds: 0
"""
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def task_id(shared_cli: Cli) -> str:
    """A cron task with a long name, created from a file by `taskloom tasks create`; the
    tests that use it only read."""
    path = shared_cli.db.parent / "task.yaml"
    path.write_text(TASK_FILE)
    result = shared_cli("tasks", "create", "-f", str(path))
    assert result.code == 0, result.stderr
    return result.stdout.split()[0]


@pytest.fixture(scope="module")
def run_id(shared_cli: Cli, task_id: str) -> str:
    """A finished manual run of `task_id`, made by `taskloom run`."""
    result = shared_cli("run", task_id)
    assert result.code == 0, result.stderr
    return result.stdout.split(":")[0]


def test_piped_list_keeps_every_value_whole(shared_cli: Cli, task_id: str) -> None:
    """Piped, `tasks list` prints the id, the long name and the trigger in words, uncut."""
    result = shared_cli("tasks", "list", COLUMNS="80")
    assert result.code == 0
    (header, row) = result.stdout.splitlines()
    assert header.split() == ["id", "name", "status", "trigger", "next", "fire", "last", "run"]
    assert task_id in row
    assert LONG_NAME in row
    assert "cron 0 8 * * 1-5, Europe/Berlin" in row
    assert "…" not in result.stdout
    assert "\x1b" not in result.stdout


def test_wide_terminal_draws_a_table_with_coloured_status(shared_cli: Cli, task_id: str) -> None:
    """In a wide terminal `tasks list` draws a table and shows `active` in green."""
    result = shared_cli.tty("tasks", "list", columns=220)
    assert result.code == 0
    assert "\x1b[32mactive" in result.stdout
    plain = ANSI.sub("", result.stdout)
    assert "┃" in plain or "│" in plain
    assert LONG_NAME in plain
    assert task_id in plain


def test_narrow_terminal_shows_records_without_cutting_values(
    shared_cli: Cli, task_id: str
) -> None:
    """In a terminal too narrow for the table each task is `field  value` lines, values whole."""
    result = shared_cli.tty("tasks", "list", columns=60)
    assert result.code == 0
    plain = ANSI.sub("", result.stdout).replace("\r", "")
    assert "…" not in plain
    assert f"id         {task_id}" in plain
    assert "trigger    cron 0 8 * * 1-5, Europe/Berlin" in plain
    assert " ".join(plain.split()).count(LONG_NAME) == 1


@pytest.mark.parametrize(
    ("command", "keys"),
    [
        (["tasks", "list"], {"tasks", "next_cursor", "server_timezone"}),
        (["tasks", "show", "{task}"], {"task", "timezone", "next_fires", "recent_runs"}),
        (["runs", "list"], {"runs", "next_cursor"}),
        (["runs", "show", "{run}"], {"id", "task_id", "status", "steps"}),
        (["status"], {"processes", "runs_in_flight", "queue_depth", "tasks_by_status"}),
    ],
    ids=["tasks-list", "tasks-show", "runs-list", "runs-show", "status"],
)
def test_json_prints_the_documented_shape(
    shared_cli: Cli, run_id: str, task_id: str, command: list[str], keys: set[str]
) -> None:
    """`--json` prints one JSON object with the keys the README documents."""
    args = [a.format(task=task_id, run=run_id) for a in command]
    result = shared_cli(*args, "--json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert keys <= set(data)


def test_tasks_list_json_describes_each_task(shared_cli: Cli, task_id: str) -> None:
    """`tasks list --json` gives each task's id, name, status, trigger and next fire."""
    (task,) = json.loads(shared_cli("tasks", "list", "--json").stdout)["tasks"]
    assert (task["id"], task["name"], task["status"]) == (task_id, LONG_NAME, "active")
    assert task["trigger"] == {"cron": "0 8 * * 1-5", "timezone": "Europe/Berlin"}
    assert set(task["next_fire"]) == {"local", "utc"}


def test_tasks_show_prints_state_and_the_task_file(shared_cli: Cli, task_id: str) -> None:
    """`tasks show` prints the trigger in words and the task's file, not a Python repr."""
    result = shared_cli("tasks", "show", task_id)
    assert result.code == 0
    assert "trigger     cron 0 8 * * 1-5, Europe/Berlin" in result.stdout
    assert "  cron: 0 8 * * 1-5\n" in result.stdout
    assert "datetime" not in result.stdout
    assert "{'" not in result.stdout


def test_status_counts_tasks_in_words(shared_cli: Cli, task_id: str) -> None:
    """`status` says `tasks: 1 active`, not a Python dict."""
    result = shared_cli("status")
    assert result.code == 0
    assert "tasks: 1 active" in result.stdout


def test_schema_prints_the_task_file_schema(cli: Cli) -> None:
    """`taskloom schema` prints the JSON Schema generated from the task model."""
    result = cli("schema")
    assert result.code == 0
    assert json.loads(result.stdout) == task_schema()


def test_update_from_a_file_changes_only_its_fields(
    cli: Cli, write: Callable[[str, str], Path]
) -> None:
    """`tasks update ID -f FILE` changes the fields the file gives and keeps the rest."""
    task_id = cli("tasks", "create", "-f", str(write("task.yaml", TASK_FILE))).stdout.split()[0]
    result = cli("tasks", "update", task_id, "-f", str(write("patch.yaml", "enabled: false\n")))
    assert result.code == 0, result.stderr
    task = json.loads(cli("tasks", "show", task_id, "--json").stdout)["task"]
    assert (task["status"], task["name"]) == ("paused", LONG_NAME)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["tasks", "show", "tsk_missing"],
         1, "no task with id tsk_missing; `taskloom tasks list` shows the ids"),
        (["runs", "show", "run_missing"],
         1, "no run with id run_missing; `taskloom runs list` shows the ids"),
        (["runs", "list", "--status", "bogus"], 2, "'bogus' is not one of 'queued'"),
        (["tasks", "pause"], 2, "Missing argument"),
        (["frobnicate"], 2, "No such command 'frobnicate'"),
        (["tasks", "apply", "-f", "{dir}"], 2, "pass --yes to apply or --dry-run"),
        (["tasks", "apply", "-f", "{dir}/nothing.yaml", "--yes"], 1, "no such file"),
        (["tasks", "create", "-f", "{dir}/bad.yaml"], 1, "steps[0].tool: 'wiat' is not valid"),
        (["tasks", "apply", "-f", "{dir}", "--set", "two words", "--yes"], 1,
         "--set: 'two words' is not valid"),
    ],
    ids=["unknown-task", "unknown-run", "bad-status", "missing-argument", "unknown-command",
         "apply-without-a-terminal", "missing-file", "invalid-task", "bad-set-name"],
)  # fmt: skip
def test_an_error_is_one_line_with_exit_1_or_2(
    cli: Cli, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    """A failing command exits 1 or 2 with exactly one line on stderr and no traceback."""
    (tmp_path / "bad.yaml").write_text("name: Bad\nsteps:\n  - {id: a, tool: wiat}\n")
    result = cli(*(a.format(dir=tmp_path) for a in args))
    assert result.code == code
    assert len(result.error_lines) == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unknown_id_error_names_commands_not_mcp_tools(cli: Cli) -> None:
    """An unknown id's error points at a command, never at an MCP tool."""
    result = cli("tasks", "pause", "tsk_missing")
    assert "list_tasks" not in result.stderr
    assert "`taskloom tasks list`" in result.stderr


def test_bad_setting_is_one_line_with_exit_2(cli: Cli) -> None:
    """An invalid TASKLOOM_* value exits 2 with one line naming it."""
    result = cli("tasks", "list", TASKLOOM_TIMEZONE="Mars/Olympus")
    assert result.code == 2
    assert len(result.error_lines) == 1
    assert "TASKLOOM_TIMEZONE" in result.stderr
