"""SIGINT and SIGTERM as a graceful stop, for `taskloom worker` and `taskloom serve` over stdio.

The first signal starts the stop: no new fires, in-flight runs get TASKLOOM_SHUTDOWN_GRACE_S to
finish, then the rest are recorded `interrupted`. A signal that comes while a stop is already
under way (a second one, or a client's SIGTERM after it closed stdin) hurries it: the runs still
going are cut short at once (and recorded). Either way the process ends without a traceback.
"""

import asyncio
import signal
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    def __init__(self, hurry: Callable[[], None], stopping: Callable[[], bool]) -> None:
        self.requested = asyncio.Event()
        self.signum = 0
        self._hurry = hurry
        self._stopping = stopping
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        self._loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            self._loop.add_signal_handler(sig, self._received, sig)

    def remove(self) -> None:
        if self._loop is not None:
            for sig in SIGNALS:
                self._loop.remove_signal_handler(sig)
            self._loop = None

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal."""
        return 128 + self.signum if self.signum else 0

    def _received(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.requested.is_set() or self._stopping():
            log.warning("stop_hurried", signal=name)
            self._hurry()
        else:
            log.info("stop_requested", signal=name)
        if not self.requested.is_set():
            self.signum = signum
            self.requested.set()
