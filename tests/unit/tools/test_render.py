"""render: sandboxed Jinja2 templates."""

import httpx
import pytest

from taskloom_tools.base import StepToolError, ToolContext
from taskloom_tools.render import TOOL


@pytest.fixture
def plain_ctx(http: httpx.AsyncClient) -> ToolContext:
    return ToolContext(http=http, template_context={"task": {"name": "prices"}})


async def test_renders_values_from_data(plain_ctx: ToolContext) -> None:
    """Keys of data are template variables."""
    template = "{% for i in items %}- {{ i.name }}: {{ i.price }}\n{% endfor %}"
    data = {"items": [{"name": "lamp", "price": 19.9}, {"name": "mug", "price": 7.5}]}
    out = await TOOL.invoke({"template": template, "data": data}, plain_ctx)
    assert out == "- lamp: 19.9\n- mug: 7.5\n"


async def test_sees_the_run_context_and_data_overrides_it(plain_ctx: ToolContext) -> None:
    """The context's values are visible, and a data key of the same name wins."""
    template = "{{ task.name }} / {{ run }}"
    out = await TOOL.invoke({"template": template, "data": {"run": "r1"}}, plain_ctx)
    assert out == "prices / r1"


async def test_does_not_escape_html(plain_ctx: ToolContext) -> None:
    """Autoescaping is off: output is text, not HTML."""
    out = await TOOL.invoke({"template": "{{ v }}", "data": {"v": "<b>&</b>"}}, plain_ctx)
    assert out == "<b>&</b>"


async def test_an_undefined_value_is_an_error(plain_ctx: ToolContext) -> None:
    """Using a name that is not defined fails instead of rendering nothing."""
    with pytest.raises(StepToolError, match="not defined: 'price' is undefined"):
        await TOOL.invoke({"template": "cost: {{ price }}"}, plain_ctx)


async def test_a_syntax_error_names_the_line(plain_ctx: ToolContext) -> None:
    """A template syntax error reports its line."""
    with pytest.raises(StepToolError, match="syntax error on line 2"):
        await TOOL.invoke({"template": "ok\n{% for x in %}"}, plain_ctx)


async def test_the_sandbox_blocks_internal_attributes(plain_ctx: ToolContext) -> None:
    """Reaching Python internals from a template is refused."""
    with pytest.raises(StepToolError, match="sandbox forbids"):
        await TOOL.invoke({"template": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}, plain_ctx)


@pytest.mark.parametrize("template", ["{{ 'x' * 10000000 }}", "{{ 9 ** 99999 }}"])
async def test_the_sandbox_blocks_huge_values(plain_ctx: ToolContext, template: str) -> None:
    """Repeating a string or raising to a power beyond the bounds is refused."""
    with pytest.raises(StepToolError, match="sandbox forbids"):
        await TOOL.invoke({"template": template}, plain_ctx)


async def test_a_runtime_error_is_reported(plain_ctx: ToolContext) -> None:
    """A failing operation inside the template is reported with its kind."""
    with pytest.raises(StepToolError, match="ZeroDivisionError"):
        await TOOL.invoke({"template": "{{ 1 / 0 }}"}, plain_ctx)


async def test_a_data_key_named_like_a_method_is_the_key(plain_ctx: ToolContext) -> None:
    """`rows.items` in a template is the key `items`, not the dict's method."""
    data = {"rows": {"items": ["lamp", "mug"]}}
    out = await TOOL.invoke({"template": "{{ rows.items | join(',') }}", "data": data}, plain_ctx)
    assert out == "lamp,mug"
