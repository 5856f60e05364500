"""User-controlled computation in a run goes through the sandbox workers: limits fail the step
with a message naming the step, the limit and its setting, and stored args are bounded."""

import re
from typing import Any

from tests.mcp.conftest import Loom, LoomFactory

BOMB = "|".join(["[@,@,@,@,@,@,@,@,@,@]"] * 9)


def extract_step(step_id: str, data: Any, expression: str) -> dict[str, Any]:
    return {"id": step_id, "tool": "extract", "args": {"data": data, "expression": expression}}


async def test_jmespath_bomb_fails_its_step_on_a_limit(open_loom: LoomFactory) -> None:
    """The issue's 189-character JMESPath expression fails its step on the memory or CPU
    limit, named with its setting, and a later run still works."""
    # A wall limit far above the CPU limit: on a busy machine 1 s of CPU can take over 10 s.
    async with open_loom(sandbox_cpu_s=1.0, sandbox_memory_mb=256, sandbox_wall_s=300) as loom:
        answer = await loom.call("dry_run", {"steps": [extract_step("bomb", [1], BOMB)]})
        (step,) = answer["run"]["steps"]
        assert step["status"] == "failed"
        assert re.fullmatch(
            r"Step 'bomb' \(extract\) used more than (256 MB of memory|1 s of CPU time) while "
            r"computing its result; the limit is set by TASKLOOM_SANDBOX_(MEMORY_MB|CPU_S)\.",
            step["error"],
        ), step["error"]
        again = await loom.call("dry_run", {"steps": [extract_step("ok", [1, 2], "length(@)")]})
        assert again["run"]["steps"][0]["output"] == 2


async def test_a_huge_center_fails_its_step_before_allocating(loom: Loom) -> None:
    """`{{ 'a'|center(200000000) }}` in an argument fails its step naming the refused call."""
    step = {"id": "wide", "tool": "wait", "args": {"seconds": "{{ 'a'|center(200000000) }}"}}
    answer = await loom.call("dry_run", {"steps": [step]})
    error = answer["run"]["steps"][0]["error"]
    assert error.startswith("step 'wide', args.seconds: template")
    assert "center to width 200,000,000 would build more than 1,000,000" in error


async def test_stored_args_are_bounded_like_outputs(open_loom: LoomFactory) -> None:
    """Args over max_output_bytes are stored as a marked preview with their original size,
    while the tool still gets them whole."""
    async with open_loom(max_output_bytes=1024) as loom:
        steps = [
            extract_step("big", "{{ range(5000)|list }}", "length(@)"),
            extract_step("small", "{{ steps.big.output }}", "@"),
        ]
        run = await loom.run(await loom.create(steps))
    big = run["steps"][0]
    assert big["output"] == 5000
    assert big["args"]["truncated"] is True
    assert big["args"]["original_bytes"] > 20_000
    assert len(big["args"]["preview"].encode()) <= 1024
    assert "arguments were larger than TASKLOOM_MAX_OUTPUT_BYTES" in big["args"]["hint"]
    assert run["output"] == 5000


async def test_a_render_over_the_cpu_limit_fails_and_names_the_setting(
    open_loom: LoomFactory,
) -> None:
    """A render template looping past the CPU limit fails its step, naming the setting."""
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    step = {"id": "spin", "tool": "render", "args": {"template": loop}}
    async with open_loom(sandbox_cpu_s=0.5, sandbox_wall_s=120) as loom:
        answer = await loom.call("dry_run", {"steps": [step]})
    assert answer["run"]["steps"][0]["error"] == (
        "Step 'spin' (render) used more than 0.5 s of CPU time while computing its result; "
        "the limit is set by TASKLOOM_SANDBOX_CPU_S."
    )


async def test_a_render_past_its_step_timeout_is_stopped(loom: Loom) -> None:
    """A render step past its own timeout_s fails with the timeout message; its worker is
    killed, so the next run's render still answers."""
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    slow = {"id": "slow", "tool": "render", "args": {"template": loop}, "timeout_s": 0.2}
    answer = await loom.call("dry_run", {"steps": [slow]})
    error = answer["run"]["steps"][0]["error"]
    assert error == "Step 'slow' timed out after 0.2 s; raise its timeout_s."
    quick = {"id": "quick", "tool": "render", "args": {"template": "{{ 1 + 1 }}"}}
    again = await loom.call("dry_run", {"steps": [quick]})
    assert again["run"]["steps"][0]["output"] == "2"
