"""Prometheus metrics: what this process ran (counters and histograms, observed as runs finish)
and the state of the database it shares with others (gauges, refreshed through the services
before each scrape).

Label sets stay bounded: no run ids; a task is labelled by its id for the first
TASKLOOM_METRICS_MAX_TASKS task ids this process sees, every later one as `other`; step tools
and upstream servers likewise (at most MAX_TOOL_LABELS and MAX_SERVER_LABELS values).
"""

import asyncio
import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from taskloom.domain.runs import Run, RunTrigger
from taskloom.domain.tasks import Task
from taskloom.errors import TaskloomError
from taskloom.insight import Insight

if TYPE_CHECKING:
    from threading import Thread
    from wsgiref.simple_server import WSGIServer

    from taskloom.services import Services

log = structlog.get_logger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER = "other"
MAX_TOOL_LABELS = 50
MAX_SERVER_LABELS = 20
# `taskloom worker --metrics-port`: the gauges are refreshed this often (seconds).
REFRESH_EVERY_S = 5.0
# Seconds: a step or a run from a few milliseconds to an hour.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class BoundedLabels:
    """The first `limit` distinct values keep their name; later ones are `other`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self.limit:
            return OTHER
        self._seen.add(value)
        return value


class Metrics:
    """One registry per process (not the library's global one, so several servers in one test
    process never collide)."""

    def __init__(self, services: "Services") -> None:
        self.services = services
        self.insight = Insight(services.store)
        self.registry = CollectorRegistry()
        self.task_label = BoundedLabels(services.settings.metrics_max_tasks)
        self.tool_label = BoundedLabels(MAX_TOOL_LABELS)
        self.server_label = BoundedLabels(MAX_SERVER_LABELS)
        self._define()
        services.runs.finished.append(self.observe_run)
        services.runs.caller.upstream_failed.append(self.observe_upstream_error)

    def _define(self) -> None:
        r = self.registry
        self.runs = Counter(
            "taskloom_runs", "Runs this process finished, by task and status",
            ["task", "status"], registry=r,
        )  # fmt: skip
        self.run_seconds = Histogram(
            "taskloom_run_duration_seconds", "Duration of the runs this process finished",
            ["task"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.step_seconds = Histogram(
            "taskloom_step_duration_seconds", "Duration of the steps this process ran, by tool",
            ["tool"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.lateness = Histogram(
            "taskloom_run_start_lateness_seconds",
            "How long after its scheduled instant a scheduled run started",
            ["trigger"], buckets=LATENESS_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "taskloom_upstream_call_errors", "Failed calls to upstream MCP servers' tools",
            ["server"], registry=r,
        )  # fmt: skip
        self._define_gauges()

    def _define_gauges(self) -> None:
        r = self.registry
        self.queue = Gauge("taskloom_queue_depth", "Queued runs (all owners)", registry=r)
        self.queue_due = Gauge(
            "taskloom_queue_due", "Queued runs whose start time has come", registry=r
        )
        self.running = Gauge("taskloom_runs_in_flight", "Runs running now", registry=r)
        self.tasks = Gauge("taskloom_tasks", "Tasks by status", ["status"], registry=r)
        self.heartbeat = Gauge(
            "taskloom_process_heartbeat_timestamp_seconds",
            "Last heartbeat of each live Taskloom process on the database (Unix time)",
            ["process", "role"], registry=r,
        )  # fmt: skip

    # -- observed as they happen -------------------------------------------------------------

    def observe_run(self, task: Task, run: Run) -> None:
        label = self.task_label(task.id)
        self.runs.labels(task=label, status=run.status.value).inc()
        if run.duration_ms is not None:
            self.run_seconds.labels(task=label).observe(run.duration_ms / 1000)
        for step in run.steps:
            if step.duration_ms is not None:
                tool = self.tool_label(step.tool)
                self.step_seconds.labels(tool=tool).observe(step.duration_ms / 1000)
        scheduled = run.trigger in (RunTrigger.SCHEDULE, RunTrigger.CATCHUP)
        if scheduled and run.fire_time is not None and run.started_at is not None:
            late = max(0.0, (run.started_at - run.fire_time).total_seconds())
            self.lateness.labels(trigger=run.trigger.value).observe(late)

    def observe_upstream_error(self, server: str) -> None:
        self.upstream_errors.labels(server=self.server_label(server)).inc()

    # -- read from the database --------------------------------------------------------------

    async def refresh(self) -> None:
        """The gauges from the database: counts in SQL, and the processes alive within a
        lease (as scheduler_status counts them)."""
        now = self.services.clock.now()
        counts = await self.insight.gauges(now)
        alive = await self.insight.processes(
            now - timedelta(seconds=self.services.settings.lease_s)
        )
        self.queue.set(counts.queued)
        self.queue_due.set(counts.queued_due)
        self.running.set(counts.running)
        self.tasks.clear()
        for name, count in counts.tasks_by_status.items():
            self.tasks.labels(status=name).set(count)
        self.heartbeat.clear()  # dead processes drop out (their rows are removed too)
        for p in alive:
            self.heartbeat.labels(process=p.id, role=p.role).set(p.heartbeat_at.timestamp())

    async def exposition(self) -> bytes:
        """The text format, gauges fresh; a database that cannot be read leaves them as they
        were (the counters are still worth scraping)."""
        try:
            await self.refresh()
        except Exception as exc:
            log.warning("metrics_refresh_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        return generate_latest(self.registry)


class MetricsServer:
    """`taskloom worker --metrics-port`: prometheus_client's own HTTP server in a thread, the
    gauges refreshed on the worker's loop every REFRESH_EVERY_S."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics, self.host, self.port = metrics, host, port
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None
        self._refreshing: asyncio.Task[None] | None = None

    def start(self) -> None:
        from prometheus_client import start_http_server

        try:
            self._server, self._thread = start_http_server(
                self.port, addr=self.host, registry=self.metrics.registry
            )
        except OSError as exc:
            raise TaskloomError(
                f"--metrics-port {self.port} on {self.host}: cannot listen ({exc.strerror}); "
                "pick a free port or another --metrics-host."
            ) from exc
        self._refreshing = asyncio.create_task(self._refresh_loop(), name="metrics-refresh")
        log.info("metrics_serving", url=f"http://{self.host}:{self.port}/metrics")

    async def _refresh_loop(self) -> None:
        while True:
            try:
                await self.metrics.refresh()
            except Exception as exc:
                log.warning("metrics_refresh_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(REFRESH_EVERY_S)

    async def stop(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refreshing
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
