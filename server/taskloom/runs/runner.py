"""Executes one run of a chain: steps in order, each with its timeout and retries.

The runner is the only place a step's exception is caught: it becomes a failed `StepResult`.
The run's final record is written in `finally`, shielded from cancellation, so a timeout, a
`cancel_run` or a shutdown still leaves an honest record.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog

from taskloom.clock import Clock
from taskloom.domain.retry import backoff_delay
from taskloom.domain.runs import Run, RunStatus, StepResult, StepStatus, ToolCall
from taskloom.domain.tasks import RetryPolicy, Step, Task
from taskloom.domain.templates import Secrets, any_template, referenced_secrets, used_steps
from taskloom.errors import TaskloomError
from taskloom.runs import flow
from taskloom.runs.agent import AgentHost
from taskloom.runs.evaluation import (
    ARGS_HINT,
    StepJob,
    StepValues,
    bound_value,
    evaluate_step,
    is_small,
    limit_message,
    store_output,
    unstorable_message,
)
from taskloom.runs.sandbox import LimitExceeded, Sandbox, SandboxLimits
from taskloom.runs.storable import find_unstorable, storable_copy
from taskloom.step_tools import StepCatalog

log = structlog.get_logger(__name__)

Progress = Callable[[int, int, str], Awaitable[None]]
Persist = Callable[[Run], Awaitable[None]]
Finish = Callable[[Run], Awaitable[Run]]
# Why the run may not go on (its lease could not be renewed), or None while it may.
LeaseCheck = Callable[[], Awaitable[str | None]]

AGENT = "agent"
# A step still running after this long is shown as running in the stored run (get_run).
PERSIST_RUNNING_AFTER_S = 0.25


@dataclass(frozen=True)
class Limits:
    step_timeout_s: float = 300.0
    max_output_bytes: int = 65536
    max_foreach_items: int = 100


class StepCaller(Protocol):
    """What the runner needs to call a step's tool; tests give it a double (no MCP, no HTTP)."""

    catalog: StepCatalog  # the tools an `agent` step may be given, with their schemas

    def raw_args(self, name: str) -> frozenset[str]:
        """The tool's arguments that are not templates (passed through as written)."""
        ...

    def computes(self, name: str) -> bool:
        """Whether the tool is pure computation, run in a sandbox worker."""
        ...

    async def call(
        self,
        name: str,
        args: dict[str, Any],
        timeout_s: float,
        template_ctx: dict[str, Any],
        agent_host: AgentHost | None = None,
    ) -> Any:
        """The tool's output; raises on failure (TimeoutError past `timeout_s`). `agent_host`:
        how an `agent` step calls the tools it was given (through the runner)."""
        ...


class CatalogStepCaller:
    """Calls a step tool by name: built-ins in-process, '<server>/<tool>' on the upstream pool."""

    def __init__(self, catalog: StepCatalog, tool_context: Callable[[dict[str, Any]], Any]):
        self.catalog = catalog
        self.tool_context = tool_context
        # Told of every failed call to an upstream server (the metrics count them by server).
        self.upstream_failed: list[Callable[[str], None]] = []

    def raw_args(self, name: str) -> frozenset[str]:
        tool = self.catalog.builtin(name)
        return tool.raw_args if tool is not None else frozenset()

    def computes(self, name: str) -> bool:
        """Whether the tool is pure computation, run by the runner in a sandbox worker."""
        tool = self.catalog.builtin(name)
        return tool is not None and tool.compute is not None

    async def call(
        self,
        name: str,
        args: dict[str, Any],
        timeout_s: float,
        template_ctx: dict[str, Any],
        agent_host: AgentHost | None = None,
    ) -> Any:
        tool = self.catalog.builtin(name)
        if tool is not None:
            ctx = self.tool_context(template_ctx)
            ctx.agent_host = agent_host
            async with asyncio.timeout(timeout_s):  # no task of its own, as wait_for makes
                return await tool.invoke(args, ctx)
        if self.catalog.upstream is None:
            raise TaskloomError(
                f"Step tool {name!r} is not built in and no upstream MCP servers are configured "
                "(TASKLOOM_MCP_CONFIG)."
            )
        try:
            return await self.catalog.upstream.call(name, args, timeout_s=timeout_s)
        except Exception:
            for listener in self.upstream_failed:
                listener(name.partition("/")[0])
            raise


class Runner:
    def __init__(
        self, caller: StepCaller, clock: Clock, limits: Limits, sandbox: Sandbox | None = None
    ) -> None:
        self.caller = caller
        self.clock = clock
        self.limits = limits
        self.sandbox = sandbox or Sandbox(SandboxLimits(preload=(evaluate_step.__module__,)))
        self.flow = flow.FlowRunner(self.sandbox, clock, limits.max_foreach_items,
                                    limits.max_output_bytes, limits.step_timeout_s)  # fmt: skip

    async def execute(
        self,
        task: Task,
        run: Run,
        *,
        secrets: Secrets,
        persist: Persist,
        finish: Finish,
        progress: Progress | None = None,
        prev: Run | None = None,
        lease: LeaseCheck | None = None,
    ) -> Run:
        """Run every step, handing progress to `persist` and the final run to `finish`; `prev`
        is the task's previous finished run, which templates see as `prev`; before each step
        `lease` says whether this process may still execute the run."""
        state = _RunState(task, run, self.clock.now(), secrets, prev)
        # Every line the run logs carries its ids; bound as tokens and reset to exactly what was
        # bound before (bound_contextvars reads the whole context first, on every run).
        bound = structlog.contextvars.bind_contextvars(task_id=task.id, run_id=run.id)
        try:
            # One info line per run, at its end (run_finished); its start is a debug line.
            log.debug("run_started", cause=run.cause.value, attempt=run.attempt)
            try:
                async with asyncio.timeout(task.timeout_s):
                    await self._steps(state, persist, progress, lease)
            except TimeoutError:
                state.fail(f"The run timed out after {task.timeout_s:g} s (the task's timeout_s).")
                state.stop_current(StepStatus.FAILED, "Stopped: the run timed out.")
            except asyncio.CancelledError:
                state.cancel("The run was cancelled.")
                state.stop_current(StepStatus.CANCELLED, "Stopped: the run was cancelled.")
                raise
            finally:
                final = await asyncio.shield(finish(state.finish(self.clock.now())))
                log.info(
                    "run_finished", cause=run.cause.value, attempt=run.attempt,
                    status=final.status.value, duration_ms=final.duration_ms,
                )  # fmt: skip
        finally:
            structlog.contextvars.reset_contextvars(**bound)
        return final

    async def _steps(
        self,
        state: "_RunState",
        persist: Persist,
        progress: Progress | None,
        lease: LeaseCheck | None,
    ) -> None:
        total = len(state.task.steps)
        for index, step in enumerate(state.task.steps):
            lost = await lease() if lease is not None else None
            if lost is not None:
                state.interrupt(lost)
            if state.stopped:
                break
            if progress is not None:
                await progress(index, total, f"step {index + 1}/{total}: {step.id} ({step.tool})")
            state.begin(index, self.clock.now())
            snapshot = _persist_later(persist, state.snapshot, PERSIST_RUNNING_AFTER_S)
            try:
                done = await self._flow(state, index, step)
            finally:
                snapshot.cancel()
            state.record(done, step)
        if progress is not None:
            await progress(total, total, f"finished: {state.final_status().value}")

    async def _flow(self, state: "_RunState", index: int, step: Step) -> "_StepDone":
        """A step under its `when` and `foreach` (runs/flow.py); a plain step is just run."""
        if step.when is None and step.foreach is None:
            return await self._step(state, index, step)

        async def once() -> tuple[StepResult, Any]:
            done = await self._step(state, index, step)
            return done.result, done.output

        def loop(values: dict[str, Any]) -> None:
            state.loop = values

        result, output = await self.flow.run(
            step, index, once=once, context=state.template_context, loop=loop
        )
        return _StepDone(result, output)

    async def _step(self, state: "_RunState", index: int, step: Step) -> "_StepDone":
        started = self.clock.now()
        clock_start = time.perf_counter()
        timeout = step.timeout_s or self.limits.step_timeout_s
        values = await self._evaluate(state, step, timeout)
        output, stored, error = values.output, values.stored_output, values.error
        attempts = 1 if values.computed else 0
        host = self._agent_host(state, step, timeout) if step.tool == AGENT else None
        state.current_calls = host.calls if host is not None else None
        if error is None and not values.computed:
            policy = step.retry or RetryPolicy()
            args = values.args or {}
            output, error, attempts = await self._call_with_retry(state, step, args, policy, host)
            if error is None:
                output, stored, error = await self._store(state, step, output, timeout)
        result = StepResult(
            id=step.id,
            index=index,
            tool=step.tool,
            status=StepStatus.FAILED if error else StepStatus.SUCCEEDED,
            args=values.stored_args,
            output=stored,
            error=state.secrets.redact(error) if error else None,
            started_at=started,
            finished_at=self.clock.now(),
            duration_ms=int((time.perf_counter() - clock_start) * 1000),
            attempts=attempts,
            calls=host.calls if host is not None else None,
        )
        return _StepDone(result, output)

    def _agent_host(self, state: "_RunState", step: Step, timeout_s: float) -> AgentHost:
        """An agent step's tool calls go through `_call_with_retry`, as a step's call does."""

        async def call_tool(sub: Step, args: dict[str, Any]) -> tuple[Any, str | None, int]:
            return await self._call_with_retry(state, sub, args, RetryPolicy())

        return AgentHost(
            step=step,
            catalog=self.caller.catalog,
            call_tool=call_tool,
            computes=self.caller.computes,
            sandbox=self.sandbox,
            secrets=state.secrets,
            clock=self.clock,
            timeout_s=timeout_s,
            max_output_bytes=self.max_bytes,
        )

    async def _evaluate(self, state: "_RunState", step: Step, timeout_s: float) -> StepValues:
        """The step's args rendered (and a computed tool run) in a sandbox worker; args with
        no template are the task's own, already bounded, and skip the round trip."""
        compute = self.caller.computes(step.tool)
        if not compute and not any_template(step.args):
            stored = bound_value(state.secrets.redact(step.args), self.max_bytes, ARGS_HINT)
            return StepValues(args=dict(step.args), stored_args=stored)
        job = StepJob(
            step_id=step.id,
            tool=step.tool,
            args=dict(step.args),
            raw_args=self.caller.raw_args(step.tool),
            context=state.template_context(used_steps(step.args)),
            secrets=dict(state.secrets.mapping),
            max_output_bytes=self.max_bytes,
            compute=compute,
        )
        activity = "computing its result" if compute else "rendering its arguments"
        try:
            values: StepValues = await self.sandbox.call(evaluate_step, job, timeout_s=timeout_s)
        except (LimitExceeded, TimeoutError) as exc:
            return StepValues(error=limit_message(step.id, step.tool, exc, activity, timeout_s))
        except Exception as exc:  # e.g. a value nested too deeply to serialise
            return StepValues(error=f"Step {step.id!r} ({step.tool}) failed {activity}: {exc}")
        return values

    async def _store(
        self, state: "_RunState", step: Step, output: Any, timeout_s: float
    ) -> tuple[Any, Any, str | None]:
        """The output for later steps, its stored form (redacted, bounded) and an error."""
        if is_small(output):
            if (bad := find_unstorable(output, "output")) is not None:
                shown = bound_value(state.secrets.redact(storable_copy(output)), self.max_bytes)
                return None, shown, unstorable_message(step.id, bad)
            # Later steps see the redacted output too (see `store_output`).
            redacted = state.secrets.redact(output)
            return redacted, bound_value(redacted, self.max_bytes), None
        secrets = dict(state.secrets.mapping)
        try:
            packed, stored, error = await self.sandbox.call(
                store_output, output, secrets, self.max_bytes, step.id, timeout_s=timeout_s
            )
        except (LimitExceeded, TimeoutError) as exc:
            return (
                None,
                None,
                limit_message(step.id, step.tool, exc, "storing its output", timeout_s),
            )
        except Exception as exc:  # e.g. a value nested too deeply to serialise
            return None, None, f"Step {step.id!r} ({step.tool}) failed storing its output: {exc}"
        return packed, stored, error

    @property
    def max_bytes(self) -> int:
        return self.limits.max_output_bytes

    async def _call_with_retry(
        self,
        state: "_RunState",
        step: Step,
        args: dict[str, Any],
        policy: RetryPolicy,
        host: AgentHost | None = None,
    ) -> tuple[Any, str | None, int]:
        timeout = step.timeout_s or self.limits.step_timeout_s
        error: str | None = None
        for attempt in range(1, policy.attempts + 1):
            try:
                ctx = state.tool_context()
                output = await self.caller.call(step.tool, args, timeout, ctx, host)
                return output, None, attempt
            except TimeoutError:
                error = f"Step {step.id!r} timed out after {timeout:g} s; raise its timeout_s."
            except Exception as exc:
                error = _describe(step, exc, state.secrets)
            shown = state.secrets.redact(error)[:300]
            log.warning("step_failed", step=step.id, attempt=attempt, error=shown)
            if attempt < policy.attempts:
                await asyncio.sleep(backoff_delay(policy, attempt))
        return None, error, policy.attempts


def _persist_later(
    persist: Persist, snapshot: Callable[[], Run], delay_s: float
) -> asyncio.TimerHandle:
    """Write the "step running" snapshot only if the step is still running after `delay_s`
    (the caller cancels the timer when the step ends): get_run shows a slow step in progress,
    and a fast step costs no write of its own, nor a task (only a timer, cancelled). The
    snapshot is taken when the timer goes off, while the step is still the one running. A
    failed snapshot is logged; the final record is what counts."""

    async def write(run: Run) -> None:
        try:
            await persist(run)
        except Exception as exc:  # a background write: nobody else would see its error
            log.warning("run_progress_not_saved", error=f"{type(exc).__name__}: {exc}"[:300])

    def later() -> None:
        run = snapshot()
        _background.add(task := asyncio.create_task(write(run), name=f"{run.id}-progress"))
        task.add_done_callback(_background.discard)

    return asyncio.get_running_loop().call_later(delay_s, later)


# Progress writes under way (the event loop keeps only weak references to tasks).
_background: set["asyncio.Task[None]"] = set()


def _describe(step: Step, exc: Exception, secrets: Secrets) -> str:
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        return message
    if isinstance(exc, TaskloomError | ValueError):
        return str(exc)
    # No traceback in the log: its frames' text may hold secret values.
    text = f"{type(exc).__name__}: {exc}"
    log.error("step_crashed", step=step.id, error=secrets.redact(text)[:300])
    return f"Step {step.id!r} ({step.tool}) failed unexpectedly: {text}"


@dataclass(frozen=True)
class _StepDone:
    """A step's stored result, and its whole output for the templates of later steps."""

    result: StepResult
    output: Any


class _RunState:
    """What a run has done so far; turns into the final `Run`."""

    def __init__(
        self, task: Task, run: Run, started: datetime, secrets: Secrets, prev: Run | None = None
    ) -> None:
        self.task = task
        self.run = run
        self.prev = previous_view(prev)
        self.started = run.started_at or started  # as claimed, so last_attempt_at matches
        self.secrets = secrets
        self.results: list[StepResult] = [
            StepResult(id=s.id, index=i, tool=s.tool, status=StepStatus.PENDING)
            for i, s in enumerate(task.steps)
        ]
        self.outputs: dict[str, dict[str, Any]] = {}
        self.status = RunStatus.RUNNING
        self.error: str | None = None
        self.output: Any = None
        self.stopped = False
        self.current: int | None = None
        # The tool calls an agent step in progress has made so far (its host's own list), kept
        # when the run stops in the middle of the step.
        self.current_calls: list[ToolCall] | None = None
        self.loop: dict[str, Any] = {}  # `item` and `index` while a `foreach` step runs

    def template_context(self, used: set[str] | None = None) -> dict[str, Any]:
        """What templates see; with `used`, other steps' outputs are left out (as null), so a
        worker is not sent and does not unpack what the step never reads."""
        fire = self.run.fire_time
        steps = self.outputs
        if used is not None:
            steps = {k: v if k in used else {**v, "output": None} for k, v in steps.items()}
        return {
            "steps": steps,
            "task": {"id": self.task.id, "name": self.task.name, "timezone": self.task.timezone},
            "run": {
                "id": self.run.id,
                "trigger": self.run.cause.value,  # templates' name for it
                "attempt": self.run.attempt,
                "fire_time": fire.isoformat() if fire else None,
                "started_at": self.started.isoformat(),
            },
            "event": self.run.event,
            "prev": self.prev,
            **self.loop,
        }

    def tool_context(self) -> dict[str, Any]:
        """What a tool that renders its own templates (`render`) sees: secrets included; the
        runner redacts them from whatever it stores."""
        return {**self.template_context(), "secrets": self.secrets.mapping}

    def begin(self, index: int, now: datetime) -> None:
        self.current = index
        self.current_calls = None
        self.results[index] = self.results[index].model_copy(
            update={"status": StepStatus.RUNNING, "started_at": now}
        )

    def stop_current(self, status: StepStatus, error: str) -> None:
        """The step in progress when the run stopped ends with `status`, not as never run."""
        if self.current is None or self.results[self.current].status != StepStatus.RUNNING:
            return
        result = self.results[self.current]
        update: dict[str, Any] = {"status": status, "error": error}
        if self.current_calls is not None:
            update["calls"] = list(self.current_calls)
        self.results[self.current] = result.model_copy(update=update)

    def record(self, done: "_StepDone", step: Step) -> None:
        result = done.result
        self.current = None
        self.results[result.index] = result
        self.outputs[step.id] = {
            "output": done.output if result.status == StepStatus.SUCCEEDED else None,
            "status": result.status.value,
            "error": result.error,
        }
        if result.status == StepStatus.SUCCEEDED:
            self.output = result.output
            return
        if result.status == StepStatus.SKIPPED:  # its `when` was false: the run goes on
            return
        if step.on_error == "fail":
            self.fail(f"Step {step.id!r} failed: {result.error}")
        elif self.error is None:
            self.error = f"Step {step.id!r} failed (on_error=continue): {result.error}"

    def fail(self, error: str) -> None:
        self.status, self.error, self.stopped = RunStatus.FAILED, error, True

    def cancel(self, error: str) -> None:
        self.status, self.error, self.stopped = RunStatus.CANCELLED, error, True

    def interrupt(self, error: str) -> None:
        self.status, self.error, self.stopped = RunStatus.INTERRUPTED, error, True

    def final_status(self) -> RunStatus:
        return RunStatus.SUCCEEDED if self.status == RunStatus.RUNNING else self.status

    def snapshot(self) -> Run:
        return self.run.model_copy(
            update={"status": RunStatus.RUNNING, "started_at": self.started, "steps": self.results}
        )

    def finish(self, now: datetime) -> Run:
        self.status = self.final_status()
        leftover = (
            StepStatus.CANCELLED if self.status == RunStatus.CANCELLED else StepStatus.SKIPPED
        )
        steps = [
            r.model_copy(update={"status": leftover})
            if r.status in (StepStatus.PENDING, StepStatus.RUNNING)
            else r
            for r in self.results
        ]
        return self.run.model_copy(
            update={
                "status": self.status,
                "started_at": self.started,
                "finished_at": now,
                "duration_ms": int((now - self.started).total_seconds() * 1000),
                "output": self.output,
                "error": self.secrets.redact(self.error) if self.error else None,
                "steps": steps,
            }
        )


def previous_view(prev: Run | None) -> dict[str, Any] | None:
    """What templates see as `prev`: the previous finished run's outcome, or None."""
    if prev is None:
        return None
    fields = ("id", "status", "output", "error", "summary", "fire_time", "finished_at")
    return prev.model_dump(mode="json", include=set(fields))


def secret_names(task: Task) -> set[str]:
    names: set[str] = set()
    for step in task.steps:
        names |= referenced_secrets(step.args, step_id=step.id)
    return names
