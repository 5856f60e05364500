"""The static check that a template uses a secret only whole."""

import pytest

from taskloom.access import Access, parse_grants
from taskloom.domain.tasks import TaskSpec
from taskloom.errors import InvalidInputs, TaskloomError
from taskloom.tasks.secret_use import check_grants, is_secret_reference, misuse_of_secrets


@pytest.mark.parametrize(
    "template",
    [
        "{{ secrets.T }}",
        "Bearer {{ secrets.T }}",
        "{{ secrets['T'] }}",
        "{% if ready %}{{ secrets.T }}{% endif %}",
        "{% for i in items %}{{ i }}={{ secrets.T }};{% endfor %}",
        "{{ steps.secrets.output|upper }}",
        "no template at all",
    ],
)
def test_whole_uses_pass(template: str) -> None:
    """A secret that stands whole, wherever its output goes straight into the text, passes."""
    assert misuse_of_secrets(template) is None


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{ secrets.T|reverse }}", "passed through the filter 'reverse'"),
        ("{{ secrets.T[::-1] }}", "indexed, sliced or read into"),
        ("{{ secrets.T == 'x' }}", "compared"),
        ("{{ 'a' ~ secrets.T }}", "joined with ~"),
        ("{{ secrets.T is string }}", "tested with 'is string'"),
        ("{% for c in secrets.T %}{{ c }}{% endfor %}", "looped over or used in a loop"),
        ("{{ secrets.items() }}", "called or passed to a call"),
        ("{{ secrets }}", "used bare (the whole mapping), not as secrets.NAME"),
        ("{% filter upper %}{{ secrets.T }}{% endfilter %}", "captured by a block"),
        ("{% set x %}{{ secrets.T }}{% endset %}", "assigned or captured"),
        ("{% set secrets = {} %}", "reassigned"),
    ],
)
def test_transforms_are_named(template: str, why: str) -> None:
    """Each way of computing over a secret is refused, saying how it was used."""
    assert misuse_of_secrets(template) == why


def test_only_one_whole_reference_is_a_secret_reference() -> None:
    """A webhook URL may be exactly one secret reference, nothing around it."""
    assert is_secret_reference("{{ secrets.HOOK }}")
    assert not is_secret_reference("https://x/{{ secrets.HOOK }}")
    assert not is_secret_reference("{{ secrets.HOOK|trim }}")


def test_grants_parse_and_refuse_ungranted_principals() -> None:
    """Grants name principals per secret; with several principals others are refused by field."""
    assert parse_grants("A=alice, bob; B=carol") == {
        "A": frozenset({"alice", "bob"}),
        "B": frozenset({"carol"}),
    }
    access = Access(frozenset({"alice", "bob"}), frozenset(), parse_grants("A=alice"), "local")
    spec = TaskSpec.model_validate(
        {
            "name": "t",
            "steps": [{"id": "s", "tool": "render", "args": {"template": "{{ secrets.A }}"}}],
        }
    )
    check_grants(spec, owner="alice", access=access)
    with pytest.raises(InvalidInputs, match=r"steps\[0\]\.args\.template.*not granted to 'bob'"):
        check_grants(spec, owner="bob", access=access)


def test_a_malformed_grant_names_the_setting() -> None:
    """A grant without principals is refused, naming TASKLOOM_SECRET_GRANTS."""
    with pytest.raises(TaskloomError, match="TASKLOOM_SECRET_GRANTS entry 'A='"):
        parse_grants("A=")
