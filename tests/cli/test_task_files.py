"""Tasks as files through the console script: export, apply (diff first), prune, round trips."""

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import EXAMPLES, Cli

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-9;]*m")

EVERY_FIELD = """\
name: Every field
description: |-
  A task that sets every field,
  over two lines.
trigger:
  every: 1h
  start_at: '2030-01-01T00:00:00Z'
  timezone: Europe/Berlin
enabled: false
steps:
  - id: first
    tool: wait
    args:
      seconds: 0
    timeout_s: 5
    retry:
      attempts: 2
      backoff_s: 1
      max_backoff_s: 2
    on_error: continue
  - id: second
    tool: wait
    args:
      seconds: 0.5
catchup: all
catchup_window_s: 3600
overlap: queue
retry:
  attempts: 3
  backoff_s: 2
  max_backoff_s: 30
timeout_s: 60
notify:
  on: always
  webhook_url: '{{ secrets.HOOK_URL }}'
  desktop: true
summary:
  enabled: true
  model: claude-test
  max_tokens: 100
end_at: '2031-01-01T00:00:00Z'
max_runs: 10
pause_on_failure: 3
"""


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    """The example task files and a task with every field, in one directory."""
    directory = tmp_path / "tasks"
    shutil.copytree(EXAMPLES, directory)
    (directory / "every-field.yaml").write_text(EVERY_FIELD)
    return directory


def applied(cli: Cli, path: Path, *flags: str) -> str:
    result = cli("tasks", "apply", "-f", str(path), *flags)
    assert result.code == 0, result.stderr
    return result.stdout


def names(cli: Cli) -> set[str]:
    return {t["name"] for t in json.loads(cli("tasks", "list", "--json").stdout)["tasks"]}


def test_export_applied_to_an_empty_database_exports_the_same(
    cli: Cli, other_cli: Cli, task_dir: Path, tmp_path: Path
) -> None:
    """Every example and a task with every field, exported, applied elsewhere and exported
    again, read the same."""
    applied(cli, task_dir, "--yes")
    first = cli("tasks", "export").stdout
    (tmp_path / "exported.yaml").write_text(first)
    applied(other_cli, tmp_path / "exported.yaml", "--yes")
    assert other_cli("tasks", "export").stdout == first
    assert first.count("\n---\n") + first.startswith("---\n") == 4


def test_export_of_a_task_with_every_field_is_its_file(cli: Cli, task_dir: Path) -> None:
    """The file of a task that sets every field exports as it was written."""
    applied(cli, task_dir / "every-field.yaml", "--yes")
    assert cli("tasks", "export").stdout == "---\n" + EVERY_FIELD


def test_applying_an_export_directory_changes_nothing(
    cli: Cli, task_dir: Path, tmp_path: Path
) -> None:
    """`export -o DIR` writes one file per task, named after it, and applying them back finds
    nothing to do."""
    applied(cli, task_dir, "--yes")
    written = cli("tasks", "export", "-o", str(tmp_path / "out")).stdout.split()
    assert {Path(p).name for p in written} == {
        "every-field.yaml", "smoke-test-after-deploy.yaml", "website-health-check.yaml",
        "morning-crypto-prices.yaml",
    }  # fmt: skip
    out = applied(cli, tmp_path / "out", "--yes")
    assert out.strip() == "0 to create, 0 to update, 0 to delete, 4 unchanged."


def test_apply_shows_the_change_as_a_yaml_diff_before_applying(
    cli: Cli, task_dir: Path, write: Callable[[str, str], Path]
) -> None:
    """A changed cron shows as a -/+ pair of YAML lines; --dry-run leaves the task as it was."""
    applied(cli, task_dir, "--yes")
    morning = (task_dir / "weekday-morning-prices.yaml").read_text()
    changed = write("changed.yaml", morning.replace("0 8 * * 1-5", "0 9 * * 1-5"))
    shown = applied(cli, changed, "--dry-run").splitlines()
    assert "--- a/Morning crypto prices" in shown
    assert [line for line in shown if "cron:" in line] == [
        "-  cron: 0 8 * * 1-5",
        "+  cron: 0 9 * * 1-5",
    ]
    assert shown[-1] == "0 to create, 1 to update, 0 to delete, 0 unchanged."
    assert "0 8 * * 1-5" in cli("tasks", "export").stdout


def test_apply_updates_the_task_of_that_name_in_place(
    cli: Cli, task_dir: Path, write: Callable[[str, str], Path]
) -> None:
    """Applying a changed file updates the task with that name; its id stays."""
    applied(cli, task_dir / "weekday-morning-prices.yaml", "--yes")
    (before,) = json.loads(cli("tasks", "list", "--json").stdout)["tasks"]
    morning = (task_dir / "weekday-morning-prices.yaml").read_text()
    out = applied(cli, write("m.yaml", morning.replace("0 8 * * 1-5", "0 9 * * 1-5")), "--yes")
    assert f"updated {before['id']} Morning crypto prices" in out
    (after,) = json.loads(cli("tasks", "list", "--json").stdout)["tasks"]
    assert (after["id"], after["trigger"]["cron"]) == (before["id"], "0 9 * * 1-5")


def test_prune_deletes_the_sets_tasks_missing_from_the_files(
    cli: Cli, task_dir: Path, write: Callable[[str, str], Path]
) -> None:
    """--prune deletes tasks applied from files whose file is gone, and keeps tasks made
    otherwise."""
    applied(cli, task_dir, "--yes")
    other = "name: Made by hand\nsteps:\n  - {id: a, tool: wait, args: {seconds: 0}}\n"
    assert cli("tasks", "create", "-f", str(write("hand.yaml", other))).code == 0
    (task_dir / "health-check-every-30m.yaml").unlink()
    out = applied(cli, task_dir, "--prune", "--yes")
    assert "+++ /dev/null" in out
    assert "0 to create, 0 to update, 1 to delete, 3 unchanged." in out
    assert "deleted " in out.splitlines()[-1]
    assert out.splitlines()[-1].endswith(" Website health check")
    assert names(cli) == {
        "Smoke test after deploy", "Morning crypto prices", "Every field", "Made by hand",
    }  # fmt: skip


def test_in_a_terminal_apply_asks_before_applying(cli: Cli, task_dir: Path) -> None:
    """In a terminal, apply shows the diff, asks, and applies once the user answers y."""
    result = cli.tty(
        "tasks", "apply", "-f", str(task_dir / "every-field.yaml"), columns=120, typed="y\n"
    )
    assert result.code == 0, result.stderr
    shown = ANSI.sub("", result.stdout)
    assert "+name: Every field" in shown
    assert "Apply 1 change? [y/N]" in shown
    assert names(cli) == {"Every field"}


def test_json_task_files_apply_like_yaml_ones(cli: Cli, write: Callable[[str, str], Path]) -> None:
    """A .json file holding a list of tasks creates each of them."""
    tasks = [
        {"name": f"From JSON {n}", "steps": [{"id": "a", "tool": "wait", "args": {"seconds": 0}}]}
        for n in (1, 2)
    ]
    out = applied(cli, write("tasks.json", json.dumps(tasks)), "--yes")
    assert "2 to create" in out
    assert names(cli) == {"From JSON 1", "From JSON 2"}


def test_an_invalid_file_applies_nothing_and_names_file_and_field(cli: Cli, task_dir: Path) -> None:
    """One bad file stops the whole apply with create_task's message naming the file."""
    (task_dir / "zz-bad.yaml").write_text("name: Bad\nsteps:\n  - {id: a, tool: wiat}\n")
    result = cli("tasks", "apply", "-f", str(task_dir), "--yes")
    assert result.code == 1
    assert len(result.error_lines) == 1
    assert f"{task_dir / 'zz-bad.yaml'}: steps[0].tool: 'wiat' is not valid" in result.stderr
    assert "Did you mean 'wait'?" in result.stderr
    assert names(cli) == set()
