"""`render`: fill a Jinja2 text template."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from taskloom_tools.base import StepTool, StepToolError, ToolArgs, ToolContext, typed_run

DESCRIPTION = """\
Render a Jinja2 template to text, e.g. to build a report or a message from earlier steps' outputs.

The template sees `steps`, `task` and `run` (like step arguments do) plus every key of `data`.
It runs in a sandbox; an undefined name is an error (use `{% if x is defined %}` or
`x | default("n/a")` for optional values). Output: the rendered text (a string).

Example: {"template": "{% for i in items %}- {{ i.name }}: {{ i.price }}\\n{% endfor %}",
"data": {"items": "{{ steps.fetch.output.json.items }}"}} returns "- lamp: 19.9\\n- mug: 7.5\\n".
`template` is rendered by this tool only (once), so it may use `data` keys directly; `data`
values are filled in from earlier steps first, like any other step argument."""


class RenderArgs(ToolArgs):
    template: str = Field(description="a Jinja2 template")
    data: dict[str, Any] | None = Field(
        default=None, description="extra values the template can use by name"
    )


async def render(args: RenderArgs, ctx: ToolContext) -> str:
    # In-process, for direct callers; the runner calls `compute` in a limited worker instead.
    return compute(args, ctx.template_context)


def compute(args: BaseModel, template_context: Mapping[str, Any]) -> str:
    """The tool's pure computation: `args.template` rendered over the context and `data`."""
    if not isinstance(args, RenderArgs):
        raise TypeError(f"expected RenderArgs, got {type(args).__name__}")
    return render_text(args.template, {**template_context, **(args.data or {})})


def render_text(template: str, values: dict[str, Any]) -> str:
    """Render `template` in the sandbox, turning Jinja2's errors into `StepToolError`s."""
    from jinja2 import TemplateError, TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError

    from taskloom_tools.template_sandbox import environment

    try:
        return environment().from_string(template).render(values)
    except TemplateSyntaxError as exc:
        raise StepToolError(
            f"The template has a syntax error on line {exc.lineno}: {exc.message}. Fix the "
            "template (Jinja2: {{ value }}, {% if ... %}{% endif %}, {% for ... %}{% endfor %})."
        ) from exc
    except UndefinedError as exc:
        raise StepToolError(
            f"The template uses a value that is not defined: {exc.message}. Pass it in data, "
            "or make it optional with | default(...)."
        ) from exc
    except SecurityError as exc:
        raise StepToolError(f"The template did something the sandbox forbids: {exc}.") from exc
    except TemplateError as exc:
        raise StepToolError(f"The template failed while rendering: {exc}.") from exc
    except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
        raise StepToolError(
            f"The template failed while rendering: {type(exc).__name__}: {exc}. Check the "
            "values it uses."
        ) from exc


TOOL = StepTool(
    name="render",
    description=DESCRIPTION,
    args_model=RenderArgs,
    run=typed_run(RenderArgs, render),
    read_only=True,
    open_world=False,
    raw_args=frozenset({"template"}),
    compute=compute,
)
