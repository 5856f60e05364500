"""An upstream MCP entry that points back at the serving process is refused, so a chain cannot
make Taskloom call itself (a loop that would multiply every run)."""

import json
from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import ToolError

from tests.fixtures.taskloom_process import http_server, log_events

pytestmark = pytest.mark.slow


async def test_an_upstream_entry_at_our_own_url_is_refused(tmp_path: Path) -> None:
    """An entry naming this server's own HTTP URL (any loopback spelling) offers no tools."""
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {}}))  # the server checks it exists at start
    with http_server(tmp_path / "t.db", TASKLOOM_MCP_CONFIG=str(config)) as server:
        # The config is read at first use, so it can name the port the server was given.
        own = server.url.replace("127.0.0.1", "localhost") + "/mcp"
        config.write_text(json.dumps({"mcpServers": {"self": {"url": own}}}))
        async with Client(StreamableHttpTransport(f"{server.url}/mcp"), timeout=120) as client:
            listed = await client.call_tool("list_step_tools", {})
            step = {"id": "loop", "tool": "self/list_tasks", "args": {}}
            with pytest.raises(ToolError, match=r"steps\[0\]\.tool"):
                await client.call_tool("create_task", {"name": "loop", "steps": [step]})
        skipped = [
            e for e in log_events(server.log) if e["event"] == "upstream_self_reference_skipped"
        ]
        assert [e["server"] for e in skipped] == ["self"]
        assert "Taskloom's own endpoint" in skipped[0]["reason"]
    assert "self/" not in json.dumps(listed.structured_content)
