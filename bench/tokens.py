"""8. What `tools/list` costs every chat before it says a word: bytes and tokens (bytes / 4),
Taskloom against the bare FastMCP server with as many tools, both over stdio."""

import json
from typing import Any

from bench.common import Config, Row, sqlite_url, taskloom_env
from bench.stdio import StdioSession
from bench.stdio_bench import BARE, TASKLOOM

# The target for the default tool set.
LIMIT_BYTES = 24 * 1024


async def _listed(argv: list[str], env: dict[str, str], cfg: Config, name: str) -> dict[str, Any]:
    session = StdioSession(argv, env, cfg.workdir / f"{name}.log")
    await session.spawn()
    try:
        await session.initialize()
        result: dict[str, Any] = await session.request("tools/list", {})
        return result
    finally:
        await session.close()


def _bytes(result: dict[str, Any]) -> int:
    """The result as compact JSON, as the server writes it on the wire."""
    return len(json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode())


async def tools_list(cfg: Config) -> list[Row]:
    workdir = cfg.workdir / "tokens"
    workdir.mkdir(parents=True, exist_ok=True)
    env = taskloom_env(sqlite_url(workdir), workdir)
    ours = await _listed(TASKLOOM, env, cfg, "serve")
    bare = await _listed(BARE, env, cfg, "bare")
    size, bare_size = _bytes(ours), _bytes(bare)
    count, bare_count = len(ours["tools"]), len(bare["tools"])
    return [
        Row("tokens", f"tools/list, compact JSON ({count} tools)", size, "bytes",
            f"bare FastMCP, {bare_count} tools", bare_size, size / bare_size,
            "<= 24 KB", size <= LIMIT_BYTES),
        Row("tokens", "same, tokens (bytes / 4)", size / 4, "tokens",
            f"bare FastMCP, {bare_count} tools", bare_size / 4, size / bare_size),
    ]  # fmt: skip
