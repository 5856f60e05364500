"""The one definition of a task's fields: the patch is derived from it, field for field."""

from typing import get_args

from taskloom.domain.tasks import SHORTHANDS, ClearableField, TaskFields, TaskPatch, TaskSpec


def test_the_patch_takes_every_task_field_and_nothing_else() -> None:
    """TaskPatch has each TaskFields field (optional, same description) but create_task's
    instruction shorthand, plus enabled and clear."""
    fields = set(TaskFields.model_fields) - SHORTHANDS
    assert set(TaskPatch.model_fields) == fields | {"enabled", "clear"}
    for name, field in TaskFields.model_fields.items():
        if name in SHORTHANDS:
            continue
        assert not TaskPatch.model_fields[name].is_required(), name
        assert TaskPatch.model_fields[name].description == field.description, name


def test_clear_names_exactly_the_optional_fields() -> None:
    """`clear` accepts every task field whose value may be absent (default None), and no other."""
    optional = {name for name, f in TaskFields.model_fields.items() if f.default is None}
    optional -= SHORTHANDS  # an instruction stands for steps; it is never stored to clear
    assert set(get_args(ClearableField)) == optional


def test_enabled_is_input_only() -> None:
    """enabled maps to the status a new task gets and is not one of the task's fields."""
    spec = TaskSpec.model_validate({"name": "n", "steps": [{"id": "a", "tool": "wait"}]})
    paused = spec.model_copy(update={"enabled": False})
    assert (spec.status.value, paused.status.value) == ("active", "paused")
    assert "enabled" not in TaskFields.model_fields
    assert "enabled" not in spec.fields()
