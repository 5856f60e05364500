"""Killable, OS-limited worker processes for user-controlled computation.

Templates, `render`, `extract`, redaction and the serialising of step values run here, never on
the event loop. A thread cannot be stopped, so each job runs in a persistent child process that
the operating system bounds: its address space (RLIMIT_AS, so an allocation fails with
MemoryError), its CPU time per job (a profiling timer raises inside the child; RLIMIT_CPU kills a
child stuck inside one C call), and a wall-clock deadline in the parent after which the child is
SIGKILLed and replaced. A result is pickled in the child and refused there when it is too big.
"""

import asyncio
import contextlib
import dataclasses
import importlib
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import structlog

try:  # absent on Windows: there the wall-clock deadline is the only bound
    import resource
except ImportError:  # pragma: no cover
    resource = None  # type: ignore[assignment]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SandboxLimits:
    """What one job may use; each figure is a setting (see Settings)."""

    workers: int = 2
    memory_mb: int = 512
    cpu_s: float = 2.0
    wall_s: float = 10.0
    value_bytes: int = 16 * 1024 * 1024
    # Modules each worker imports before its limits apply (the jobs' own modules), so that an
    # import's memory and time are not charged to the first job. Given by the user of the pool:
    # the sandbox itself runs any module-level function.
    preload: tuple[str, ...] = ()


class LimitExceeded(Exception):
    """A job went over a limit; `detail` says which ("used more than 512 MB of memory") and
    `setting` names the environment variable that raises it."""

    def __init__(self, detail: str, setting: str) -> None:
        super().__init__(f"{detail} ({setting})")
        self.detail = detail
        self.setting = setting


class _CpuExceeded(BaseException):
    """Raised by the CPU timer inside the child; a BaseException so no `except Exception` in a
    library swallows it."""


class Sandbox:
    """A lazily started pool of `limits.workers` worker processes. `call` runs a module-level
    function in one of them and returns its result, or raises `LimitExceeded`."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._slots: asyncio.Semaphore | None = None
        # Its own threads: a waiting job must not take one that DNS look-ups need.
        self._threads = ThreadPoolExecutor(2 * limits.workers + 1, thread_name_prefix="sandbox")

    async def call(self, fn: Callable[..., Any], *args: Any, timeout_s: float | None = None) -> Any:
        """`fn(*args)` in a worker. Over the wall-clock deadline (the smaller of `timeout_s` and
        the wall limit) or when the caller is cancelled, the worker is killed and replaced."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limits.workers)
        async with self._slots:
            worker = self._idle.pop() if self._idle else await self._in_thread(self._start)
            self._busy.add(worker)
            try:
                reply = await self._round_trip(worker, fn, args, timeout_s)
            finally:
                self._busy.discard(worker)
            if worker.alive:
                self._idle.append(worker)
        return reply.value()

    async def warm_up(self) -> None:
        """Start the workers ahead of the first step: a cold start costs a fresh interpreter,
        which a step's timing should not pay. Each started worker joins the idle list from its
        thread, so `close` stops it even if this coroutine is cancelled."""
        missing = self.limits.workers - len(self._idle) - len(self._busy)
        await asyncio.gather(*(self._in_thread(self._start_idle) for _ in range(missing)))

    def _start_idle(self) -> None:
        self._idle.append(_Worker(self.limits))

    async def close(self) -> None:
        """Stop every worker (idle and busy); later calls start new ones."""
        workers = [*self._idle, *self._busy]
        self._idle.clear()
        await asyncio.gather(*(self._in_thread(w.kill) for w in workers))

    def worker_pids(self) -> list[int]:
        """The process ids of the live workers (for tests and benchmarks)."""
        return [w.pid for w in (*self._idle, *self._busy) if w.alive]

    async def _round_trip(
        self,
        worker: "_Worker",
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        deadline_s: float | None,
    ) -> "_Reply":
        wall = self.limits.wall_s if deadline_s is None else min(deadline_s, self.limits.wall_s)
        try:
            reply: _Reply = await self._in_thread(worker.call, fn, args, wall)
        except BaseException:
            await self._in_thread(worker.kill)  # cancelled: the job must not run on
            raise
        if reply.kind == "timeout" and deadline_s is not None and deadline_s < self.limits.wall_s:
            reply = _Reply("step_timeout", deadline_s)
        if not worker.alive or reply.kind in ("timeout", "step_timeout", "memory"):
            # A child past its deadline may be anywhere; one after MemoryError exits itself.
            await self._in_thread(worker.kill)
            log.warning("sandbox_worker_replaced", reason=reply.kind, pid=worker.pid)
        return reply

    def _start(self) -> "_Worker":
        return _Worker(self.limits)

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)


@dataclass(frozen=True)
class _Reply:
    kind: str  # ok, raised, memory, cpu, size, timeout, step_timeout, died
    payload: Any = None

    def value(self) -> Any:
        if self.kind == "ok":
            return self.payload
        if self.kind == "raised":
            raise self.payload
        if self.kind == "step_timeout":
            raise TimeoutError(f"timed out after {self.payload:g} s")
        raise _limit_error(self.kind, self.payload)


def _limit_error(kind: str, payload: Any) -> LimitExceeded:
    if kind == "memory":
        return LimitExceeded(f"used more than {payload} MB of memory", "TASKLOOM_SANDBOX_MEMORY_MB")
    if kind == "cpu":
        return LimitExceeded(f"used more than {payload:g} s of CPU time", "TASKLOOM_SANDBOX_CPU_S")
    if kind == "size":
        shown = f"{payload[0]:,} bytes, over the {payload[1]:,} byte limit"
        return LimitExceeded(f"built a value of {shown}", "TASKLOOM_SANDBOX_VALUE_BYTES")
    if kind == "timeout":
        return LimitExceeded(f"ran longer than {payload:g} s", "TASKLOOM_SANDBOX_WALL_S")
    return LimitExceeded("stopped its worker process (it crashed)", "TASKLOOM_SANDBOX_MEMORY_MB")


class _Worker:
    """One child process and the parent's end of its socket. `call` blocks (it runs in a
    thread). A fresh interpreter, not a fork: nothing of the server (its loop, its connections,
    its main module) is copied into the process that runs user input."""

    def __init__(self, limits: SandboxLimits) -> None:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            settings = json.dumps(dataclasses.asdict(limits))
            self.process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(theirs.fileno()), settings],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # in stdio mode stdout is the MCP protocol
            )
            self.conn = Connection(ours.detach())
        with contextlib.suppress(OSError, AttributeError):
            # Below the server's priority: a busy worker must not slow the event loop down.
            os.setpriority(os.PRIO_PROCESS, self.process.pid, _NICE)
        self.limits = limits
        self.pid = self.process.pid
        self.alive = True
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Block until the child has imported its modules, so a job's deadline counts only the
        job, not a cold start on a busy machine."""
        try:
            if self.conn.poll(_START_S) and self.conn.recv_bytes() == _READY:
                return
        except (EOFError, OSError):
            pass
        self.kill()
        raise RuntimeError(f"a sandbox worker did not start within {_START_S:g} s")

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], wall_s: float) -> _Reply:
        try:
            self.conn.send_bytes(pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL))
            if not self.conn.poll(wall_s):
                return _Reply("timeout", wall_s)
            kind, payload = pickle.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            return _Reply(*self._death())
        return _Reply(kind, payload)

    def _death(self) -> tuple[str, Any]:
        self.alive = False
        try:
            code = self.process.wait(1.0)
        except subprocess.TimeoutExpired:
            code = None
        # SIGXCPU is RLIMIT_CPU's backstop: the child was stuck inside one C call.
        if code == -signal.SIGXCPU:
            return "cpu", self.limits.cpu_s
        return "died", code

    def kill(self) -> None:
        self.alive = False
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.conn.close()


_CHILD = "from taskloom.runs.sandbox import serve_child; serve_child()"
_READY = b"ready"
_NICE = 10
_START_S = 120.0


# -- the child side ------------------------------------------------------------------------------


def serve_child() -> None:
    """The worker process's entry point: argv holds its socket's fd and its limits."""
    given = json.loads(sys.argv[2])
    limits = SandboxLimits(**{**given, "preload": tuple(given.get("preload", ()))})
    try:
        _serve(Connection(int(sys.argv[1])), limits)
    except (BrokenPipeError, ConnectionResetError, EOFError):
        # The parent is gone (stopped, or killed): nobody is left to answer, and a traceback
        # on the stderr we share with it would only be noise in its log.
        os._exit(0)


def _serve(conn: Connection, limits: SandboxLimits) -> None:
    """The worker's loop: one job at a time until the parent closes the socket."""
    for module in limits.preload:
        importlib.import_module(module)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGPROF, _on_cpu_timer)
    if resource is not None:
        cap = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    conn.send_bytes(_READY)
    while True:
        try:
            fn, args = pickle.loads(conn.recv_bytes())
        except EOFError:
            return
        kind, payload = _run_job(fn, args, limits)
        conn.send_bytes(_reply_bytes(kind, payload))
        if kind == "memory":
            os._exit(0)  # after a MemoryError a fresh process is the safe state


def _run_job(fn: Callable[..., Any], args: tuple[Any, ...], limits: SandboxLimits) -> Any:
    _cpu_backstop(limits.cpu_s)
    signal.setitimer(signal.ITIMER_PROF, limits.cpu_s)
    try:
        result = pickle.dumps(("ok", fn(*args)), protocol=pickle.HIGHEST_PROTOCOL)
    except _CpuExceeded:
        return "cpu", limits.cpu_s
    except MemoryError:
        return "memory", limits.memory_mb
    except RecursionError:
        return "raised", ValueError("the value is nested too deeply")
    except Exception as exc:  # the job's own failure, handed to the caller as data
        return "raised", _portable(exc)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    if len(result) > limits.value_bytes:
        return "size", (len(result), limits.value_bytes)
    return "bytes", result


def _reply_bytes(kind: str, payload: Any) -> bytes:
    if kind == "bytes":
        return bytes(payload)
    return pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)


def _portable(exc: Exception) -> Exception:
    """`exc` if it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _cpu_backstop(cpu_s: float) -> None:
    """RLIMIT_CPU a little above this job's budget: SIGXCPU kills a child that never returns
    to the interpreter (one long C call), where the timer's exception cannot fire."""
    if resource is None:
        return
    used = time.process_time()
    soft = int(used + cpu_s * 2 + 1)
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _on_cpu_timer(signum: int, frame: Any) -> None:
    raise _CpuExceeded
