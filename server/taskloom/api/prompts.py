"""The task-authoring prompt: the goal, the time and timezone, and every step tool in full."""

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastmcp import FastMCP
from pydantic import Field

from taskloom.services import Services
from taskloom.step_tools import StepToolInfo

AUTHOR_PROMPT = """You are setting up a Taskloom task for this goal:

{goal}

It is now {now_local} in {timezone}, the server's default timezone ({now_utc} in UTC).
A trigger without a timezone is evaluated in {timezone}; a time in the past never fires.

The step tools a step may call (`tool` is the name; `args` takes the arguments listed):

{tools}

Do this:
1. Pick the fewest steps that reach the goal. Each step is {{"id", "tool", "args"}}; args may use
   earlier outputs as Jinja2, e.g. "{{{{ steps.fetch.output.json }}}}" (one expression keeps its
   JSON type; use `| tojson` to embed objects in text). Secrets: "{{{{ secrets.NAME }}}}".
2. Choose a trigger ({schedule_hint}); timezone defaults to {timezone}. Check it with
   preview_schedule.
3. Test the chain with dry_run and fix what fails.
4. Call create_task, then tell the user the next fire times and how to see results
   (task_history, get_run, or the resource taskloom://tasks/<id>/output)."""

SCHEDULE_HINT = 'cron + timezone, {"every": "30m"}, {"at": ...}, {"event": ...}'


def register_prompts(mcp: FastMCP, s: Services) -> None:
    @mcp.prompt
    async def author_task(
        goal: Annotated[str, Field(description="what the user wants done, and when")],
    ) -> str:
        """Guide for turning a goal into a Taskloom task with the available step tools."""
        tools = await s.catalog.list()
        now = s.clock.now()
        zone = s.settings.timezone
        return AUTHOR_PROMPT.format(
            goal=goal,
            now_local=now.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds"),
            now_utc=now.isoformat(timespec="seconds"),
            timezone=zone,
            tools="\n\n".join(describe_tool(t) for t in tools),
            schedule_hint=SCHEDULE_HINT,
        )


def describe_tool(tool: StepToolInfo) -> str:
    """A step tool's whole description, then one line per argument."""
    schema = tool.input_schema
    required = set(schema.get("required", []))
    properties: dict[str, Any] = schema.get("properties", {})
    lines = [f"### {tool.name}", tool.description.strip(), "Arguments:"]
    lines += [describe_argument(n, p, n in required) for n, p in properties.items()]
    if not properties:
        lines[-1] = "Arguments: none."
    return "\n".join(lines)


def describe_argument(name: str, schema: dict[str, Any], required: bool) -> str:
    """`- name (type, required | default X): description`."""
    need = "required" if required else "optional"
    if not required and "default" in schema:
        need = f"default {schema['default']!r}"
    text = f"- {name} ({type_of(schema)}, {need})"
    return f"{text}: {schema['description']}" if schema.get("description") else text


def type_of(schema: dict[str, Any]) -> str:
    """A JSON schema's type in a few words: `string`, `"GET" | "POST"`, `array of string`."""
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return " | ".join(type_of(o) for o in options)
    kind = schema.get("type", "any")
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {type_of(schema['items'])}"
    return " | ".join(kind) if isinstance(kind, list) else str(kind)
