"""The baseline: a bare FastMCP server with 16 trivial tools (as many as Taskloom exposes), one
of them an echo, served over stdio exactly as `taskloom serve` is."""

import os

os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")

from fastmcp import FastMCP

TOOLS = 16


def build() -> FastMCP:
    mcp = FastMCP("bare")

    @mcp.tool
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    for i in range(TOOLS - 1):

        def trivial(x: int = 0) -> int:
            return x + 1

        mcp.tool(trivial, name=f"trivial_{i}", description=f"Trivial tool {i}: returns x + 1.")
    return mcp


if __name__ == "__main__":
    build().run(transport="stdio", show_banner=False)
