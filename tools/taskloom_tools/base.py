"""The contract every built-in step tool follows: its arguments, its context, its errors.

Only pydantic is imported here: the server lists step tools at start-up, so HTTP clients, Jinja2,
JMESPath and the Anthropic SDK are imported by the tools that use them, when they run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:
    import httpx
    import httpx2


class StepToolError(Exception):
    """A step tool failed; the message says what went wrong and what to do, and is shown as-is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ToolArgs(BaseModel):
    """Base of every tool's arguments: an unknown key from the model is an error, not dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class ToolContext:
    """What a step tool may use besides its arguments; the caller builds it from Settings."""

    http: httpx.AsyncClient
    allow_hosts: str = ""
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    # anthropic 2.x only accepts an `httpx2` client (it raises TypeError for an `httpx` one).
    anthropic_http: httpx2.AsyncClient | None = None
    anthropic_max_retries: int = 2
    default_model: str = "claude-sonnet-4-6"
    max_response_bytes: int = 5_000_000
    max_redirects: int = 5
    # What `render` templates see besides their `data` (the runner passes steps, task and run).
    template_context: Mapping[str, Any] = field(default_factory=dict)
    desktop_timeout_s: float = 10.0
    # For `agent` steps: the runner's side of the tool-use loop (an `agent.AgentHost`).
    agent_host: Any = None
    agent_max_total_tokens: int = 200_000


A = TypeVar("A", bound=BaseModel)


@dataclass(frozen=True)
class StepTool:
    """A built-in step tool: its schema (`args_model`), its description for the model, its code."""

    name: str
    description: str
    args_model: type[BaseModel]
    run: Callable[[BaseModel, ToolContext], Awaitable[Any]]
    read_only: bool
    open_world: bool
    # Arguments the runner passes through unrendered because the tool renders them itself.
    raw_args: frozenset[str] = frozenset()
    # For a tool that is pure computation over its args and the template context (`render`,
    # `extract`): the runner calls this in a CPU- and memory-limited worker process instead of
    # `run`, because user-controlled computation must never run on the server's event loop.
    compute: Callable[[BaseModel, Mapping[str, Any]], Any] | None = None

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema `list_step_tools` shows for this tool's arguments."""
        return self.args_model.model_json_schema(by_alias=True)

    def parse_args(self, raw: Mapping[str, Any]) -> BaseModel:
        """Validate raw arguments, turning pydantic's error into one readable `StepToolError`."""
        try:
            return self.args_model.model_validate(dict(raw))
        except ValidationError as exc:
            raise StepToolError(describe_invalid_args(self.name, exc)) from exc

    async def invoke(self, raw: Mapping[str, Any], ctx: ToolContext) -> Any:
        """Validate `raw` and run the tool; returns its JSON-serialisable output."""
        return await self.run(self.parse_args(raw), ctx)


def describe_invalid_args(tool: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(arguments)"
        problems.append(f"{where}: {error['msg']}")
    listed = "; ".join(problems)
    return f"{tool} arguments are invalid: {listed}. Fix them to match the tool's input schema."


def typed_run(
    args_model: type[A], run: Callable[[A, ToolContext], Awaitable[Any]]
) -> Callable[[BaseModel, ToolContext], Awaitable[Any]]:
    """Adapt a tool's `run(args: ItsArgs, ctx)` to the contract's `run(args: BaseModel, ctx)`."""

    async def checked(args: BaseModel, ctx: ToolContext) -> Any:
        if not isinstance(args, args_model):
            raise TypeError(f"expected {args_model.__name__}, got {type(args).__name__}")
        return await run(args, ctx)

    return checked
