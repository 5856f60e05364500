"""A minimal MCP client over stdio (newline-delimited JSON-RPC), the same for Taskloom and the
baseline, so both pay the same client cost and the figures measure the servers."""

import asyncio
import contextlib
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

PROTOCOL = "2025-06-18"


class McpError(RuntimeError):
    pass


class StdioSession:
    def __init__(self, argv: list[str], env: dict[str, str], stderr_path: Path) -> None:
        self.argv = argv
        self.env = env
        self.stderr_path = stderr_path
        self.proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def spawn(self) -> None:
        with self.stderr_path.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=self.env,
                limit=64 * 1024 * 1024,
            )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                future = self._waiting.pop(message.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(message)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(McpError(f"server exited ({self.stderr_path})"))

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        await self.proc.stdin.drain()

    async def request(self, method: str, params: dict[str, Any], timeout_s: float = 60.0) -> Any:
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = future
        await self._send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        answer = await asyncio.wait_for(future, timeout_s)
        if "error" in answer:
            raise McpError(f"{method}: {answer['error']}")
        return answer["result"]

    async def initialize(self, timeout_s: float = 60.0) -> None:
        params = {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "taskloom-bench", "version": "1"},
        }
        await self.request("initialize", params, timeout_s)
        await self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def call(self, tool: str, args: dict[str, Any], timeout_s: float = 60.0) -> Any:
        result = await self.request("tools/call", {"name": tool, "arguments": args}, timeout_s)
        if result.get("isError"):
            raise McpError(f"{tool}: {result.get('content')}")
        return result.get("structuredContent")

    async def close(self, timeout_s: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def timed_call(session: StdioSession, tool: str, args: dict[str, Any]) -> float:
    """Seconds one tools/call took, from write to answer."""
    started = time.perf_counter()
    await session.call(tool, args)
    return time.perf_counter() - started


def python() -> str:
    venv = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else os.environ.get("PYTHON", "python3")
