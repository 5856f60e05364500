"""`taskloom worker`: the scheduler without an MCP transport, for a user service or a server."""

import asyncio
import signal

import structlog

from taskloom.app import build_services
from taskloom.settings import Settings

log = structlog.get_logger(__name__)


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Schedule and execute tasks until SIGTERM/SIGINT (or `stop`), then drain gracefully."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    services = build_services(settings, role="worker")
    await services.start(schedule=True)
    log.info("worker_ready", process_id=services.process_id, database=services.store.dialect)
    try:
        await stop.wait()
    finally:
        log.info("worker_stopping", grace_s=settings.shutdown_grace_s)
        await services.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
