"""`llm_prompt`: ask a Claude model through the Anthropic Messages API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from taskloom_tools.base import StepTool, StepToolError, ToolArgs, ToolContext, typed_run

if TYPE_CHECKING:
    from anthropic import AnthropicError, AsyncAnthropic
    from anthropic.types import Message

DESCRIPTION = """\
Send one prompt to a Claude model (Anthropic Messages API) and return its answer, e.g. to
summarise, classify or rewrite an earlier step's output.

Output: {"text": "<the answer>", "model": "<model that answered>", "stop_reason": "end_turn" |
"max_tokens" | ..., "usage": {"input_tokens": 812, "output_tokens": 64}}.

Needs the server's ANTHROPIC_API_KEY. Sampling parameters (temperature, top_p) are not accepted:
the current Anthropic API rejects them; steer the answer with the prompt and system instead.

Example: {"system": "You write one-line status updates.", "prompt": "Summarise these open issues:
{{ steps.issues.output.json }}", "max_tokens": 200}; a later step reads
{{ steps.<this step id>.output.text }}."""

NO_KEY = (
    "llm_prompt needs an Anthropic API key: set ANTHROPIC_API_KEY in the environment of the "
    "Taskloom server (or worker) and restart it."
)


class LlmPromptArgs(ToolArgs):
    prompt: str = Field(min_length=1, description="the user message sent to the model")
    system: str | None = Field(default=None, description="optional system prompt")
    model: str | None = Field(
        default=None,
        min_length=1,
        description="Anthropic model id, e.g. claude-sonnet-4-6; default: the server's setting",
    )
    max_tokens: int = Field(default=1024, ge=1, le=64_000, description="longest answer, in tokens")


async def llm_prompt(args: LlmPromptArgs, ctx: ToolContext) -> dict[str, Any]:
    if not ctx.anthropic_api_key:
        raise StepToolError(NO_KEY)
    import anthropic  # about a second to import: only when a step asks a model

    model = args.model or ctx.default_model
    client = client_for(ctx)
    try:
        message = await client.messages.create(
            model=model,
            max_tokens=args.max_tokens,
            messages=[{"role": "user", "content": args.prompt}],
            system=args.system if args.system is not None else anthropic.omit,
        )
    except anthropic.AnthropicError as exc:
        raise StepToolError(explain(exc, model, ctx.anthropic_base_url)) from exc
    finally:
        if ctx.anthropic_http is None:  # an injected client belongs to the caller
            await client.close()
    return _output(message)


def client_for(ctx: ToolContext) -> AsyncAnthropic:
    from anthropic import AsyncAnthropic

    return AsyncAnthropic(
        api_key=ctx.anthropic_api_key,
        base_url=ctx.anthropic_base_url,
        http_client=ctx.anthropic_http,
        max_retries=ctx.anthropic_max_retries,
    )


def _output(message: Message) -> dict[str, Any]:
    from anthropic.types import TextBlock

    text = "".join(block.text for block in message.content if isinstance(block, TextBlock))
    return {
        "text": text,
        "model": message.model,
        "stop_reason": message.stop_reason,
        "usage": {
            "input_tokens": message.usage.input_tokens,
            "output_tokens": message.usage.output_tokens,
        },
    }


# SDK error class name -> what it means for the user; the first match wins (subclasses first).
EXPLANATIONS = (
    (
        "AuthenticationError",
        "Anthropic rejected the API key ({status}: {detail}). Set ANTHROPIC_API_KEY to a valid "
        "key and restart the server.",
    ),
    (
        "PermissionDeniedError",
        "The API key may not use model {model!r} ({status}: {detail}). Check the key's workspace "
        "and permissions, or pick another model.",
    ),
    (
        "NotFoundError",
        "Model {model!r} was not found ({status}: {detail}). Use a current model id such as "
        "claude-sonnet-4-6, or leave model out to use the server's default.",
    ),
    (
        "RateLimitError",
        "Anthropic rate-limited the request ({status}: {detail}). Retry later (a step retry "
        "policy with backoff does this) or run the task less often.",
    ),
    (
        "BadRequestError",
        "Anthropic refused the request ({status}: {detail}). Check prompt, system, model and "
        "max_tokens.",
    ),
    (
        "APITimeoutError",
        "The Anthropic API at {where} did not answer in time. Retry, or ask for fewer max_tokens.",
    ),
    (
        "APIConnectionError",
        "Could not reach the Anthropic API at {where} ({detail}). Check the network and "
        "ANTHROPIC_BASE_URL.",
    ),
    (
        "InternalServerError",
        "The Anthropic API failed or is overloaded ({status}: {detail}). Retry later.",
    ),
    ("APIStatusError", "The Anthropic API answered {status}: {detail}."),
)


def explain(exc: AnthropicError, model: str, base_url: str | None) -> str:
    """What an SDK error means for the user, and what to do about it."""
    import anthropic

    template = next(
        (text for name, text in EXPLANATIONS if isinstance(exc, getattr(anthropic, name))),
        "The Anthropic client failed: {detail}.",
    )
    return template.format(
        status=getattr(exc, "status_code", None),
        detail=getattr(exc, "api_message", None) or str(exc),
        model=model,
        where=base_url or "https://api.anthropic.com",
    )


TOOL = StepTool(
    name="llm_prompt",
    description=DESCRIPTION,
    args_model=LlmPromptArgs,
    run=typed_run(LlmPromptArgs, llm_prompt),
    read_only=True,
    open_world=True,
)
