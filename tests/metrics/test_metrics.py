"""Prometheus metrics scraped from real servers after real runs, parsed with prometheus_client's
own parser."""

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from prometheus_client.parser import text_string_to_metric_families

from taskloom.app import build_server
from taskloom.metrics import OTHER, BoundedLabels, Metrics
from taskloom.services import build_services
from tests.conftest import make_settings
from tests.fixtures.taskloom_process import (
    HttpServer,
    free_port,
    http_server,
    log_events,
    server_env,
)

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
WAIT = {"id": "pause", "tool": "wait", "args": {"seconds": 0.05}}
REFUSED = {"id": "fetch", "tool": "http_request", "args": {"url": "http://127.0.0.1:9/"}}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample as {(name, labels): value}."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """`serve --transport http` with alice (an operator) and bob."""
    db = tmp_path_factory.mktemp("metrics") / "t.db"
    tokens = f"alice={ALICE},bob={BOB}"
    with http_server(db, TASKLOOM_HTTP_TOKENS=tokens, TASKLOOM_OPERATORS="alice") as server:
        yield server


async def call(client: Client[Any], tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert result.structured_content is not None
    return result.structured_content


async def scrape(url: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as raw:
        return await raw.get(f"{url}/metrics", headers=headers)


async def test_metrics_count_real_runs_by_task_and_status(http: HttpServer) -> None:
    """After a succeeded and a failed run, /metrics counts both under the task, with their
    durations, step durations by tool, tasks by status and this process's heartbeat."""
    async with Client(StreamableHttpTransport(f"{http.url}/mcp", auth=ALICE)) as alice:
        made = await call(alice, "create_task", {"name": "Metered", "steps": [WAIT]})
        task_id = made["task"]["id"]
        assert (await call(alice, "run_task", {"task_id": task_id}))["run"]["status"] == "succeeded"
        await call(alice, "update_task", {"task_id": task_id, "steps": [WAIT, REFUSED]})
        assert (await call(alice, "run_task", {"task_id": task_id}))["run"]["status"] == "failed"
    answer = await scrape(http.url, ALICE)
    assert answer.status_code == 200
    samples = parse(answer.text)
    assert value(samples, "taskloom_runs_total", task=task_id, status="succeeded") == 1
    assert value(samples, "taskloom_runs_total", task=task_id, status="failed") == 1
    assert value(samples, "taskloom_run_duration_seconds_count", task=task_id) == 2
    assert value(samples, "taskloom_step_duration_seconds_count", tool="wait") == 2
    assert value(samples, "taskloom_tasks", status="active") == 1
    assert value(samples, "taskloom_queue_depth") == 0
    beats = [k for k in samples if k[0] == "taskloom_process_heartbeat_timestamp_seconds"]
    assert [dict(labels)["role"] for _, labels in beats] == ["serve"]
    assert not any("run_" in v for _, labels in samples for _, v in labels)  # no run ids
    finished = [e for e in log_events(http.log) if e["event"] == "run_finished"]
    assert {e["task_id"] for e in finished} == {task_id}  # logs meet the metrics by task and run
    assert all(e["run_id"].startswith("run_") for e in finished)


async def test_scheduled_runs_report_their_start_lateness(http: HttpServer) -> None:
    """A task that fires every second shows up in the start-lateness histogram."""
    async with Client(StreamableHttpTransport(f"{http.url}/mcp", auth=ALICE)) as alice:
        made = await call(alice, "create_task", {"name": "Every second", "steps": [WAIT],
                                                 "trigger": {"every": 1}})  # fmt: skip
        try:
            samples = await _scrape_until_late(http.url)
        finally:
            await call(alice, "pause_task", {"task_id": made["task"]["id"]})
    assert (
        value(samples, "taskloom_run_start_lateness_seconds_count", trigger="schedule") or 0
    ) >= 1


async def _scrape_until_late(url: str) -> Samples:
    async with asyncio.timeout(60):
        while True:
            samples = parse((await scrape(url, ALICE)).text)
            if value(samples, "taskloom_run_start_lateness_seconds_count", trigger="schedule"):
                return samples
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("token", [None, BOB])
async def test_metrics_need_an_operators_token(http: HttpServer, token: str | None) -> None:
    """With tokens set up, /metrics answers 401 to no token and to a principal who is not an
    operator (the metrics cover every owner's tasks)."""
    answer = await scrape(http.url, token)
    assert answer.status_code == 401
    assert "TASKLOOM_OPERATORS" in answer.text


def test_labels_past_the_bound_are_other() -> None:
    """The first `limit` distinct values keep their name; later ones become 'other'."""
    bound = BoundedLabels(2)
    assert [bound(v) for v in ["a", "b", "c", "a", "d"]] == ["a", "b", OTHER, "a", OTHER]


async def test_tasks_past_the_bound_are_counted_as_other(tmp_path: Path) -> None:
    """With TASKLOOM_METRICS_MAX_TASKS=1 the second task's runs are counted under 'other'."""
    services = build_services(make_settings(tmp_path, metrics_max_tasks=1))
    metrics = Metrics(services)
    async with Client(build_server(services)) as client:
        first = (await call(client, "create_task", {"name": "One", "steps": [WAIT]}))["task"]
        second = (await call(client, "create_task", {"name": "Two", "steps": [WAIT]}))["task"]
        for task in (first, second):
            await call(client, "run_task", {"task_id": task["id"]})
        samples = parse((await metrics.exposition()).decode())
    runs = {dict(k[1])["task"] for k in samples if k[0] == "taskloom_runs_total"}
    assert runs == {first["id"], OTHER}


def test_worker_serves_metrics_on_its_port(tmp_path: Path) -> None:
    """`taskloom worker --metrics-port` serves /metrics with its own heartbeat."""
    port = free_port()
    log = tmp_path / "worker.log"
    args = [sys.executable, "-m", "taskloom", "worker", "--metrics-port", str(port)]
    with log.open("wb") as err:
        worker = subprocess.Popen(args, env=server_env(tmp_path / "t.db"), stderr=err,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        samples = _scrape_until(f"http://127.0.0.1:{port}/metrics", worker, log)
    finally:
        worker.terminate()
        assert worker.wait(30) == 0
    beats = [dict(k[1]) for k in samples if k[0] == "taskloom_process_heartbeat_timestamp_seconds"]
    assert [b["role"] for b in beats] == ["worker"]


def _scrape_until(url: str, worker: "subprocess.Popen[bytes]", log: Path) -> Samples:
    """The first scrape that shows a heartbeat (the gauges refresh every few seconds)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert worker.poll() is None, log.read_text()
        try:
            samples = parse(httpx.get(url, timeout=5).text)
        except httpx.HTTPError:
            samples = {}
        if any(k[0] == "taskloom_process_heartbeat_timestamp_seconds" for k in samples):
            return samples
        time.sleep(0.1)
    raise AssertionError(f"no heartbeat in {url}:\n{log.read_text()}")
