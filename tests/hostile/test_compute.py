"""Hostile computation through a real HTTP server with two principals: each case fails its own
step with a message naming the step, the limit and the setting, while the other principal's
list_tasks keeps answering, the server survives and nothing is left running."""

import re
from typing import Any

import pytest
from fastmcp import Client

from tests.fixtures.taskloom_process import HttpServer
from tests.hostile.conftest import ALICE, call, client, named, neighbour_polling
from tests.mcp.conftest import eventually

pytestmark = pytest.mark.slow

BOMB = "|".join(["[@,@,@,@,@,@,@,@,@,@]"] * 9)
LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
OVER_A_LIMIT = re.compile(
    r"Step '(?P<step>\w+)' \(\w+\) used more than (256 MB of memory|1 s of CPU time) while "
    r"\w+ its \w+; the limit is set by TASKLOOM_SANDBOX_(MEMORY_MB|CPU_S)\."
)


def step(step_id: str, tool: str, **args: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": tool, "args": args}


async def dry_run_error(alice: Client[Any], *steps: dict[str, Any]) -> str:
    answer = await call(alice, "dry_run", {"steps": list(steps)})
    failed = [s for s in answer["run"]["steps"] if s["status"] == "failed"]
    assert answer["run"]["status"] == "failed", answer
    error: str = failed[0]["error"]
    return error


async def nothing_running(alice: Client[Any]) -> None:
    async def idle() -> bool:
        runs = await call(alice, "task_history", {"status": ["running", "queued"]})
        return not runs["runs"]

    await eventually(idle, timeout_s=180)


HOSTILE_DRY_RUNS = [
    pytest.param(step("bomb", "extract", data=[1], expression=BOMB), OVER_A_LIMIT, id="jmespath"),
    pytest.param(
        step("wide", "wait", seconds="{{ 'a'|center(200000000) }}"),
        re.compile(r"step 'wide', args\.seconds: .*center to width 200,000,000 would build more"),
        id="center",
    ),
    pytest.param(
        step("nest", "render", template="{{ [[[['a'] * 1000] * 1000] * 1000] * 1000 }}"),
        re.compile(r"repeating a value 1,000 times would build more than 1,000,000"),
        id="nested-repetition",
    ),
    pytest.param(step("spin", "render", template=LOOP), OVER_A_LIMIT, id="cpu-loop"),
    pytest.param(
        step(
            "double",
            "render",
            template="{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        ),
        OVER_A_LIMIT,
        id="string-doubling",
    ),
    pytest.param(
        step("big", "render", template="{% for i in range(100000) %}{{ 'x' * 999 }}{% endfor %}"),
        re.compile(r"Step 'big' \(render\) (used more than|built a value of) .*TASKLOOM_SANDBOX_"),
        id="huge-render-output",
    ),
]


@pytest.mark.parametrize(("hostile", "expected"), HOSTILE_DRY_RUNS)
async def test_hostile_dry_run_fails_its_step_and_spares_the_neighbour(
    server: HttpServer, hostile: dict[str, Any], expected: re.Pattern[str]
) -> None:
    """A hostile step in a dry run fails with a message naming the step and the limit."""
    async with neighbour_polling(server), client(server, ALICE) as alice:
        error = await dry_run_error(alice, hostile)
        assert expected.search(error), error
        await nothing_running(alice)


async def test_render_past_its_timeout_is_stopped(server: HttpServer) -> None:
    """A render step past its timeout_s fails as timed out and leaves no worker running it."""
    slow = {**step("slow", "render", template=LOOP), "timeout_s": 0.5}
    async with neighbour_polling(server), client(server, ALICE) as alice:
        error = await dry_run_error(alice, slow)
        assert error == "Step 'slow' timed out after 0.5 s; raise its timeout_s."
        answer = await call(alice, "dry_run", {"steps": [step("ok", "render", template="ok")]})
        assert answer["run"]["steps"][0]["output"] == "ok"


@pytest.mark.timeout(900)
async def test_fifty_extract_steps_every_second_spare_the_neighbour(server: HttpServer) -> None:
    """A task firing every second with 50 extract steps over a 100,000-item list runs (or
    fails its steps) without starving the neighbour, and leaves nothing running once off."""
    steps = [
        step(f"e{i}", "extract", data="{{ range(100000)|list }}", expression="length(@)")
        for i in range(50)
    ]
    task = {"name": named("hostile fifty"), "steps": steps, "trigger": {"every": 1}}
    async with neighbour_polling(server), client(server, ALICE) as alice:
        task_id = (await call(alice, "create_task", task))["task"]["id"]

        async def finished_runs() -> list[dict[str, Any]] | None:
            statuses = ["succeeded", "failed"]
            args = {"task_id": task_id, "status": statuses}
            runs: list[dict[str, Any]] = (await call(alice, "task_history", args))["runs"]
            return runs if len(runs) >= 2 else None

        runs = await eventually(finished_runs, timeout_s=300)
        await call(alice, "update_task", {"task_id": task_id, "enabled": False})
        await nothing_running(alice)
    run = runs[0]
    assert run["status"] in ("succeeded", "failed"), run
    if run["status"] == "failed":
        assert OVER_A_LIMIT.search(run["error"]), run["error"]


async def test_a_failed_hostile_run_is_recorded_and_the_next_run_works(
    server: HttpServer,
) -> None:
    """A saved task whose step hits a limit records a failed run; a sane run follows."""
    async with neighbour_polling(server), client(server, ALICE) as alice:
        bomb = step("bomb", "extract", data=[1], expression=BOMB)
        created = await call(alice, "create_task", {"name": named("bomb"), "steps": [bomb]})
        run = (await call(alice, "run_task", {"task_id": created["task"]["id"]}))["run"]
        assert run["status"] == "failed"
        assert OVER_A_LIMIT.search(run["steps"][0]["error"]), run["steps"][0]["error"]
        sane = await call(
            alice, "dry_run", {"steps": [step("n", "extract", data=[1, 2], expression="length(@)")]}
        )
        assert sane["run"]["output"] == 2
