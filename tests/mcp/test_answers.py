"""Answers sized for a model's context: a small tool list, every answer under the budget
whatever a run stored, long values paged back whole, and get_run's compact view."""

import ast
import json
from typing import Any

from fastmcp import Client

from tests.fixtures.api_server import ApiServer, big_document
from tests.mcp.conftest import WAIT_STEP as WAIT
from tests.mcp.conftest import Loom, LoomFactory

TOOLS_LIST_LIMIT = 24 * 1024
ANSWER_LIMIT = 32 * 1024


def wire(message: Any) -> int:
    """Bytes of a result as the stdio and HTTP transports send it."""
    return len(message.model_dump_json(by_alias=True, exclude_none=True).encode())


async def test_tools_list_fits_in_24_kb(client: Client[Any]) -> None:
    """tools/list of the default tool set is at most 24 KB, every tool keeping its title,
    description and four behaviour hints."""
    listed = await client.list_tools_mcp()
    assert wire(listed) <= TOOLS_LIST_LIMIT, wire(listed)
    for tool in listed.tools:
        assert tool.title, tool.name
        assert tool.description, tool.name
        hints = tool.annotations
        assert hints is not None, tool.name
        flags = (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint,
                 hints.open_world_hint)  # fmt: skip
        assert None not in flags, tool.name


async def test_create_task_teaches_the_policies(client: Client[Any]) -> None:
    """create_task's description says what notify.on change, catchup and overlap do."""
    tools = {t.name: t for t in await client.list_tools()}
    text = " ".join((tools["create_task"].description or "").split())
    assert "change: only when the output differs from the previous successful run's" in text
    assert "catchup, for fires missed while Taskloom was down" in text
    assert "overlap, for a fire while the last run still runs" in text


def call_of(more: str) -> tuple[str, dict[str, Any]]:
    """The tool and arguments a marker's `more` names, e.g. get_run(run_id='run_x', ...)."""
    parsed = ast.parse(more, mode="eval").body
    assert isinstance(parsed, ast.Call), more
    assert isinstance(parsed.func, ast.Name), more
    return parsed.func.id, {k.arg: ast.literal_eval(k.value) for k in parsed.keywords if k.arg}


async def read_all(loom: Loom, more: str, head: str = "") -> tuple[str, str]:
    """Follows `more` from `head` until the value ends; returns its format and whole text,
    asserting each answer stays under the budget."""
    parts: list[str] = [head] if head else []
    fmt = ""
    next_call: str | None = more
    while next_call:
        tool, args = call_of(next_call)
        result = await loom.client.call_tool_mcp(tool, args)
        assert wire(result) < ANSWER_LIMIT, (next_call, wire(result))
        value = result.structured_content["value"]  # type: ignore[index]
        assert value["offset"] == sum(map(len, parts)), next_call
        parts.append(value["text"])
        fmt, next_call = value["format"], value["more"]
    return fmt, "".join(parts)


def markers(value: Any) -> list[dict[str, Any]]:
    """Every truncation marker in an answer."""
    if isinstance(value, dict):
        found = [value] if value.get("truncated") is True and "more" in value else []
        return found + [m for v in value.values() for m in markers(v)]
    if isinstance(value, list):
        return [m for v in value for m in markers(v)]
    return []


async def test_every_answer_about_a_1_mb_run_stays_under_32_kb(
    open_loom: LoomFactory, api: ApiServer
) -> None:
    """With a 1 MB response stored whole, every tool answer and resource read about the run
    and its task is under 32 KB."""
    async with open_loom(max_output_bytes=4 * 1024 * 1024) as loom:
        fetch = {"id": "fetch", "tool": "http_request", "args": {"url": api.url("/big-json")}}
        task_id = await loom.create([fetch])
        ran = await loom.client.call_tool_mcp("run_task", {"task_id": task_id})
        run_id = ran.structured_content["run"]["id"]  # type: ignore[index]
        calls = [
            ("get_run", {"run_id": run_id}),
            ("get_run", {"run_id": run_id, "view": "full"}),
            ("task_history", {}),
            ("get_task", {"task_id": task_id}),
            ("list_tasks", {}),
            ("dry_run", {"steps": [fetch]}),
        ]
        sizes = {"run_task": wire(ran)}
        for tool, args in calls:
            result = await loom.client.call_tool_mcp(tool, args)
            assert not result.is_error, result
            sizes[f"{tool} {args.get('view', '')}"] = wire(result)
        for uri in (f"taskloom://runs/{run_id}", f"taskloom://tasks/{task_id}",
                    f"taskloom://tasks/{task_id}/output"):  # fmt: skip
            sizes[uri] = wire(await loom.client.read_resource_mcp(uri))
        assert all(size < ANSWER_LIMIT for size in sizes.values()), sizes
        stored = await loom.services.runs.get(run_id, owner=None)
        assert stored.steps[0].output["json"] == big_document()  # nothing was cut when stored


async def test_markers_page_back_every_stored_value_whole(
    open_loom: LoomFactory, api: ApiServer
) -> None:
    """Following each marker's `more` call, slice after slice, rebuilds the stored value: here
    the 64 KB preview the store kept of a 1 MB response."""
    async with open_loom() as loom:
        fetch = {"id": "fetch", "tool": "http_request", "args": {"url": api.url("/big-json")}}
        run = await loom.run(await loom.create([fetch]))
        shown = run["steps"][0]["output"]
        assert shown["original_bytes"] > 1_000_000  # small fields stay whole beside markers
        found = markers(shown)
        assert found, shown
        record = (
            (await loom.services.runs.get(run["id"], owner=None)).steps[0].model_dump(mode="json")
        )
        for marker in found:
            _, args = call_of(marker["more"])
            fmt, text = await read_all(loom, marker["more"], marker["head"])
            expected = record
            for part in args["path"].split("."):
                expected = expected[part]
            assert fmt == marker["format"]
            assert (json.loads(text) if fmt == "json" else text) == expected
            assert len(text) == marker["chars"]


async def test_an_http_body_is_shown_once(loom: Loom, api: ApiServer) -> None:
    """get_run shows a long JSON body once, as parsed JSON; its text is one call away."""
    args = {"url": api.url("/echo"), "params": {"q": "x" * 400}}
    fetch = {"id": "fetch", "tool": "http_request", "args": args}
    run = await loom.run(await loom.create([fetch]))
    body = run["steps"][0]["output"]["text"]
    assert body["same_as"] == "json"
    fmt, text = await read_all(loom, body["more"])
    stored = (await loom.services.runs.get(run["id"], owner=None)).steps[0].output
    assert (fmt, text) == ("text", stored["text"])


async def test_get_run_pages_a_value_by_length(loom: Loom) -> None:
    """get_run with step, path, offset and length answers exactly that slice."""
    render = {"id": "say", "tool": "render", "args": {"template": "abcdefghij"}}
    run = await loom.run(await loom.create([render]))
    args = {"run_id": run["id"], "step": "say", "path": "output", "offset": 2, "length": 3}
    value = (await loom.call("get_run", args))["value"]
    assert value == {
        "format": "text", "chars": 10, "offset": 2, "text": "cde",
        "more": f"get_run(run_id={run['id']!r}, step='say', path='output', offset=5)",
    }  # fmt: skip


async def test_get_run_names_a_path_that_matches_nothing(loom: Loom) -> None:
    """A path that is not in the run is refused with the field and what to do."""
    render = {"id": "say", "tool": "render", "args": {"template": "hi"}}
    run = await loom.run(await loom.create([render]))
    message = await loom.error("get_run", {"run_id": run["id"], "step": "say", "path": "nope"})
    assert "path: 'nope' is not valid" in message
    assert "copy the path from the answer's marker" in message


async def test_get_run_shows_each_error_once_without_leases_or_nulls(
    loom: Loom, api: ApiServer
) -> None:
    """The compact view leaves out lease bookkeeping and nulls and shows a step's error once;
    view=full has the stored record."""
    fetch = {"id": "fetch", "tool": "http_request", "args": {"url": api.url("/fail")}}
    run = await loom.run(await loom.create([fetch, {"id": "later", "tool": "wait",
                                                     "args": {"seconds": 0}}]))  # fmt: skip
    compact = await loom.client.call_tool_mcp("get_run", {"run_id": run["id"]})
    text = compact.content[0].text  # type: ignore[union-attr]
    assert text.count("boom: database down") == 1
    shown = json.loads(text)["run"]
    assert shown["error"] == "Step 'fetch' failed: see steps[0].error"
    assert not {"lease_owner", "lease_expires_at"} & set(shown)
    assert "null" not in text
    full = (await loom.call("get_run", {"run_id": run["id"], "view": "full"}))["run"]
    assert {"lease_owner", "lease_expires_at"} <= set(full)
    assert full["error"].endswith(full["steps"][0]["error"])


async def test_a_long_task_is_bounded_and_paged_by_get_task(loom: Loom) -> None:
    """get_task cuts a long step argument to a marker whose get_task call pages it back whole."""
    template = "".join(f"line {i}: {'words ' * 8}\n" for i in range(1500))
    task_id = await loom.create([{"id": "say", "tool": "render", "args": {"template": template}}])
    result = await loom.client.call_tool_mcp("get_task", {"task_id": task_id})
    assert wire(result) < ANSWER_LIMIT, wire(result)
    shown = result.structured_content["task"]  # type: ignore[index]
    assert shown["name"].startswith("Chain")
    (marker,) = markers(shown)
    assert call_of(marker["more"])[1]["path"] == "steps[0].args.template"
    assert await read_all(loom, marker["more"], marker["head"]) == ("text", template)


async def test_scheduler_status_shortens_its_lists_to_the_budget(open_loom: LoomFactory) -> None:
    """scheduler_status keeps within the budget by shortening its longest lists, and says how
    many items each left out."""
    async with open_loom(max_answer_bytes=4096) as loom:
        for i in range(20):
            await loom.call("create_task", {"name": f"{i:02} " + "n" * 190, "steps": [
                {"id": "pause", "tool": "wait", "args": {"seconds": 0}}],
                "trigger": {"every": "1h"}})  # fmt: skip
        result = await loom.client.call_tool_mcp("scheduler_status", {})
        assert wire(result) <= 4096, wire(result)
        shown = result.structured_content
        assert shown is not None
        assert shown["omitted"]["next_fires"] + len(shown["next_fires"]) == 20


async def test_a_page_too_long_for_the_budget_is_shortened_not_lost(
    open_loom: LoomFactory,
) -> None:
    """list_tasks answers fewer tasks when a page does not fit, and its cursor still visits
    every task once; the tasks resource says how many it left out."""
    async with open_loom(max_answer_bytes=4096) as loom:
        made = [await loom.create([WAIT], name=f"{i:02} " + "n" * 190) for i in range(12)]
        seen: list[str] = []
        cursor = None
        while True:
            args: dict[str, Any] = {"limit": 12} | ({"cursor": cursor} if cursor else {})
            result = await loom.client.call_tool_mcp("list_tasks", args)
            assert wire(result) <= 4096, wire(result)
            page = result.structured_content
            assert page is not None
            assert len(page["tasks"]) < 12
            seen += [t["id"] for t in page["tasks"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == made
        read = await loom.client.read_resource_mcp("taskloom://tasks")
        assert wire(read) <= 4096, wire(read)
        listed = json.loads(read.contents[0].text)  # type: ignore[union-attr]
        assert listed["omitted"]["tasks"] + len(listed["tasks"]) == 12
