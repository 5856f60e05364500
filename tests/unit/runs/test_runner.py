"""The runner on its own: a chain executed against a fake step caller (a test double of the
`StepCaller` interface, no MCP, no HTTP, no database), on a frozen clock. Steps without templates
never reach the sandbox, so nothing here starts a worker process."""

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from taskloom.clock import FrozenClock
from taskloom.domain.runs import Run, RunCause, RunStatus, StepStatus
from taskloom.domain.tasks import Task, TaskSpec
from taskloom.domain.templates import Secrets
from taskloom.runs.runner import Limits, Runner, StepCaller

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
Behaviour = Callable[[dict[str, Any]], Any]


@dataclass
class FakeCaller:
    """Answers each tool by a function of its args (raising = the step fails); keeps the calls.
    A tool named in `held` waits until the test sets its event."""

    tools: dict[str, Behaviour]
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    held: dict[str, asyncio.Event] = field(default_factory=dict)
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    def raw_args(self, name: str) -> frozenset[str]:
        return frozenset()

    def computes(self, name: str) -> bool:
        return False

    async def call(
        self,
        name: str,
        args: dict[str, Any],
        timeout_s: float,
        template_ctx: dict[str, Any],
        agent_host: Any = None,
    ) -> Any:
        self.calls.append((name, args))
        if name in self.held:
            self.entered.set()
            await self.held[name].wait()
        return self.tools[name](args)


def task(*steps: dict[str, Any], **fields: Any) -> Task:
    spec = TaskSpec.model_validate({"name": "chain", "steps": list(steps), **fields})
    return Task(**spec.fields(), id="tsk_test", timezone="UTC", created_at=T0, updated_at=T0)


def step(step_id: str, tool: str, **more: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": tool, "args": {"n": step_id}, **more}


def started(
    caller: StepCaller, chain: Task, secrets: Secrets | None = None
) -> tuple[Coroutine[Any, Any, Run], list[Run]]:
    """The runner's execution of `chain` (to await), and the list `finish` appends to."""
    runner = Runner(caller, FrozenClock(T0), Limits(step_timeout_s=5))
    run = Run(id="run_test", task_id=chain.id, status=RunStatus.RUNNING, cause=RunCause.MANUAL,
              created_at=T0, started_at=T0)  # fmt: skip
    finished: list[Run] = []

    async def persist(_: Run) -> None:
        return None

    async def finish(final: Run) -> Run:
        finished.append(final)
        return final

    going = runner.execute(
        chain, run, secrets=secrets or Secrets({}), persist=persist, finish=finish
    )
    return going, finished


async def execute(caller: StepCaller, chain: Task, secrets: Secrets | None = None) -> Run:
    """Runs `chain` once; the final record is what `finish` was handed."""
    going, finished = started(caller, chain, secrets)
    result = await going
    assert finished == [result]
    return result


def fails(message: str) -> Behaviour:
    def raise_it(_: dict[str, Any]) -> Any:
        raise RuntimeError(message)

    return raise_it


async def test_steps_run_in_order_and_the_last_output_is_the_runs() -> None:
    """Each step is called in order with its args; the run succeeds with the last step's output."""
    caller = FakeCaller({"get": lambda a: {"got": a["n"]}, "put": lambda a: "stored"})
    run = await execute(caller, task(step("one", "get"), step("two", "put")))
    assert caller.calls == [("get", {"n": "one"}), ("put", {"n": "two"})]
    assert run.status == RunStatus.SUCCEEDED
    assert [(s.id, s.status, s.output) for s in run.steps] == [
        ("one", StepStatus.SUCCEEDED, {"got": "one"}), ("two", StepStatus.SUCCEEDED, "stored"),
    ]  # fmt: skip
    assert run.output == "stored"


async def test_a_failed_step_stops_the_chain_naming_the_step() -> None:
    """A step that fails (on_error 'fail') fails the run with its error; later steps are skipped."""
    caller = FakeCaller({"get": fails("upstream said no"), "put": lambda a: "stored"})
    run = await execute(caller, task(step("one", "get"), step("two", "put")))
    assert run.status == RunStatus.FAILED
    assert [s.status for s in run.steps] == [StepStatus.FAILED, StepStatus.SKIPPED]
    assert "Step 'one' failed" in (run.error or "")
    assert "upstream said no" in (run.error or "")
    assert [name for name, _ in caller.calls] == ["get"]


async def test_on_error_continue_runs_the_rest_and_keeps_the_error() -> None:
    """A step with on_error 'continue' fails alone: the next step runs and the run succeeds with
    the failure noted."""
    caller = FakeCaller({"get": fails("flaky"), "put": lambda a: "stored"})
    run = await execute(caller, task(step("one", "get", on_error="continue"), step("two", "put")))
    assert run.status == RunStatus.SUCCEEDED
    assert [s.status for s in run.steps] == [StepStatus.FAILED, StepStatus.SUCCEEDED]
    assert "on_error=continue" in (run.error or "")


async def test_a_step_is_retried_by_its_policy() -> None:
    """A step with retry attempts is called again after a failure and records its attempts."""
    answers = iter([RuntimeError("once"), "ok"])

    def flaky(_: dict[str, Any]) -> Any:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    retry = {"attempts": 3, "backoff_s": 0, "max_backoff_s": 0}
    run = await execute(FakeCaller({"get": flaky}), task(step("one", "get", retry=retry)))
    assert run.status == RunStatus.SUCCEEDED
    assert (run.steps[0].attempts, run.steps[0].output) == (2, "ok")


async def test_a_timed_out_step_says_which_timeout_to_raise() -> None:
    """A step whose tool times out fails with an error naming the step and its timeout_s."""

    def slow(_: dict[str, Any]) -> Any:
        raise TimeoutError

    run = await execute(FakeCaller({"get": slow}), task(step("one", "get", timeout_s=2)))
    assert run.status == RunStatus.FAILED
    assert run.steps[0].error == "Step 'one' timed out after 2 s; raise its timeout_s."


async def test_secret_values_are_redacted_from_a_steps_error() -> None:
    """A secret's value in a step's error is stored as [secret:NAME], in the step and the run."""
    caller = FakeCaller({"get": fails("refused token hunter2-secret")})
    run = await execute(caller, task(step("one", "get")), Secrets({"TOKEN": "hunter2-secret"}))
    assert "hunter2-secret" not in (run.steps[0].error or "") + (run.error or "")
    assert "[secret:TOKEN]" in (run.steps[0].error or "")


async def test_a_cancelled_run_still_hands_its_final_record_to_finish() -> None:
    """Cancelling a run while a step is in progress still hands `finish` a final record: the
    run cancelled, that step and the ones after it cancelled, no later step called."""
    caller = FakeCaller({"get": lambda a: "never", "put": lambda a: "never"})
    caller.held["get"] = asyncio.Event()
    going, finished = started(caller, task(step("one", "get"), step("two", "put")))
    job = asyncio.create_task(going)
    await asyncio.wait_for(caller.entered.wait(), timeout=30)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    (final,) = finished
    assert final.status == RunStatus.CANCELLED
    assert [s.status for s in final.steps] == [StepStatus.CANCELLED, StepStatus.CANCELLED]
    assert [name for name, _ in caller.calls] == ["get"]


async def test_a_run_logs_one_info_line_carrying_its_ids() -> None:
    """At info level a run logs `run_finished` alone (cause, attempt, status, duration); every
    line it logs carries its ids, which are unbound again once it ends."""
    seen: list[dict[str, Any]] = []

    def look(_: dict[str, Any]) -> str:
        seen.append(structlog.contextvars.get_contextvars())
        return "ok"

    with capture_logs() as logs:
        run = await execute(FakeCaller({"get": look}), task(step("one", "get")))
    assert seen == [{"task_id": "tsk_test", "run_id": "run_test"}]
    assert structlog.contextvars.get_contextvars() == {}
    info = [e for e in logs if e["log_level"] != "debug"]
    assert info == [
        {"event": "run_finished", "log_level": "info", "cause": "manual", "attempt": 1,
         "status": "succeeded", "duration_ms": run.duration_ms},
    ]  # fmt: skip


async def test_a_slow_step_is_saved_as_running_and_a_fast_one_is_not() -> None:
    """A step still running after PERSIST_RUNNING_AFTER_S is written once as running (get_run
    shows it in progress); a step that ends sooner costs no progress write."""
    release = asyncio.Event()
    caller = FakeCaller(
        {"slow": lambda a: "done", "fast": lambda a: "done"}, held={"slow": release}
    )
    runner = Runner(caller, FrozenClock(T0), Limits(step_timeout_s=5))
    run = Run(id="run_test", task_id="tsk_test", status=RunStatus.RUNNING, cause=RunCause.MANUAL,
              created_at=T0, started_at=T0)  # fmt: skip
    saved: list[list[StepStatus]] = []
    written = asyncio.Event()

    async def persist(snapshot: Run) -> None:
        saved.append([s.status for s in snapshot.steps])  # as it is written
        written.set()

    async def finish(final: Run) -> Run:
        return final

    chain = task(step("quick", "fast"), step("long", "slow"))
    going = asyncio.create_task(
        runner.execute(chain, run, secrets=Secrets({}), persist=persist, finish=finish)
    )
    await asyncio.wait_for(caller.entered.wait(), 5)
    await asyncio.wait_for(written.wait(), 10)
    release.set()
    final = await asyncio.wait_for(going, 5)
    assert saved == [[StepStatus.SUCCEEDED, StepStatus.RUNNING]]
    assert final.status == RunStatus.SUCCEEDED
