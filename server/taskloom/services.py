"""The service graph, wired in one place (`build_services`) and handed to the MCP surface, the
CLI, the worker and the dashboard. FastMCP-free: commands other than `serve` never import it."""

import asyncio
import hashlib
import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from taskloom.answers import (
    LeaseStatus,
    NextFire,
    ProcessStatus,
    SchedulerStatus,
    TaskAnswer,
    TaskHealth,
)
from taskloom.clock import Clock, SystemClock
from taskloom.settings import Settings
from taskloom_tools.base import ToolContext

# Seconds after start before the sandbox workers are started (see Services._warm_sandbox).
SANDBOX_WARM_AFTER_S = 3.0

if TYPE_CHECKING:
    import httpx

    from taskloom.runs.retention import Retention
    from taskloom.runs.sandbox import Sandbox
    from taskloom.runs.service import RunService
    from taskloom.scheduling.scheduler import Scheduler, Timing
    from taskloom.step_tools import StepCatalog
    from taskloom.store.sql import SqlStore
    from taskloom.tasks.revisions import TaskAudit
    from taskloom.tasks.service import TaskService


def _opaque(process_id: str) -> str:
    """A stable name for a process that reveals neither its host nor its pid."""
    return "process-" + hashlib.sha256(process_id.encode()).hexdigest()[:12]


def new_process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class ToolContexts:
    """Builds each built-in step call's `ToolContext`; owns the shared HTTP client.

    The client is made a second after start (or at the first step call, if sooner), not at
    start: importing httpx and building its TLS context costs ~0.1 s that `taskloom serve`
    would otherwise spend before answering its client."""

    def __init__(
        self,
        settings: Settings,
        *,
        http: "httpx.AsyncClient | None" = None,
        anthropic_http: Any = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.anthropic_http = anthropic_http
        self._own_http = http is None
        self._started = False
        self._warm_up: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._started = True
        self._warm_up = asyncio.get_running_loop().call_later(1.0, self._client)

    async def stop(self) -> None:
        self._started = False
        if self._warm_up is not None:
            self._warm_up.cancel()
        if self._own_http and self.http is not None:
            await self.http.aclose()
            self.http = None

    def _client(self) -> "httpx.AsyncClient":
        if self.http is None:
            if not self._started:
                raise RuntimeError("services are not started")
            import httpx

            self.http = httpx.AsyncClient(follow_redirects=False, timeout=30.0)
        return self.http

    def __call__(self, template_context: dict[str, Any]) -> ToolContext:
        key = self.settings.anthropic_api_key
        return ToolContext(
            http=self._client(),
            allow_hosts=self.settings.http_allow_hosts,
            anthropic_api_key=key.get_secret_value() if key else None,
            anthropic_base_url=self.settings.anthropic_base_url,
            anthropic_http=self.anthropic_http,
            default_model=self.settings.llm_model,
            template_context=template_context,
            agent_max_total_tokens=self.settings.agent_max_total_tokens,
        )


@dataclass
class Services:
    settings: Settings
    clock: Clock
    store: "SqlStore"
    catalog: "StepCatalog"
    tasks: "TaskService"
    runs: "RunService"
    tool_contexts: ToolContexts
    process_id: str
    scheduler: "Scheduler | None" = None
    _stopped: "asyncio.Task[None] | None" = field(default=None, init=False, repr=False)
    sandbox: "Sandbox | None" = None
    retention: "Retention | None" = None
    _warming: "asyncio.Task[None] | None" = field(default=None, init=False, repr=False)
    _warm_started: bool = field(default=False, init=False, repr=False)
    audit: "TaskAudit" = field(default=None)  # type: ignore[assignment]  # set by build_services

    async def start(self, *, schedule: bool = True) -> None:
        """Open the store; with `schedule` (and TASKLOOM_SCHEDULER on), fire tasks here too."""
        await self.store.open()
        await self.tool_contexts.start()
        if self.sandbox is not None:
            self._warming = asyncio.create_task(self._warm_sandbox(), name="sandbox-warm-up")
        if schedule and self.scheduler is not None:
            await self.scheduler.start()

    async def _warm_sandbox(self) -> None:
        """Start the sandbox workers once start-up is over: a long-lived process has them ready
        for its first run, and a short-lived one (a CLI command, a test's server) never pays
        for two fresh interpreters it does not use."""
        await asyncio.sleep(SANDBOX_WARM_AFTER_S)
        self._warm_started = True
        assert self.sandbox is not None
        await self.sandbox.warm_up()

    @property
    def stopping(self) -> bool:
        return self._stopped is not None

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop firing, let in-flight runs finish within the grace period, record the rest.
        Called again (a signal's stop, then the MCP lifespan's), it waits for the first."""
        if self._stopped is None:
            self._stopped = asyncio.create_task(self._stop(grace_s), name="taskloom-stop")
        await asyncio.shield(self._stopped)

    async def _stop(self, grace_s: float | None) -> None:
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        if self.scheduler is not None:
            await self.scheduler.stop(grace)  # drains runs while their leases are renewed
        await self.runs.shutdown(grace)  # runs started without a scheduler (CLI, tests)
        if self.catalog.upstream is not None:
            await self.catalog.upstream.aclose()
        await self.tool_contexts.stop()
        if self.sandbox is not None:
            if self._warming is not None:  # its workers must exist before close stops them
                if not self._warm_started:
                    self._warming.cancel()
                await asyncio.gather(self._warming, return_exceptions=True)
            await self.sandbox.close()
        await self.store.close()

    async def task_details(self, task_id: str, *, owner: str | None) -> TaskAnswer:
        task = await self.tasks.get(task_id, owner=owner)
        runs = await self.store.list_runs(owner=owner, task_id=task_id, limit=5)
        return self.tasks.answer(task, recent_runs=runs.items)

    async def status(self, *, owner: str | None, operator: bool = True) -> SchedulerStatus:
        """Figures of `owner`'s tasks (all tasks for None); hosts, pids and lease holders only
        for an operator: to anyone else they are details of the machine, not of their tasks."""
        from taskloom.tasks.service import fire_time

        now = self.clock.now()
        started = self.scheduler.started_at if self.scheduler else None
        alive_since = now - timedelta(seconds=self.settings.lease_s)
        processes = await self.store.processes(alive_since) if operator else []
        figs = await self.store.figures(now, owner=owner)
        return SchedulerStatus(
            now=now,
            server_timezone=self.settings.timezone,
            this_process=self.process_id if operator else _opaque(self.process_id),
            uptime_s=(now - started).total_seconds() if started else None,
            processes=[
                ProcessStatus(
                    id=p.id, role=p.role, hostname=p.hostname, pid=p.pid,
                    started_at=p.started_at, last_heartbeat=p.heartbeat_at,
                    this_process=p.id == self.process_id,
                )
                for p in processes
            ],
            runs_in_flight=[
                LeaseStatus(run_id=r.run_id, task_id=r.task_id,
                            holder=r.holder if operator else None,
                            lease_expires_at=r.expires_at)
                for r in figs.running
            ],
            queue_depth=figs.queued,
            queue_due=figs.queued_due,
            tasks_by_status=figs.tasks_by_status,
            next_fires=[
                NextFire(task_id=i, name=n, at=fire_time(at, self.settings.timezone))
                for i, n, at in figs.next_fires
            ],
            per_task=[
                TaskHealth(task_id=t.task_id, name=t.name, runs=t.runs,
                           success_rate=t.succeeded / t.runs if t.runs else 0.0,
                           mean_duration_ms=t.mean_duration_ms)
                for t in figs.per_task
            ],
        )  # fmt: skip


def build_services(
    settings: Settings,
    clock: Clock | None = None,
    *,
    http: "httpx.AsyncClient | None" = None,
    anthropic_http: Any = None,
    role: str = "serve",
    timing: "Timing | None" = None,
    self_urls: tuple[str, ...] = (),
) -> Services:
    """`http` and `anthropic_http` let tests fake the network at the transport. `self_urls` are
    this server's own HTTP endpoints, refused as upstream servers.

    Everything below the services is imported here, not at the top of this module: the MCP
    surface (`taskloom.api`) imports this module for its types, and `taskloom serve` builds
    the services only after answering its client's handshake (see `taskloom.api.startup`)."""
    from taskloom.runs import evaluation
    from taskloom.runs.retention import Retention, RetentionPolicy
    from taskloom.runs.runner import CatalogStepCaller, Limits, Runner
    from taskloom.runs.sandbox import Sandbox, SandboxLimits
    from taskloom.runs.service import RunService
    from taskloom.scheduling.scheduler import Scheduler, Timing
    from taskloom.step_tools import StepCatalog
    from taskloom.store.revisions import RevisionStore
    from taskloom.store.sql import SqlStore
    from taskloom.tasks.revisions import TaskAudit
    from taskloom.tasks.service import TaskService
    from taskloom.upstream import UpstreamPool
    from taskloom_tools.catalog import builtin_tools

    clock = clock or SystemClock()
    store = SqlStore(settings.resolved_database_url, keep_revisions=settings.max_revisions_per_task)
    upstream = (
        UpstreamPool(settings.mcp_config, self_urls=self_urls) if settings.mcp_config else None
    )
    catalog = StepCatalog(builtins=builtin_tools(), upstream=upstream)
    tasks = TaskService(store, clock, settings, catalog)
    process_id = new_process_id()
    contexts = ToolContexts(settings, http=http, anthropic_http=anthropic_http)
    caller = CatalogStepCaller(catalog, contexts)
    limits = Limits(
        step_timeout_s=settings.step_timeout_s,
        max_output_bytes=settings.max_output_bytes,
        max_foreach_items=settings.max_foreach_items,
    )
    sandbox = Sandbox(
        SandboxLimits(
            workers=settings.sandbox_workers,
            memory_mb=settings.sandbox_memory_mb,
            cpu_s=settings.sandbox_cpu_s,
            wall_s=settings.sandbox_wall_s,
            value_bytes=settings.sandbox_value_bytes,
            preload=(evaluation.__name__,),
        )
    )
    runner = Runner(caller, clock, limits, sandbox)
    runs = RunService(store, clock, settings, runner, caller, process_id)
    retention = Retention(store, clock, RetentionPolicy.from_settings(settings))
    scheduler = None
    if settings.scheduler:
        timing = timing or Timing(lease_s=settings.lease_s)
        scheduler = Scheduler(
            store, runs, clock, process_id=process_id, role=role, timing=timing,
            retention=retention,
        )  # fmt: skip
        tasks.on_change(scheduler.on_task_changed)
    return Services(
        settings=settings,
        clock=clock,
        store=store,
        catalog=catalog,
        tasks=tasks,
        runs=runs,
        tool_contexts=contexts,
        process_id=process_id,
        scheduler=scheduler,
        sandbox=sandbox,
        retention=retention,
        audit=TaskAudit(RevisionStore(store.db, settings.max_revisions_per_task), clock, tasks),
    )
