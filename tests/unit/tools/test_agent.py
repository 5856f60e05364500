"""The agent tool's pure parts: API tool names, its arguments, parsing a structured answer."""

import pytest
from pydantic import ValidationError

from taskloom_tools.agent import AgentArgs, api_name, parse_answer

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


@pytest.mark.parametrize(
    ("step_tool", "expected"),
    [("http_request", "http_request"), ("mail/list_unread", "mail__list_unread"),
     ("a.b/c d", "a_b__c_d")],
)  # fmt: skip
def test_api_names_fit_the_api_pattern(step_tool: str, expected: str) -> None:
    """A step tool's name becomes letters, digits, '_' and '-' only ('/' as '__')."""
    assert api_name(step_tool) == expected


@pytest.mark.parametrize("tool", ["agent", "render"])
def test_an_agent_cannot_be_given_agent_or_render(tool: str) -> None:
    """agent (nesting) and render (templates that could read secrets) are refused by name."""
    with pytest.raises(ValidationError, match=f"'{tool}' cannot be an agent's tool"):
        AgentArgs(instruction="x", tools=[tool])


def test_an_invalid_output_schema_is_refused() -> None:
    """An output_schema that is not a JSON schema is refused, saying why."""
    with pytest.raises(ValidationError, match="not a valid JSON schema"):
        AgentArgs(instruction="x", output_schema={"type": "nonsense"})


@pytest.mark.parametrize(
    ("text", "value", "problem"),
    [
        ('{"n": 2}', {"n": 2}, None),
        ('```json\n{"n": 3}\n```', {"n": 3}, None),
        ("two", None, "it is not JSON"),
        ('{"n": "2"}', None, "at n: '2' is not of type 'integer'"),
        ("{}", None, "at (root): 'n' is a required property"),
    ],
    ids=["plain", "fenced", "prose", "wrong-type", "missing"],
)
def test_a_structured_answer_is_parsed_and_checked(
    text: str, value: object, problem: str | None
) -> None:
    """The answer is JSON (a code fence allowed) matching the schema, or the reason it is not."""
    parsed, why = parse_answer(text, SCHEMA)
    assert parsed == value
    assert (why or "").startswith(problem or "")
    assert (why is None) == (problem is None)
