"""Tasks as files: the YAML (and JSON) document of a task, its JSON Schema, and bounded reading.

A task file holds exactly what `create_task` takes (`TaskSpec`): the same fields, the same
validation. Files are read with PyYAML's safe loader, YAML 1.2 booleans (`on: failure` is the key
"on", not true), no aliases (an alias can expand a small file into a huge value), and size,
document-count and file-count limits named in their errors.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from taskloom.domain.tasks import TaskFields, TaskPatch, TaskSpec
from taskloom.errors import InvalidInput, InvalidInputs, TaskloomError

MAX_FILE_BYTES = 1024 * 1024
MAX_DOCUMENTS = 1000  # tasks in one file, and task files in one directory
SUFFIXES = (".yaml", ".yml", ".json")
LINE_WIDTH = 4096  # long text stays on one line: a changed word is a one-line diff
SCHEMA_ID = "taskloom-task.schema.json"
# The order fields are written in: what a reader looks for first.
FIRST_FIELDS = ("name", "description", "trigger", "enabled", "steps")


class BadTaskFile(TaskloomError):
    """A task file that cannot be read or parsed; the message names the file."""


@dataclass(frozen=True)
class TaskDocument:
    """One task read from a file: where it came from (`file`, or `file#2` for the second
    document of a file) and its validated fields."""

    source: str
    spec: TaskSpec


# -- YAML dialect ------------------------------------------------------------------------------

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _Loader(yaml.SafeLoader):
    """Safe loading with YAML 1.2 booleans and without aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.MarkedYAMLError(
                None, None, "aliases (*name) are not allowed in task files; write the value out",
                event.start_mark,
            )  # fmt: skip
        return super().compose_node(parent, index)


class _Dumper(yaml.SafeDumper):
    """Safe dumping with the loader's booleans, so `on` is written unquoted."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Lists indented under their key, as editors and linters expect.
        super().increase_indent(flow, False)


def _yaml_12_bools(cls: type[yaml.SafeLoader] | type[yaml.SafeDumper]) -> None:
    resolvers = {
        first: [(tag, rx) for tag, rx in entries if tag != "tag:yaml.org,2002:bool"]
        for first, entries in cls.yaml_implicit_resolvers.items()
    }
    cls.yaml_implicit_resolvers = resolvers
    cls.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))


def _str_block(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """Multi-line strings (templates, descriptions) as readable `|` blocks."""
    style = "|" if "\n" in value and value == value.strip(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_yaml_12_bools(_Loader)
_yaml_12_bools(_Dumper)
_Dumper.add_representer(str, _str_block)


# -- writing -----------------------------------------------------------------------------------


def task_document(spec: TaskFields) -> dict[str, Any]:
    """A task's file content: the fields that differ from their defaults, the important first."""
    data = TaskSpec.model_validate(spec.model_dump()).model_dump(mode="json", exclude_defaults=True)
    data = _whole_numbers(data)
    first = {k: data[k] for k in FIRST_FIELDS if k in data}
    return first | {k: v for k, v in data.items() if k not in first}


def _whole_numbers(value: Any) -> Any:
    """Seconds the model keeps as floats written as people wrote them (`15`, not `15.0`); a
    step's `args` are the user's values and stay as they are."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: v if k == "args" else _whole_numbers(v) for k, v in value.items()}
    return value


def to_yaml(document: dict[str, Any]) -> str:
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=LINE_WIDTH,
        default_flow_style=False,
    )  # fmt: skip


def to_yaml_stream(documents: list[dict[str, Any]]) -> str:
    """Several tasks as one YAML stream, each document starting with `---`."""
    return "".join(f"---\n{to_yaml(d)}" for d in documents)


def file_name(name: str, taken: set[str]) -> str:
    """A file name for a task named `name`, unlike those in `taken` (names differ in case and
    punctuation, file names may not)."""
    stem = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80] or "task"
    candidate, n = f"{stem}.yaml", 2
    while candidate in taken:
        candidate, n = f"{stem}-{n}.yaml", n + 1
    taken.add(candidate)
    return candidate


def task_schema() -> dict[str, Any]:
    """The JSON Schema of a task file, generated from the model `create_task` validates with."""
    schema = TaskSpec.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "Taskloom task",
        "description": (
            "One Taskloom task as `taskloom tasks apply` and `create_task` take it: a chain of "
            "step tool calls and the trigger that runs it."
        ),
    }


# -- reading -----------------------------------------------------------------------------------


def task_files(path: Path) -> list[Path]:
    """`path` itself, or the task files (.yaml, .yml, .json) directly in the directory."""
    if not path.exists():
        raise BadTaskFile(f"{path}: no such file or directory; give a task file or a directory.")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
    if not files:
        raise BadTaskFile(f"{path}: no .yaml, .yml or .json files in this directory.")
    if len(files) > MAX_DOCUMENTS:
        raise BadTaskFile(
            f"{path}: {len(files)} task files; at most {MAX_DOCUMENTS} are read from one "
            "directory. Split them into several directories."
        )
    return files


def read_documents(path: Path) -> list[TaskDocument]:
    """Every task in a file or directory, validated; every problem of every file at once."""
    documents: list[TaskDocument] = []
    problems: list[InvalidInput] = []
    for file in task_files(path):
        for source, data in _raw_documents(file):
            try:
                documents.append(TaskDocument(source, parse_task(data, source)))
            except InvalidInputs as exc:
                problems += exc.problems
    if len(documents) > MAX_DOCUMENTS:
        raise BadTaskFile(f"{path}: {len(documents)} tasks; at most {MAX_DOCUMENTS} at once.")
    if problems:
        raise InvalidInputs(problems)
    return documents


def parse_task(data: Any, source: str) -> TaskSpec:
    """A file's document as a task, or InvalidInputs naming `source` and each field."""
    if not isinstance(data, dict):
        fix = "A task file holds a mapping with name, steps and optionally trigger, ..."
        raise InvalidInputs([InvalidInput(source, data, fix)])
    try:
        return TaskSpec.model_validate(data)
    except ValidationError as exc:
        raise _field_problems(exc, source) from None


def read_patch(file: Path) -> TaskPatch:
    """A file of the fields to change, as update_task takes them (with `clear`)."""
    documents = list(_raw_documents(file))
    if len(documents) != 1 or not isinstance(documents[0][1], dict):
        fix = "An update file holds one mapping of the fields to change, e.g. 'enabled: false'."
        raise InvalidInputs([InvalidInput(str(file), f"<{len(documents)} documents>", fix)])
    try:
        return TaskPatch.model_validate(documents[0][1])
    except ValidationError as exc:
        raise _field_problems(exc, str(file), TaskPatch) from None


def _field_problems(
    exc: ValidationError, source: str, model: type[TaskSpec] | type[TaskPatch] = TaskSpec
) -> InvalidInputs:
    from taskloom.tasks.suggest import format_validation_error

    return format_validation_error(exc, prefix=f"{source}: ", arguments=model.model_fields)


def read_raw(file: Path) -> list[Any]:
    """The documents of a task file as plain data, before validation."""
    return [data for _, data in _raw_documents(file)]


def _raw_documents(file: Path) -> Iterator[tuple[str, Any]]:
    text = _bounded_text(file)
    try:
        if file.suffix == ".json":
            loaded = json.loads(text)
            items = loaded if isinstance(loaded, list) else [loaded]
        else:
            items = list(yaml.load_all(text, Loader=_Loader))
    except (yaml.YAMLError, ValueError) as exc:
        raise BadTaskFile(f"{file}: not valid {_kind(file)}: {_one_line(exc)}") from None
    except RecursionError:
        raise BadTaskFile(f"{file}: values nested too deeply to read.") from None
    items = [item for item in items if item is not None]  # an empty document (trailing ---)
    if len(items) > MAX_DOCUMENTS:
        raise BadTaskFile(f"{file}: {len(items)} tasks; at most {MAX_DOCUMENTS} in one file.")
    for index, item in enumerate(items):
        yield (str(file) if len(items) == 1 else f"{file}#{index + 1}"), item


def _bounded_text(file: Path) -> str:
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise BadTaskFile(f"{file}: cannot be read ({exc.strerror}).") from None
    if size > MAX_FILE_BYTES:
        raise BadTaskFile(
            f"{file}: {size} bytes; a task file may be at most {MAX_FILE_BYTES} bytes "
            "(1 MiB). Split it, or move large data into a step that fetches it."
        )
    try:
        return file.read_bytes()[: MAX_FILE_BYTES + 1].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadTaskFile(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise BadTaskFile(f"{file}: cannot be read ({exc.strerror}).") from None


def _kind(file: Path) -> str:
    return "JSON" if file.suffix == ".json" else "YAML"


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
