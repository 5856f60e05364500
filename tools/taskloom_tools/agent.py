"""`agent`: a Claude model that may call the step tools it is given, in a bounded loop.

The loop talks to the Anthropic Messages API; every tool call goes through `ctx.agent_host`, which
the runner builds so that the call takes the same path as a chain step (guards, limits, secret
redaction) and is recorded on the run as a sub-step.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import Field, field_validator

from taskloom_tools.base import StepTool, StepToolError, ToolArgs, ToolContext, typed_run
from taskloom_tools.llm_prompt import client_for, explain

if TYPE_CHECKING:
    from anthropic.types import Message

NAME = "agent"
MAX_TURNS = 50
MAX_TOOLS = 32
# A model asking for more tool calls than this in one turn gets the rest refused.
MAX_CALLS_PER_TURN = 16
# Tools an agent may not be given, and why.
REFUSED_TOOLS = {
    "agent": "an agent cannot start another agent",
    "render": "its templates, written by the model, could read the task's secrets",
}

DESCRIPTION = """\
Give a Claude model an instruction and the step tools it may call (built-in or
'<server>/<tool>'); it calls them as it needs, then answers. Each tool call is recorded on the
run as a sub-step. Bounded by max_turns (model requests), max_tokens (per request), the step's
timeout_s and TASKLOOM_AGENT_MAX_TOTAL_TOKENS.

Output: {"text": "<final answer>", "json": <parsed answer, with output_schema>, "turns": 3,
"tool_calls": 2, "model": "...", "stop_reason": "end_turn", "usage": {...}}.

Example: {"instruction": "Read my unread mail and list what needs an answer.",
"tools": ["mail/list_unread"], "max_turns": 6}. Needs the server's ANTHROPIC_API_KEY."""

NO_KEY = (
    "agent needs an Anthropic API key: set ANTHROPIC_API_KEY in the environment of the "
    "Taskloom server (or worker) and restart it."
)


class AgentArgs(ToolArgs):
    instruction: str = Field(min_length=1, max_length=100_000, description="what to do")
    tools: list[str] = Field(
        default_factory=list,
        max_length=MAX_TOOLS,
        description="step tools the model may call, e.g. ['http_request', 'mail/list_unread']",
    )
    model: str | None = Field(default=None, min_length=1, description="default: server's")
    max_turns: int = Field(default=10, ge=1, le=MAX_TURNS, description="most model requests")
    max_tokens: int = Field(default=2048, ge=1, le=64_000, description="per model request")
    system: str | None = Field(default=None, description="optional system prompt")
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON schema the final answer must match (then parsed)"
    )

    @field_validator("tools")
    @classmethod
    def _allowed(cls, names: list[str]) -> list[str]:
        for name in names:
            if name in REFUSED_TOOLS:
                raise ValueError(f"{name!r} cannot be an agent's tool: {REFUSED_TOOLS[name]}")
        if len(set(names)) != len(names):
            raise ValueError("list each tool once")
        return names

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            problem = schema_problem(schema)
            if problem is not None:
                raise ValueError(f"not a valid JSON schema: {problem}")
        return schema


@dataclass(frozen=True)
class AgentTool:
    """A step tool as the model is shown it."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolReply:
    """What a tool call hands back to the model: text, and whether it is an error."""

    text: str
    is_error: bool = False


class AgentHost(Protocol):
    """The runner's side of the loop: describes the given tools, calls one as a chain step
    would (recording it), records a refused call."""

    async def describe(self, names: list[str]) -> list[AgentTool]: ...

    async def call(self, name: str, args: dict[str, Any], turn: int) -> ToolReply: ...

    def refuse(self, name: str, args: Any, turn: int, reason: str) -> ToolReply: ...


@dataclass
class _Loop:
    args: AgentArgs
    ctx: ToolContext
    host: AgentHost
    names: dict[str, str]  # API tool name -> step tool name
    messages: list[dict[str, Any]] = field(default_factory=list)
    turns: int = 0
    calls: int = 0
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})


async def agent(args: AgentArgs, ctx: ToolContext) -> dict[str, Any]:
    if not ctx.anthropic_api_key:
        raise StepToolError(NO_KEY)
    if ctx.agent_host is None:
        raise StepToolError("agent runs only as a step of a task or dry run.")
    host: AgentHost = ctx.agent_host
    tools = await host.describe(args.tools)
    names = {api_name(t.name): t.name for t in tools}
    loop = _Loop(args, ctx, host, names, [{"role": "user", "content": args.instruction}])
    client = client_for(ctx)
    try:
        return await _converse(loop, client, tools)
    finally:
        if ctx.anthropic_http is None:  # an injected client belongs to the caller
            await client.close()


async def _converse(loop: _Loop, client: Any, tools: list[AgentTool]) -> dict[str, Any]:
    declared = [
        {
            "name": api_name(t.name),
            "description": t.description[:1024],
            "input_schema": t.input_schema,
        }
        for t in tools
    ]
    while True:
        message = await _ask(loop, client, declared)
        if message.stop_reason == "tool_use":
            if loop.turns >= loop.args.max_turns:
                raise StepToolError(
                    f"agent: the model still asked for tools after max_turns={loop.args.max_turns} "
                    f"model requests; raise max_turns (at most {MAX_TURNS}) or narrow the "
                    "instruction."
                )
            await _use_tools(loop, message)
            continue
        text = _text(message)
        answer = _answer(loop, message, text)
        if answer is not None:
            return answer


async def _ask(loop: _Loop, client: Any, declared: list[dict[str, Any]]) -> Message:
    import anthropic

    model = loop.args.model or loop.ctx.default_model
    loop.turns += 1
    try:
        message: Message = await client.messages.create(
            model=model,
            max_tokens=loop.args.max_tokens,
            messages=loop.messages,
            system=_system(loop.args) or anthropic.omit,
            tools=declared or anthropic.omit,
        )
    except anthropic.AnthropicError as exc:
        raise StepToolError(explain(exc, model, loop.ctx.anthropic_base_url)) from exc
    loop.usage["input_tokens"] += message.usage.input_tokens
    loop.usage["output_tokens"] += message.usage.output_tokens
    spent = loop.usage["input_tokens"] + loop.usage["output_tokens"]
    if spent > loop.ctx.agent_max_total_tokens:
        raise StepToolError(
            f"agent used {spent} tokens in {loop.turns} model requests, over the limit of "
            f"{loop.ctx.agent_max_total_tokens} (TASKLOOM_AGENT_MAX_TOTAL_TOKENS); raise it, "
            "lower max_turns or give the model less to read."
        )
    loop.messages.append(
        {"role": "assistant", "content": [b.model_dump() for b in message.content]}
    )
    return message


async def _use_tools(loop: _Loop, message: Message) -> None:
    results = []
    uses = [b for b in message.content if b.type == "tool_use"]
    for index, use in enumerate(uses):
        reply = await _one_call(loop, use.name, use.input, index)
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": use.id,
            "content": reply.text,
        }
        if reply.is_error:
            block["is_error"] = True
        results.append(block)
    loop.messages.append({"role": "user", "content": results})


async def _one_call(loop: _Loop, name: str, args: Any, index: int) -> ToolReply:
    step_tool = loop.names.get(name)
    if step_tool is None:
        given = ", ".join(loop.args.tools) or "none"
        reason = f"Tool {name!r} is not one of this agent's tools ({given}); use only those."
        return loop.host.refuse(name, args, loop.turns, reason)
    if index >= MAX_CALLS_PER_TURN:
        reason = f"At most {MAX_CALLS_PER_TURN} tool calls per turn; call the rest next turn."
        return loop.host.refuse(step_tool, args, loop.turns, reason)
    if not isinstance(args, dict):
        return loop.host.refuse(step_tool, args, loop.turns, "Tool input must be a JSON object.")
    loop.calls += 1
    return await loop.host.call(step_tool, args, loop.turns)


def _answer(loop: _Loop, message: Message, text: str) -> dict[str, Any] | None:
    """The step's output, or None when the answer missed output_schema and a turn is left (the
    model is told why and asked again)."""
    output: dict[str, Any] = {
        "text": text,
        "turns": loop.turns,
        "tool_calls": loop.calls,
        "model": message.model,
        "stop_reason": message.stop_reason,
        "usage": dict(loop.usage),
    }
    schema = loop.args.output_schema
    if schema is None:
        return output
    value, problem = parse_answer(text, schema)
    if problem is None:
        return {**output, "json": value}
    if loop.turns >= loop.args.max_turns:
        raise StepToolError(
            f"agent: the final answer does not match output_schema ({problem}) after "
            f"max_turns={loop.args.max_turns} model requests; raise max_turns or simplify the "
            "schema."
        )
    retry = f"Your answer does not match the JSON schema: {problem}. Answer again with only JSON."
    loop.messages.append({"role": "user", "content": retry})
    return None


def _system(args: AgentArgs) -> str | None:
    if args.output_schema is None:
        return args.system
    rule = (
        "When you are done, answer with only a JSON value (no prose, no code fence) that "
        f"matches this JSON schema: {json.dumps(args.output_schema)}"
    )
    return f"{args.system}\n\n{rule}" if args.system else rule


def _text(message: Message) -> str:
    return "".join(getattr(b, "text", "") for b in message.content if b.type == "text")


def api_name(step_tool: str) -> str:
    """A step tool's name as the Anthropic API accepts it ('mail/list' -> 'mail__list')."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", step_tool.replace("/", "__"))[:128]


def schema_problem(schema: dict[str, Any]) -> str | None:
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return str(exc.message)
    return None


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_answer(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """The answer parsed as JSON and checked against `schema`: (value, None) or (None, why)."""
    import jsonschema

    body = text.strip()
    fenced = _FENCE.match(body)
    try:
        value = json.loads(fenced.group(1) if fenced else body)
    except json.JSONDecodeError as exc:
        return None, f"it is not JSON ({exc.msg} at character {exc.pos})"
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(value)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return None, f"at {where}: {error.message}"
    return value, None


TOOL = StepTool(
    name=NAME,
    description=DESCRIPTION,
    args_model=AgentArgs,
    run=typed_run(AgentArgs, agent),
    read_only=False,
    open_world=True,
)
