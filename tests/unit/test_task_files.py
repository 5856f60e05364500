"""Task files read and written in process: the YAML dialect, the bounds, the error wording, and
triggers in words."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from taskloom.domain.tasks import TaskSpec, Trigger
from taskloom.domain.triggers import describe_trigger
from taskloom.errors import InvalidInputs
from taskloom.tasks.files import (
    MAX_FILE_BYTES,
    BadTaskFile,
    read_documents,
    task_document,
    to_yaml,
)

STEP = "steps:\n  - {id: a, tool: wait, args: {seconds: 0}}\n"


def written(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_on_is_a_key_not_a_boolean(tmp_path: Path) -> None:
    """`on: always` under notify reads as the field `on` (YAML 1.2 booleans)."""
    path = written(tmp_path, "t.yaml", f"name: N\n{STEP}notify:\n  on: always\n")
    (document,) = read_documents(path)
    assert document.spec.notify.on == "always"


def test_on_is_written_unquoted() -> None:
    """The writer uses the same booleans, so `on` needs no quotes."""
    spec = TaskSpec.model_validate(
        {"name": "N", "steps": [{"id": "a", "tool": "wait"}], "notify": {"on": "always"}}
    )
    assert "\n  on: always\n" in to_yaml(task_document(spec))


def test_several_documents_are_several_tasks_named_by_position(tmp_path: Path) -> None:
    """A YAML stream holds one task per document, each problem naming `file#n`."""
    path = written(tmp_path, "t.yaml", f"---\nname: One\n{STEP}---\nname: Two\nsteps: []\n")
    with pytest.raises(InvalidInputs) as caught:
        read_documents(path)
    assert caught.value.problems[0].field == f"{path}#2: steps"


def test_a_file_over_the_size_limit_is_refused_naming_the_limit(tmp_path: Path) -> None:
    """A file larger than 1 MiB is refused before it is parsed, naming the limit."""
    path = written(tmp_path, "big.yaml", "# " + "x" * MAX_FILE_BYTES)
    with pytest.raises(BadTaskFile, match=f"at most {MAX_FILE_BYTES} bytes"):
        read_documents(path)


def test_aliases_are_refused(tmp_path: Path) -> None:
    """An alias (which could expand a small file into a huge value) is refused, saying so."""
    text = f"name: N\n{STEP}description: &d text\nx: *d\n"
    with pytest.raises(BadTaskFile, match=r"aliases \(\*name\) are not allowed"):
        read_documents(written(tmp_path, "t.yaml", text))


def test_deeply_nested_values_are_refused(tmp_path: Path) -> None:
    """A value nested past the parser's depth is one error, not a crash."""
    path = written(tmp_path, "t.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(BadTaskFile, match="nested too deeply"):
        read_documents(path)


def test_unknown_field_is_named_with_its_file_and_a_suggestion(tmp_path: Path) -> None:
    """A misspelt field names the file, the field and the closest known one."""
    path = written(tmp_path, "t.yaml", f"name: N\n{STEP}overlapp: skip\n")
    with pytest.raises(InvalidInputs, match=r"t\.yaml: overlapp: .*Did you mean 'overlap'"):
        read_documents(path)


def test_a_directory_without_task_files_is_refused(tmp_path: Path) -> None:
    """A directory with no .yaml, .yml or .json file says so."""
    with pytest.raises(BadTaskFile, match=r"no \.yaml, \.yml or \.json files"):
        read_documents(tmp_path)


def test_task_document_leaves_defaults_out_and_puts_the_name_first() -> None:
    """A task's file holds what differs from the defaults, name and trigger first."""
    spec = TaskSpec.model_validate(
        {"steps": [{"id": "a", "tool": "wait"}], "overlap": "skip", "name": "N",
         "trigger": {"every": "1h"}, "timeout_s": 30}
    )  # fmt: skip
    assert list(task_document(spec)) == ["name", "trigger", "steps", "timeout_s"]
    assert task_document(spec)["timeout_s"] == 30


@pytest.mark.parametrize(
    ("trigger", "words"),
    [
        ({"cron": "0 8 * * 1-5", "timezone": "Europe/Berlin"}, "cron 0 8 * * 1-5, Europe/Berlin"),
        ({"cron": "*/5 * * * *"}, "cron */5 * * * *, UTC"),
        ({"every": "30m"}, "every 30m"),
        ({"every": 90}, "every 90s"),
        ({"at": "2026-12-01T09:00:00", "timezone": "Europe/Berlin"},
         "once at 2026-12-01 09:00, Europe/Berlin"),
        ({"event": "deploy_finished"}, "on event deploy_finished"),
        (None, "manual"),
    ],
)  # fmt: skip
def test_trigger_in_words(trigger: dict[str, object] | None, words: str) -> None:
    """Each kind of trigger reads as a short phrase, its timezone named."""
    parsed = None if trigger is None else TypeAdapter(Trigger).validate_python(trigger)
    assert describe_trigger(parsed, "UTC") == words


def test_interval_from_a_start_names_it_in_the_timezone() -> None:
    """An interval with start_at says from when, in its timezone."""
    start = datetime(2030, 1, 1, tzinfo=UTC).isoformat()
    trigger = TypeAdapter(Trigger).validate_python(
        {"every": "1h", "start_at": start, "timezone": "Europe/Berlin"}
    )
    assert describe_trigger(trigger, "UTC") == "every 1h from 2030-01-01 01:00, Europe/Berlin"
