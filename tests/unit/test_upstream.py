"""UpstreamPool and load_mcp_config against real upstream MCP servers (stdio and HTTP children)."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from taskloom.upstream import UpstreamError, UpstreamPool, load_mcp_config

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parents[1] / "fixtures" / "upstream_server.py"
QUIET = {
    "FASTMCP_SHOW_SERVER_BANNER": "false",
    "FASTMCP_CHECK_FOR_UPDATES": "off",
    "FASTMCP_LOG_LEVEL": "WARNING",
}
STDIO = {"command": sys.executable, "args": [str(FIXTURE)], "env": QUIET}


def write_config(tmp_path: Path, servers: dict[str, Any]) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir():
        # A zombie still answers kill(pid, 0); its state letter follows the ')' of the name.
        return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def wait_until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        # Another process's state has no event to await, so poll it.
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[UpstreamPool]:
    config = write_config(tmp_path, {"test": {**STDIO, "env": {**QUIET, "GREETING": "hello"}}})
    upstream = UpstreamPool(config)
    yield upstream
    await upstream.aclose()


@pytest.fixture
async def http_url(tmp_path: Path) -> AsyncIterator[str]:
    port_file = tmp_path / "port"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(FIXTURE),
        "--http",
        str(port_file),
        env={**os.environ, **QUIET},
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_until(lambda: port_file.exists() and port_file.read_text().isdigit())
        yield f"http://127.0.0.1:{port_file.read_text()}/mcp"
    finally:
        child.terminate()
        await asyncio.wait_for(child.wait(), timeout=10)


async def test_list_tools_names_each_tool_by_server_with_its_schema(pool: UpstreamPool) -> None:
    """list_tools names each upstream tool '<server>/<tool>' with its input schema."""
    tools = {info.name: info for info in await pool.list_tools()}

    add = tools["test/add"]
    assert (add.server, add.tool, add.description) == ("test", "add", "Add two integers.")
    assert add.input_schema["properties"] == {"a": {"type": "integer"}, "b": {"type": "integer"}}


async def test_call_unwraps_a_plain_value(pool: UpstreamPool) -> None:
    """A tool returning a plain value gives that value, not fastmcp's {'result': ...} wrapper."""
    assert await pool.call("test/add", {"a": 2, "b": 3}, timeout_s=10) == 5


async def test_call_returns_structured_object(pool: UpstreamPool) -> None:
    """A tool returning an object gives its structured content."""
    assert await pool.call("test/echo", {"text": "hi"}, timeout_s=10) == {"text": "hi"}


async def test_call_returns_text_when_tool_has_no_structured_output(pool: UpstreamPool) -> None:
    """A tool without structured output gives its text content."""
    assert await pool.call("test/shout", {"text": "hi"}, timeout_s=10) == "HI"


async def test_connection_is_reused_across_calls(pool: UpstreamPool) -> None:
    """Two calls to one server reach the same upstream process."""
    first = await pool.call("test/pid", {}, timeout_s=10)
    second = await pool.call("test/pid", {}, timeout_s=10)

    assert first == second


async def test_tool_error_raises_with_the_upstream_message(pool: UpstreamPool) -> None:
    """A tool reporting an error raises UpstreamError naming the tool, with the upstream's text."""
    with pytest.raises(UpstreamError, match=r"test/fail failed: the upstream refused: kaboom"):
        await pool.call("test/fail", {}, timeout_s=10)


async def test_unknown_tool_raises_listing_the_tools(pool: UpstreamPool) -> None:
    """Calling a tool the server lacks raises UpstreamError listing the tools it has."""
    with pytest.raises(UpstreamError, match=r"has no tool 'nope'; it has add, crash, echo"):
        await pool.call("test/nope", {}, timeout_s=10)


async def test_unknown_server_raises_naming_the_known_ones(pool: UpstreamPool) -> None:
    """Calling a server missing from the config raises UpstreamError naming the configured ones."""
    with pytest.raises(UpstreamError, match=r"No upstream MCP server named 'other'.* names test"):
        await pool.call("other/add", {}, timeout_s=10)


async def test_has_tool_answers_whether_a_tool_exists(pool: UpstreamPool) -> None:
    """has_tool is true for an upstream tool and false for a missing tool or server."""
    assert await pool.has_tool("test/add")
    assert not await pool.has_tool("test/nope")
    assert not await pool.has_tool("other/add")


async def test_timeout_raises_and_keeps_the_connection(pool: UpstreamPool) -> None:
    """A call over its timeout raises UpstreamError and the connection stays usable."""
    before = await pool.call("test/pid", {}, timeout_s=10)

    with pytest.raises(UpstreamError, match=r"test/slow did not answer within 0.3s"):
        await pool.call("test/slow", {"seconds": 30}, timeout_s=0.3)

    assert await pool.call("test/pid", {}, timeout_s=10) == before


async def test_progress_notifications_reach_the_callback(pool: UpstreamPool) -> None:
    """Progress the upstream tool reports reaches the caller's callback."""
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    await pool.call("test/slow", {"seconds": 0}, timeout_s=10, progress=on_progress)

    assert seen == [(0, 1, "sleeping")]


async def test_child_gets_filtered_environment_plus_its_config_env(
    pool: UpstreamPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stdio upstream sees its config's env but not Taskloom's other variables."""
    monkeypatch.setenv("TASKLOOM_TEST_SECRET", "do-not-leak")

    assert await pool.call("test/env", {"name": "GREETING"}, timeout_s=10) == "hello"
    assert await pool.call("test/env", {"name": "TASKLOOM_TEST_SECRET"}, timeout_s=10) is None


async def test_aclose_ends_the_child_process(pool: UpstreamPool) -> None:
    """aclose leaves no upstream child process behind."""
    pid = await pool.call("test/pid", {}, timeout_s=10)

    await pool.aclose()

    await wait_until(lambda: process_gone(pid))


async def test_crashed_upstream_is_restarted_on_next_call(pool: UpstreamPool) -> None:
    """A call that loses its connection raises, and the next call starts a new upstream."""
    before = await pool.call("test/pid", {}, timeout_s=10)

    with pytest.raises(UpstreamError, match=r"Lost the connection to upstream MCP server 'test'"):
        await pool.call("test/crash", {}, timeout_s=10)
    after = await pool.call("test/pid", {}, timeout_s=10)

    assert after != before


async def test_idle_connection_that_answers_is_kept(tmp_path: Path) -> None:
    """An idle connection whose upstream still answers is reused after the liveness check."""
    upstream = UpstreamPool(write_config(tmp_path, {"test": STDIO}), ping_after_idle_s=0)
    try:
        first = await upstream.call("test/pid", {}, timeout_s=10)

        assert await upstream.call("test/pid", {}, timeout_s=10) == first
    finally:
        await upstream.aclose()


async def test_upstream_killed_while_idle_is_reopened_before_the_call(tmp_path: Path) -> None:
    """An idle connection whose upstream died is reopened before the next call, which succeeds."""
    upstream = UpstreamPool(write_config(tmp_path, {"test": STDIO}), ping_after_idle_s=0)
    try:
        before = await upstream.call("test/pid", {}, timeout_s=10)
        os.kill(before, signal.SIGKILL)
        await wait_until(lambda: process_gone(before))

        assert await upstream.call("test/pid", {}, timeout_s=10) != before
    finally:
        await upstream.aclose()


async def test_missing_command_is_logged_and_other_servers_still_listed(tmp_path: Path) -> None:
    """A server whose command does not exist is logged and left out; the others are listed."""
    broken = {"command": str(tmp_path / "no-such-server")}
    upstream = UpstreamPool(write_config(tmp_path, {"test": STDIO, "broken": broken}))
    try:
        with capture_logs() as logs:
            names = {info.name for info in await upstream.list_tools()}
    finally:
        await upstream.aclose()

    assert "test/add" in names
    assert not any(name.startswith("broken/") for name in names)
    assert [e["server"] for e in logs if e["event"] == "upstream_unreachable"] == ["broken"]


async def test_call_to_missing_command_raises_a_clear_error(tmp_path: Path) -> None:
    """Calling a server whose command does not exist raises UpstreamError naming it and why."""
    broken = {"command": str(tmp_path / "no-such-server")}
    upstream = UpstreamPool(write_config(tmp_path, {"broken": broken}))
    try:
        with pytest.raises(UpstreamError, match=r"upstream MCP server 'broken'.*No such file"):
            await upstream.call("broken/add", {}, timeout_s=10)
    finally:
        await upstream.aclose()


async def test_http_port_with_nothing_listening_raises_a_clear_error(tmp_path: Path) -> None:
    """Calling an HTTP upstream with nothing listening raises UpstreamError naming its url."""
    url = f"http://127.0.0.1:{free_port()}/mcp"
    upstream = UpstreamPool(write_config(tmp_path, {"down": {"url": url}}))
    try:
        with pytest.raises(UpstreamError, match=rf"Cannot connect .* 'down' \(url {url}\)"):
            await upstream.call("down/add", {}, timeout_s=10)
    finally:
        await upstream.aclose()


async def test_http_upstream_lists_and_calls_tools(tmp_path: Path, http_url: str) -> None:
    """An upstream reached over streamable HTTP on loopback lists its tools and answers calls."""
    upstream = UpstreamPool(write_config(tmp_path, {"web": {"url": http_url}}))
    try:
        assert await upstream.has_tool("web/add")
        assert await upstream.call("web/add", {"a": 1, "b": 2}, timeout_s=10) == 3
    finally:
        await upstream.aclose()


@pytest.mark.parametrize(
    "entry",
    [
        {"command": "taskloom", "args": ["serve"]},
        {"command": "/usr/local/bin/taskloom", "args": ["worker"]},
        {"command": "uvx", "args": ["taskloom@latest", "serve"]},
        {"command": "python", "args": ["-m", "taskloom", "serve"]},
        {"command": "C:\\tools\\taskloom.exe", "args": ["serve"]},
        {"url": "http://localhost:8765/mcp"},
    ],
)
def test_config_leaves_out_entries_that_are_taskloom(tmp_path: Path, entry: dict[str, Any]) -> None:
    """An entry that starts or reaches Taskloom is left out with a warning; others stay."""
    config = write_config(tmp_path, {"self": entry, "test": STDIO})

    with capture_logs() as logs:
        servers = load_mcp_config(config, self_urls=["http://127.0.0.1:8765/mcp"])

    assert list(servers) == ["test"]
    assert [e["server"] for e in logs if e["event"] == "upstream_self_reference_skipped"] == [
        "self"
    ]


@pytest.mark.parametrize(
    "entry",
    [
        {"command": "python", "args": ["/srv/taskloom-notes/server.py"]},
        {"command": "npx", "args": ["-y", "@acme/taskloomish"]},
        {"url": "http://localhost:9999/mcp"},
    ],
)
def test_config_keeps_entries_that_only_resemble_taskloom(
    tmp_path: Path, entry: dict[str, Any]
) -> None:
    """An entry whose names merely contain 'taskloom' is kept."""
    config = write_config(tmp_path, {"other": entry})

    assert list(load_mcp_config(config, self_urls=["http://127.0.0.1:8765/mcp"])) == ["other"]


async def test_call_to_taskloom_itself_is_refused(tmp_path: Path) -> None:
    """A step cannot call a config entry that is Taskloom itself."""
    config = write_config(tmp_path, {"taskloom": {"command": "taskloom", "args": ["serve"]}})
    upstream = UpstreamPool(config)
    try:
        with pytest.raises(UpstreamError, match=r"is Taskloom itself.*cannot call Taskloom"):
            await upstream.call("taskloom/run_task", {}, timeout_s=10)
    finally:
        await upstream.aclose()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"Cannot read the MCP config file"),
        ('{"servers_by_name": {}}', r"has no 'mcpServers' object"),
        ('{"mcpServers": {"x": {"args": []}}}', r"Server 'x' .* needs a 'command'"),
        ('{"mcpServers": {"a/b": {"command": "x"}}}', r"without '/'"),
        ('{"mcpServers": {"x": {"command": "x", "args": "y"}}}', r"Server 'x' .*: args: "),
    ],
)
def test_malformed_config_raises_naming_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    """A malformed MCP config file raises UpstreamError saying what is wrong."""
    path = tmp_path / "mcp.json"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(UpstreamError, match=message):
        load_mcp_config(path)


def test_missing_config_file_raises(tmp_path: Path) -> None:
    """A config path that does not exist raises UpstreamError naming it."""
    with pytest.raises(UpstreamError, match=r"mcp.json does not exist"):
        load_mcp_config(tmp_path / "mcp.json")


async def test_pool_without_config_has_no_tools() -> None:
    """A pool without a config file lists nothing and refuses upstream calls."""
    upstream = UpstreamPool(None)

    assert await upstream.list_tools() == []
    with pytest.raises(UpstreamError, match=r"No upstream MCP server named 'test'"):
        await upstream.call("test/add", {}, timeout_s=10)


def test_creating_a_pool_imports_no_fastmcp() -> None:
    """Importing the module and creating a pool loads no fastmcp code (cold start)."""
    code = (
        "import sys; from pathlib import Path; from taskloom.upstream import UpstreamPool; "
        "UpstreamPool(Path('mcp.json')); "
        "sys.exit(any(m.split('.')[0] in ('fastmcp', 'mcp') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
