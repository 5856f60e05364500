"""The bounded sandbox: every operator, filter and string method that can build a huge value
from tiny input is refused before it allocates, in argument templates and in `render`."""

import pytest

from taskloom.domain.templates import TemplateError, resolve_args
from taskloom_tools.base import StepToolError
from taskloom_tools.render import render_text

# Each would allocate far more than the 1,000,000 item/character bound if it ran.
HUGE = [
    pytest.param("{{ 'a'|center(200000000) }}", "center to width 200,000,000", id="center"),
    pytest.param("{{ 'a'.center(200000000) }}", "center to width", id="center-method"),
    pytest.param("{{ 'a'.ljust(10**9) }}", "ljust to width", id="ljust"),
    pytest.param("{{ 'a'.rjust(10**9) }}", "rjust to width", id="rjust"),
    pytest.param("{{ '1'.zfill(10**9) }}", "zfill to width", id="zfill"),
    pytest.param("{{ 'a\tb'.expandtabs(10**9) }}", "expandtabs to width", id="expandtabs"),
    pytest.param("{{ '%0999999999d' % 1 }}", "formatting with %", id="percent"),
    pytest.param("{{ '%*d' % (999999999, 1) }}", "formatting with %", id="percent-star"),
    pytest.param("{{ '%0999999999d'|format(1) }}", "formatting with %", id="format-filter"),
    pytest.param("{{ '{:>999999999}'.format(1) }}", "formatting with format()", id="format"),
    pytest.param(
        "{{ '{:>{w}}'.format(1, w=999999999) }}", "formatting with format()", id="format-nested"
    ),
    pytest.param("{{ 'ab\ncd'|indent(999999999) }}", "indent to width", id="indent"),
    pytest.param(
        "{{ ('x ' * 400000)|wordwrap(1, wrapstring='-' * 100) }}", "wordwrap", id="wordwrap"
    ),
    pytest.param("{{ 'x' * 2000000 }}", "repeating a value 2,000,000 times", id="repeat"),
    pytest.param("{{ [[['a' * 1000] * 1000] * 1000] }}", "repeating a value", id="nested-repeat"),
    pytest.param("{{ [range(100000)|list] * 20 }}", "repeating a value 20 times", id="list-repeat"),
    pytest.param("{{ (range(1000)|list) * 10**9 }}", "repeating a value", id="huge-times"),
    pytest.param("{{ range(1000)|join('x' * 10000) }}", "joining 1,000 items", id="join"),
    pytest.param(
        "{{ '-----'.join(range(100000)|map('string')|list) }}",
        "joining 100,000 items",
        id="join-method",
    ),
    pytest.param("{{ ('x' * 100000)|replace('x', 'y' * 20) }}", "replacing 100,000", id="replace"),
    pytest.param(
        "{{ ('x' * 100000).replace('x', 'y' * 20) }}", "replacing 100,000", id="replace-method"
    ),
    pytest.param("{{ [1]|batch(10**9, 0)|list }}", "batch to width", id="batch"),
    pytest.param("{{ [1]|slice(10**9)|list }}", "slice to width", id="slice"),
    pytest.param("{{ ('x' * 600000) + ('y' * 600000) }}", "joining two values with +", id="plus"),
    pytest.param("{{ {'a': 1}|tojson(indent=100000) }}", "tojson indent 100000", id="tojson"),
    pytest.param("{{ 10 ** 10000000 }}", "is too large (exponent over", id="power"),
]

# Ordinary uses of the same operators stay allowed.
FINE = [
    ("{{ 'ok'|center(10) }}", "    ok    "),
    ("{{ 'a'.ljust(3, '.') }}", "a.."),
    ("{{ '%5d' % 3 }}", "    3"),
    ("{{ '%s=%s'|format('a', 1) }}", "a=1"),
    ("{{ '{:>4}'.format(7) }}", "   7"),
    ("{{ [1, 2]|join(', ') }}", "1, 2"),
    ("{{ 'a b'|replace('a', 'c') }}", "c b"),
    ("{{ [1, 2, 3]|batch(2)|list }}", [[1, 2], [3]]),
    ("{{ 'ab' * 3 }}", "ababab"),
    ("{{ range(100000)|list|length }}", 100000),
    ("{{ 'x\ny'|indent(2, first=True) }}", "  x\n  y"),
]


@pytest.mark.parametrize(("template", "expected"), HUGE)
def test_argument_template_is_refused_before_allocating(template: str, expected: str) -> None:
    """An argument template that would build a huge value fails naming what was refused."""
    with pytest.raises(TemplateError) as caught:
        resolve_args({"x": template}, {}, step_id="s")
    assert expected in caught.value.message
    assert "not allowed" in caught.value.message


@pytest.mark.parametrize(("template", "expected"), HUGE)
def test_render_template_is_refused_before_allocating(template: str, expected: str) -> None:
    """The render tool's sandbox refuses the same templates."""
    with pytest.raises(StepToolError) as caught:
        render_text(template, {})
    assert expected in caught.value.message


@pytest.mark.parametrize(("template", "expected"), FINE)
def test_ordinary_use_is_allowed(template: str, expected: object) -> None:
    """Small widths, repeats, joins and formats give their usual result."""
    assert resolve_args({"x": template}, {}, step_id="s")["x"] == expected


def test_range_over_the_jinja_limit_is_refused() -> None:
    """range() over Jinja2's own bound (100,000) is refused by the sandbox."""
    with pytest.raises(TemplateError, match="Range too big"):
        resolve_args({"x": "{{ range(10**9)|list }}"}, {}, step_id="s")
