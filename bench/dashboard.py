"""Dashboard and metrics on the history data set (1,000 tasks, 1,000,000 runs on SQLite; 200,000
with --quick): the task list page (50 tasks with their last 20 runs each, rendered) and a
/metrics scrape, over HTTP in process (ASGI), against the MCP calls that read the same data:
list_tasks for one page of 50, and scheduler_status (for the scheduler page and a scrape)."""

from typing import Any

from bench.common import Config, Row, pct, timed_ms
from bench.history import runs_corpus


async def dashboard(cfg: Config) -> list[Row]:
    import httpx
    from fastmcp import Client

    from taskloom.app import build_server
    from taskloom.dashboard.serving import dashboard_app
    from taskloom.services import build_services

    total = 200_000 if cfg.quick else 1_000_000
    n = 20 if cfg.quick else 50
    corpus = await runs_corpus(cfg, "dashboard", total)
    services = build_services(corpus.settings())
    app = dashboard_app(services, None, loopback=True)
    transport = httpx.ASGITransport(app=app)
    await services.start(schedule=False)
    rows: list[Row] = []
    try:
        async with (
            httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1", follow_redirects=True
            ) as web,
            Client(build_server(services)) as mcp,
        ):

            async def page() -> Any:
                answer = await web.get("/dashboard/")
                assert answer.status_code == 200, answer.text[:300]

            async def scheduler_page() -> Any:
                assert (await web.get("/dashboard/scheduler")).status_code == 200

            async def scrape() -> Any:
                assert (await web.get("/metrics")).status_code == 200

            async def list_tasks() -> Any:
                return await mcp.call_tool("list_tasks", {"limit": 50})

            async def status() -> Any:
                return await mcp.call_tool("scheduler_status", {})

            for label, call, base_label, base in (
                (
                    "task list page (50 tasks, last 20 runs each)",
                    page,
                    "list_tasks, 50",
                    list_tasks,
                ),
                ("scheduler page", scheduler_page, "scheduler_status", status),
                ("/metrics scrape", scrape, "scheduler_status", status),
            ):
                got, ref = await timed_ms(n, call), await timed_ms(n, base)
                p50, b50 = pct(got, 50), pct(ref, 50)
                rows.append(Row("dashboard", f"p50: {label}", p50, "ms", b50 and base_label, b50,
                                p50 / max(b50, 1e-3)))  # fmt: skip
                rows.append(Row("dashboard", f"p99: {label}", pct(got, 99), "ms"))
    finally:
        await services.stop()
    return rows
