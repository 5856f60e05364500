"""The runner's side of an `agent` step: each tool call the model makes takes a chain step's path.

A call is made through the runner's own call path (`StepCaller` with its `ToolContext` and address
guard, the step's timeout, the upstream pool), computed tools run in a sandbox worker, and what
the model reads back and what is stored are redacted of the run's secrets and bounded. The model's
arguments are literal: they are never rendered as templates (a template could read a secret).
"""

import json
import pickle
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from taskloom.clock import Clock
from taskloom.domain.runs import ToolCall
from taskloom.domain.tasks import Step
from taskloom.domain.templates import Secrets
from taskloom.runs.evaluation import StepJob, bound_value, evaluate_step, is_small, limit_message
from taskloom.runs.sandbox import LimitExceeded, Sandbox
from taskloom.step_tools import StepCatalog
from taskloom_tools.agent import AgentTool, ToolReply
from taskloom_tools.base import StepToolError

# What the model reads back from one tool call, at most (longer text is cut, and says so).
TOOL_RESULT_CHARS = 16_000
# A sub-step's stored arguments and output get this share of TASKLOOM_MAX_OUTPUT_BYTES each: an
# agent may make hundreds of calls, and the step's row holds them all.
SUBSTEP_SHARE = 8

# (step, literal args) -> (output, error, attempts): the runner's own call with its retries.
CallTool = Callable[[Step, dict[str, Any]], Awaitable[tuple[Any, str | None, int]]]


@dataclass
class AgentHost:
    """Serves one agent step's tool calls and keeps their records (`calls`)."""

    step: Step
    catalog: StepCatalog
    call_tool: CallTool
    computes: Callable[[str], bool]
    sandbox: Sandbox
    secrets: Secrets
    clock: Clock
    timeout_s: float
    max_output_bytes: int
    calls: list[ToolCall] = field(default_factory=list)

    async def describe(self, names: list[str]) -> list[AgentTool]:
        tools = []
        for name in names:
            info = await self.catalog.find(name)
            if info is None:
                raise StepToolError(
                    f"agent tool {name!r} is not available now (is its upstream server "
                    "running?); call list_step_tools and update the step's tools."
                )
            tools.append(AgentTool(info.name, info.description, info.input_schema))
        return tools

    async def call(self, name: str, args: dict[str, Any], turn: int) -> ToolReply:
        started, t0 = self.clock.now(), time.perf_counter()
        if self.computes(name):
            stored_args, stored, text, error = await self._compute(name, args)
        else:
            stored_args = self._bound(self.secrets.redact(args))
            stored, text, error = await self._call(name, args)
        self.calls.append(
            ToolCall(
                turn=turn,
                tool=name,
                status="failed" if error else "succeeded",
                args=stored_args,
                output=stored,
                error=self.secrets.redact(error) if error else None,
                started_at=started,
                duration_ms=int((time.perf_counter() - t0) * 1000),
            )
        )
        if error:
            return ToolReply(self.secrets.redact(error), is_error=True)
        return ToolReply(text)

    def refuse(self, name: str, args: Any, turn: int, reason: str) -> ToolReply:
        self.calls.append(
            ToolCall(
                turn=turn,
                tool=name,
                status="refused",
                args=self._bound(self.secrets.redact(args)),
                error=reason,
                started_at=self.clock.now(),
                duration_ms=0,
            )
        )
        return ToolReply(reason, is_error=True)

    async def _call(self, name: str, args: dict[str, Any]) -> tuple[Any, str, str | None]:
        sub = Step(id=self.step.id, tool=name, timeout_s=self.timeout_s)
        output, error, _ = await self.call_tool(sub, args)
        if error is not None:
            return None, "", error
        secrets, limit = dict(self.secrets.mapping), self._limit
        if is_small(output):
            stored, text = view_for_model(output, secrets, limit)
            return stored, text, None
        try:
            stored, text = await self.sandbox.call(
                view_for_model, output, secrets, limit, timeout_s=self.timeout_s
            )
        except (LimitExceeded, TimeoutError) as exc:
            activity = "storing a tool's output"
            return None, "", limit_message(self.step.id, name, exc, activity, self.timeout_s)
        return stored, text, None

    async def _compute(self, name: str, args: dict[str, Any]) -> tuple[Any, Any, str, str | None]:
        job = StepJob(
            step_id=self.step.id,
            tool=name,
            args=args,
            raw_args=frozenset(args),  # the model's values are literal, never templates
            context={},
            secrets=dict(self.secrets.mapping),
            max_output_bytes=self._limit,
            compute=True,
        )
        try:
            result: tuple[Any, Any, str, str | None] = await self.sandbox.call(
                compute_for_model, job, timeout_s=self.timeout_s
            )
        except (LimitExceeded, TimeoutError) as exc:
            stored_args = self._bound(self.secrets.redact(args))
            error = limit_message(self.step.id, name, exc, "computing its result", self.timeout_s)
            return stored_args, None, "", error
        return result

    @property
    def _limit(self) -> int:
        return max(1024, self.max_output_bytes // SUBSTEP_SHARE)

    def _bound(self, value: Any) -> Any:
        return bound_value(value, self._limit)


def view_for_model(output: Any, secrets: dict[str, str], max_bytes: int) -> tuple[Any, str]:
    """A tool's output redacted: its stored (bounded) form and the text the model reads."""
    redacted = Secrets(secrets).redact(output)
    text = redacted if isinstance(redacted, str) else json.dumps(redacted, default=str)
    if len(text) > TOOL_RESULT_CHARS:
        more = len(text) - TOOL_RESULT_CHARS
        text = f"{text[:TOOL_RESULT_CHARS]}\n[cut: {more} more characters not shown]"
    return bound_value(redacted, max_bytes), text


def compute_for_model(job: StepJob) -> tuple[Any, Any, str, str | None]:
    """In a sandbox worker: a computed tool run on the model's literal arguments; its stored
    arguments, stored output, the text for the model, and its error."""
    values = evaluate_step(job)
    if values.error is not None or values.output is None:
        return values.stored_args, None, "", values.error or "the tool gave no output"
    output = pickle.loads(values.output.data)  # packed by evaluate_step in this same worker
    stored, text = view_for_model(output, job.secrets, job.max_output_bytes)
    return values.stored_args, stored, text, None
