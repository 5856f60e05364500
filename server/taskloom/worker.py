"""`taskloom worker`: the scheduler without an MCP transport, for a user service or a server."""

import asyncio
import gc
from typing import TYPE_CHECKING

import structlog

from taskloom.services import Services, build_services
from taskloom.settings import Settings
from taskloom.stopping import StopSignals

if TYPE_CHECKING:
    from taskloom.metrics import MetricsServer

log = structlog.get_logger(__name__)


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    metrics_at: tuple[str, int] | None = None,
) -> None:
    """Schedule and execute tasks until SIGTERM/SIGINT (or `stop`), then drain gracefully: the
    stop ends within TASKLOOM_SHUTDOWN_GRACE_S plus a few seconds; a second signal hurries it.
    With `metrics_at` (host, port), Prometheus metrics are served there at /metrics."""
    services = build_services(settings, role="worker")
    exporter = _exporter(services, metrics_at)
    signals = StopSignals(services.runs.hurry, lambda: services.stopping)
    signals.install()
    try:
        await services.start(schedule=True)
        if exporter is not None:
            exporter.start()
        # What start-up made (modules, schemas, tables) lives as long as the process: frozen,
        # the cyclic GC stops walking those objects at every full collection during a burst.
        gc.freeze()
        log.info("worker_ready", process_id=services.process_id, database=services.store.dialect)
        await _first(signals.requested, stop)
    finally:
        log.info("worker_stopping", grace_s=settings.shutdown_grace_s)
        try:
            await services.stop()
        finally:
            signals.remove()
            if exporter is not None:
                await exporter.stop()


def _exporter(services: Services, at: tuple[str, int] | None) -> "MetricsServer | None":
    if at is None:
        return None
    from taskloom.metrics import Metrics, MetricsServer

    return MetricsServer(Metrics(services), *at)


async def _first(*events: asyncio.Event | None) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events if e is not None]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
