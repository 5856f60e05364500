"""Args templates: native types, text rendering, error messages, references, secrets, sandbox."""

from typing import Any

import pytest

from taskloom.domain.templates import (
    MAX_RENDERED_CHARS,
    Secrets,
    TemplateError,
    has_template,
    referenced_secrets,
    referenced_steps,
    resolve_args,
)
from taskloom.errors import TaskloomError

TOKEN = "s3cr3t-token/value"

CONTEXT: dict[str, Any] = {
    "steps": {
        "fetch": {
            "output": {"status": 200, "headers": {}, "text": '{"a": 1}', "json": {"price": 9.5}},
            "status": "succeeded",
            "error": None,
        },
        "a": {
            "output": {"count": 3, "rows": [{"n": 1}, {"n": 2}], "ok": True, "gone": None},
            "status": "succeeded",
            "error": None,
        },
    },
    "task": {"id": "tsk_1", "name": "Digest"},
    "run": {"id": "run_1", "fire_time": "2026-01-05T09:00:00+00:00", "trigger": "schedule"},
    "secrets": {"TOKEN": TOKEN},
    "event": None,
}


def resolve(value: Any, context: dict[str, Any] = CONTEXT) -> Any:
    return resolve_args({"x": value}, context, step_id="s")["x"]


def failure(value: Any) -> str:
    with pytest.raises(TemplateError) as caught:
        resolve(value)
    return caught.value.message


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("{{ steps.a.output.count }}", 3, id="int"),
        pytest.param("{{ steps.a.output.ok }}", True, id="bool"),
        pytest.param("{{ steps.a.output.gone }}", None, id="none"),
        pytest.param("{{ steps.fetch.output.json.price }}", 9.5, id="float"),
        pytest.param("{{ steps.a.output.rows }}", [{"n": 1}, {"n": 2}], id="list"),
        pytest.param("{{ steps.fetch.output.json }}", {"price": 9.5}, id="dict"),
        pytest.param("{{ event }}", None, id="event-none"),
        pytest.param("{{steps.a.output.count}}", 3, id="no-spaces"),
        pytest.param("{{- steps.a.output.count -}}", 3, id="whitespace-control"),
        pytest.param("{{ steps.a.output.count * 2 }}", 6, id="arithmetic"),
        pytest.param("{{ -1 }}", -1, id="negative-literal"),
        pytest.param("{{ 1, 2 }}", [1, 2], id="bare-tuple-to-list"),
        pytest.param("{{ steps['a'].output['count'] }}", 3, id="item-syntax"),
    ],
)
def test_single_expression_keeps_its_native_type(template: str, expected: Any) -> None:
    """A string that is exactly one expression evaluates to the expression's own value."""
    assert resolve(template) == expected
    assert type(resolve(template)) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("n={{ steps.a.output.count }}", "n=3", id="prefix"),
        pytest.param(" {{ steps.a.output.count }}", " 3", id="outer-space"),
        pytest.param("{{ steps.a.output.count }}{{ task.name }}", "3Digest", id="two-expressions"),
        pytest.param("{% if steps.a.output.ok %}yes{% endif %}", "yes", id="statement"),
        pytest.param("{{ task.name }}\n", "Digest\n", id="trailing-newline-kept"),
        pytest.param("{{ run.fire_time }} UTC", "2026-01-05T09:00:00+00:00 UTC", id="run"),
        pytest.param("{% for r in steps.a.output.rows %}{{ r.n }},{% endfor %}", "1,2,", id="loop"),
    ],
)
def test_mixed_text_renders_to_a_string(template: str, expected: str) -> None:
    """A template with text or several tags around its expressions renders to a string."""
    assert resolve(template) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(7, id="int"),
        pytest.param(None, id="none"),
        pytest.param(True, id="bool"),
        pytest.param("plain text", id="plain"),
        pytest.param("{ not: a template }", id="single-brace"),
        pytest.param("{# a comment #}", id="comment-only"),
    ],
)
def test_values_without_templates_pass_through(value: Any) -> None:
    """A value with no `{{` or `{%` comes back unchanged."""
    assert resolve(value) == value


def test_templates_inside_nested_dicts_and_lists_are_resolved() -> None:
    """Every string leaf is rendered, however deep it sits in dicts and lists."""
    args = {"body": {"items": ["{{ steps.a.output.count }}", {"name": "{{ task.name }}!"}]}}

    resolved = resolve_args(args, CONTEXT, step_id="s")

    assert resolved == {"body": {"items": [3, {"name": "Digest!"}]}}


def test_resolving_leaves_the_args_unchanged() -> None:
    """Resolving returns new containers and leaves the templates it was given intact."""
    args = {"items": ["{{ steps.a.output.count }}"]}

    resolve_args(args, CONTEXT, step_id="s")

    assert args == {"items": ["{{ steps.a.output.count }}"]}


def test_native_result_is_a_copy_of_the_context() -> None:
    """Changing a resolved dict does not change the earlier step's output."""
    resolved = resolve("{{ steps.fetch.output.json }}")

    resolved["price"] = 0

    assert CONTEXT["steps"]["fetch"]["output"]["json"] == {"price": 9.5}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param(
            "{{ steps.a.output | tojson }}",
            '{"count": 3, "rows": [{"n": 1}, {"n": 2}], "ok": true, "gone": null}',
            id="tojson",
        ),
        pytest.param('{{ "it\'s" | tojson }}', '"it\'s"', id="tojson-not-html-escaped"),
        pytest.param("{{ steps.fetch.output.text | fromjson }}", {"a": 1}, id="fromjson"),
        pytest.param("{{ steps.a.output.missing | default('none') }}", "none", id="default"),
        pytest.param("{{ steps.a.output.rows | length }}", 2, id="length"),
    ],
)
def test_filters_apply(template: str, expected: Any) -> None:
    """The JSON filters and Jinja's own filters work on context values."""
    assert resolve(template) == expected


def test_tojson_returns_a_plain_str() -> None:
    """`tojson` gives a plain `str`, not a markup-safe subclass."""
    assert type(resolve("{{ steps.a.output | tojson }}")) is str


def test_fromjson_on_invalid_text_is_a_template_error() -> None:
    """Parsing text that is not JSON fails with a message saying so."""
    assert "fromjson: the value is not JSON" in failure("{{ task.name | fromjson }}")


def test_template_error_is_a_taskloom_error() -> None:
    """A template failure belongs to the error hierarchy whose messages are shown to clients."""
    assert issubclass(TemplateError, TaskloomError)


def test_error_names_step_path_and_expression() -> None:
    """The message says which step, which argument and which template failed."""
    with pytest.raises(TemplateError) as caught:
        resolve_args({"body": {"url": "{{ steps.fetch.output.jsn }}"}}, CONTEXT, step_id="post")

    assert caught.value.message.startswith(
        "step 'post', args.body.url: template '{{ steps.fetch.output.jsn }}' failed: "
    )
    assert (caught.value.step_id, caught.value.path) == ("post", "args.body.url")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param(
            "{{ steps.fetch.output.jsn }}",
            "steps.fetch.output has no attribute 'jsn'; available: status, headers, text, json",
            id="missing-key",
        ),
        pytest.param(
            "{{ steps.later.output }}",
            "steps has no attribute 'later'; available: fetch, a "
            "(a step sees only the steps before it)",
            id="missing-step",
        ),
        pytest.param(
            "{{ stpes.a }}",
            "'stpes' is undefined; available: steps, task, run, secrets, event",
            id="missing-name",
        ),
        pytest.param(
            "{{ steps.a.output.rows[5] }}",
            "steps.a.output.rows has no item 5; it is a list of 2 items",
            id="index-out-of-range",
        ),
        pytest.param(
            "{{ steps.a.output.gone.x }}",
            "steps.a.output.gone has no attribute 'x'; it is null",
            id="null",
        ),
        pytest.param(
            "total: {{ steps.a.output.cnt + 1 }}",
            "steps.a.output has no attribute 'cnt'; available: count, rows, ok, gone",
            id="inside-text",
        ),
        pytest.param(
            "{{ [steps.a.output.cnt] }}",
            "steps.a.output has no attribute 'cnt'; available: count, rows, ok, gone",
            id="inside-a-list-literal",
        ),
        pytest.param(
            "{% for r in steps.a.output.rows %}{{ r.m }}{% endfor %}",
            "dict has no attribute 'm'; available: n",
            id="loop-variable",
        ),
    ],
)
def test_undefined_names_what_is_missing_and_what_is_available(
    template: str, expected: str
) -> None:
    """A missing name, key or index fails and the message lists what exists there instead."""
    assert failure(template).endswith(expected)


def test_unknown_secret_says_how_to_set_it() -> None:
    """Using a secret that is not set tells the user where to set it."""
    assert failure("{{ secrets.SLACK_URL }}").endswith(
        "secret 'SLACK_URL' is not set: set TASKLOOM_SECRET_SLACK_URL or add it to the secrets file"
    )


def test_secret_resolves_into_the_args() -> None:
    """A template sees the secret's value, so the tool receives it."""
    assert resolve("Bearer {{ secrets.TOKEN }}") == f"Bearer {TOKEN}"


def test_secrets_argument_supplies_secrets_missing_from_the_context() -> None:
    """Without `secrets` in the context, the `Secrets` passed in are what templates see."""
    context = {key: value for key, value in CONTEXT.items() if key != "secrets"}

    resolved = resolve_args(
        {"x": "{{ secrets['TOKEN'] }}"}, context, step_id="s", secrets=Secrets({"TOKEN": TOKEN})
    )

    assert resolved == {"x": TOKEN}


def test_error_message_never_shows_a_secret_value() -> None:
    """A secret value that ends up in an error message is replaced by its name."""
    message = failure("{{ steps[secrets.TOKEN] }}")

    assert TOKEN not in message
    assert "[secret:TOKEN]" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(TOKEN, "[secret:TOKEN]", id="whole-string"),
        pytest.param(f"Bearer {TOKEN}!", "Bearer [secret:TOKEN]!", id="inside-a-string"),
        pytest.param(
            {"headers": [f"a {TOKEN}", {"deep": [TOKEN]}]},
            {"headers": ["a [secret:TOKEN]", {"deep": ["[secret:TOKEN]"]}]},
            id="nested",
        ),
        pytest.param({TOKEN: 1}, {"[secret:TOKEN]": 1}, id="dict-key"),
        pytest.param((TOKEN,), ("[secret:TOKEN]",), id="tuple"),
        pytest.param(
            "https://x.test/?t=s3cr3t-token%2Fvalue", "https://x.test/?t=[secret:TOKEN]", id="url"
        ),
        pytest.param("a=abc", "a=abc", id="short-secret-kept"),
        pytest.param("xs3cr3t-token/value-2y", "x[secret:LONGER]y", id="longest-first"),
        pytest.param(42, 42, id="non-string"),
    ],
)
def test_redact_replaces_secret_values_with_their_names(value: Any, expected: Any) -> None:
    """Every occurrence of a secret value of four or more characters becomes `[secret:NAME]`."""
    secrets = Secrets({"TOKEN": TOKEN, "LONGER": f"{TOKEN}-2", "SHORT": "abc"})

    assert secrets.redact(value) == expected


def test_secrets_repr_shows_names_only() -> None:
    """Printing a `Secrets` shows the names and never the values."""
    assert repr(Secrets({"TOKEN": TOKEN})) == "Secrets(names=['TOKEN'])"


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{{ steps.__class__ }}", id="dunder-on-context"),
        pytest.param("{{ ''.__class__.__mro__ }}", id="mro"),
        pytest.param("{{ cycler.__init__.__globals__ }}", id="globals"),
        pytest.param("{{ steps.a.output.rows.append(1) }}", id="mutate-list"),
        pytest.param("{{ steps.fetch.output.update({}) }}", id="mutate-dict"),
    ],
)
def test_sandbox_escape_attempts_fail(template: str) -> None:
    """Templates cannot reach dunder attributes or mutate the context."""
    assert "not allowed: access to attribute" in failure(template)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("{{ 'x' * 2000000 }}", "repeating a value 2,000,000 times", id="repeat"),
        pytest.param("{{ 10 ** 10000000 }}", "is too large (exponent over", id="power"),
        pytest.param(
            "{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}",
            f"the rendered text is over the {MAX_RENDERED_CHARS} char limit",
            id="rendered-text",
        ),
    ],
)
def test_output_over_one_megabyte_fails(template: str, expected: str) -> None:
    """A template that would build more than 1 MB fails instead of exhausting memory."""
    assert expected in failure(template)


def test_syntax_error_names_the_expression_and_the_parse_message() -> None:
    """A template that does not parse fails with the parser's message."""
    assert failure("{{ steps.a.output. }}").endswith(
        "template '{{ steps.a.output. }}' failed: syntax error: expected name or number"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("{{ steps.fetch.output.json }}", {"fetch"}, id="attribute"),
        pytest.param("{{ steps['fetch'].output }}", {"fetch"}, id="item"),
        pytest.param("{{ steps.fetch.output | tojson }}", {"fetch"}, id="filter"),
        pytest.param("{% for r in steps.a.output %}{{ r }}{% endfor %}", {"a"}, id="loop"),
        pytest.param("{% if steps.a.status == 'failed' %}x{% endif %}", {"a"}, id="condition"),
        pytest.param("{{ steps.a.output }} {{ steps.b.output }}", {"a", "b"}, id="several"),
        pytest.param(
            {"h": ["{{ steps.a.output }}", {"k": "{{ steps.b }}"}]}, {"a", "b"}, id="deep"
        ),
        pytest.param("{{ task.name }} {{ run.id }} {{ secrets.X }}", set(), id="no-steps"),
        pytest.param("{{ steps[name] }}", set(), id="dynamic-key"),
        pytest.param(3, set(), id="not-a-string"),
    ],
)
def test_referenced_steps_finds_step_ids(value: Any, expected: set[str]) -> None:
    """Every `steps.X` and `steps['X']` in the templates is reported, whatever surrounds it."""
    assert referenced_steps(value) == expected


def test_referenced_steps_reports_syntax_errors_with_their_path() -> None:
    """A template that does not parse is a `TemplateError` naming the path and the parse message."""
    with pytest.raises(TemplateError) as caught:
        referenced_steps({"body": ["ok", "{% if %}"]}, step_id="post")

    assert caught.value.message.startswith("step 'post', args.body[1]: template '{% if %}' failed")
    assert "syntax error: " in caught.value.message


def test_referenced_steps_reports_unknown_filters() -> None:
    """A filter that does not exist is reported before the task ever runs."""
    with pytest.raises(TemplateError, match="No filter named 'nosuch'"):
        referenced_steps("{{ steps.a.output | nosuch }}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("Bearer {{ secrets.TOKEN }}", {"TOKEN"}, id="attribute"),
        pytest.param({"u": "{{ secrets['SLACK_URL'] }}"}, {"SLACK_URL"}, id="item"),
        pytest.param("{{ steps.secrets.output }}", set(), id="step-named-secrets"),
    ],
)
def test_referenced_secrets_finds_secret_names(value: Any, expected: set[str]) -> None:
    """Every `secrets.X` and `secrets['X']` in the templates is reported."""
    assert referenced_secrets(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("{{ x }}", True, id="expression"),
        pytest.param("{% if x %}{% endif %}", True, id="statement"),
        pytest.param("{x}", False, id="single-brace"),
        pytest.param("plain", False, id="plain"),
    ],
)
def test_has_template_detects_jinja_syntax(value: str, expected: bool) -> None:
    """Only `{{` or `{%` marks a string as a template."""
    assert has_template(value) is expected


KEYED = {"items": [1, 2], "keys": "k", "values": {"get": "g"}, "__class__": "data"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("{{ data.items }}", [1, 2], id="items"),
        pytest.param("{{ data.keys }}", "k", id="keys"),
        pytest.param("{{ data['items'] }}", [1, 2], id="subscript"),
        pytest.param("{{ data.values.get }}", "g", id="nested"),
        pytest.param("{{ data.__class__ }}", "data", id="dunder-named-key"),
        pytest.param("{{ data.items | length }}", 2, id="filtered"),
    ],
)
def test_a_mapping_key_wins_over_a_method_of_the_same_name(template: str, expected: Any) -> None:
    """`output.json.items` is the key `items`, never the dict's method."""
    assert resolve(template, {**CONTEXT, "data": KEYED}) == expected


def test_attributes_still_work_where_there_is_no_key() -> None:
    """A name that is no key falls back to the sandbox's attribute lookup."""
    assert resolve("{{ task.name.upper() }}") == "DIGEST"
    assert resolve("{{ task.items() | list | length }}") == 2


def test_a_missing_key_still_blocks_unsafe_attributes() -> None:
    """Without such a key, dunder attributes of a mapping stay out of reach."""
    assert "not allowed: access to attribute" in failure("{{ task.__class__ }}")
