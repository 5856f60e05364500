"""The pages and actions. Each reads or acts through the same service call the MCP tools use,
as the signed-in principal (who sees only their own tasks and runs)."""

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from taskloom.dashboard import charts, views
from taskloom.dashboard.web import PREFIX, Viewer, Web, dumps, json_answer
from taskloom.domain.runs import Run, RunStatus
from taskloom.domain.storage import RunPoint
from taskloom.domain.tasks import Task
from taskloom.errors import NotFound, TaskloomError
from taskloom.insight import Insight

# Tasks per page of the task list, runs per page of a task's timeline, next fires previewed,
# recent failures on the scheduler page.
TASKS_PER_PAGE = 50
RUNS_PER_PAGE = 50
PREVIEW_FIRES = 5
RECENT_FAILURES = 10
NEXT_FIRES = 20
TASK_STATUSES = ("", "active", "paused", "finished")


class Pages:
    def __init__(self, web: Web) -> None:
        self.web = web
        self.s = web.services
        self.insight = Insight(web.services.store)

    async def tasks(self, request: Request, viewer: Viewer) -> Response:
        status = request.query_params.get("status", "")
        query = request.query_params.get("q", "")[:200] or None
        if status not in TASK_STATUSES:
            return self.web.error(viewer, 400, f"Status {status[:40]!r} is not one of "
                                  "active, paused, finished.")  # fmt: skip
        try:
            page = await self.s.tasks.list_page(
                owner=viewer.owner, status=status or None, query=query,
                limit=TASKS_PER_PAGE, cursor=request.query_params.get("cursor"),
            )  # fmt: skip
        except TaskloomError as exc:
            return self.web.error(viewer, 400, exc.message)
        recent = await self.insight.recent_runs([t.id for t in page.tasks], owner=viewer.owner)
        rows = views.task_rows(page.tasks, recent)
        return self.web.page(
            "tasks.html", viewer=viewer, rows=rows, status=status, q=query or "",
            next_cursor=page.next_cursor, nav="tasks",
        )  # fmt: skip

    async def task(self, request: Request, viewer: Viewer) -> Response:
        try:
            task = await self.s.tasks.get(request.path_params["task_id"], owner=viewer.owner)
            history = await self.s.runs.history(
                owner=viewer.owner, task_id=task.id, statuses=[], limit=RUNS_PER_PAGE,
                cursor=request.query_params.get("cursor"),
            )  # fmt: skip
        except TaskloomError as exc:
            return self.web.error(viewer, 404 if isinstance(exc, NotFound) else 400, exc.message)
        return self.task_page(viewer, task, history.items, history.next_cursor)

    def task_page(
        self, viewer: Viewer, task: Task, runs: list[Run], cursor: str | None, **extra: Any
    ) -> Response:
        tz = task.timezone
        chart = views.points([_point(r) for r in runs], tz)
        summary = self.s.tasks.summary(task)
        definition = dumps(task.spec().model_dump(mode="json", exclude_defaults=True))
        return self.web.page(
            "task.html", viewer=viewer, task=task, summary=summary, runs=runs, tz=tz,
            when=views.when, fire_words=views.fire_words,
            trigger=views.trigger_words(summary.trigger, tz),
            fires=self.s.tasks.upcoming(task, PREVIEW_FIRES), next_cursor=cursor,
            durations=charts.duration_bars(chart), success=charts.success_line(chart),
            definition=definition[: views.DEFINITION_CHARS],
            definition_cut=len(definition) > views.DEFINITION_CHARS, nav="tasks", **extra,
        )  # fmt: skip

    async def run(self, request: Request, viewer: Viewer) -> Response:
        try:
            run = await self.s.runs.get(request.path_params["run_id"], owner=viewer.owner)
        except NotFound as exc:
            return self.web.error(viewer, 404, exc.message)
        task = await self._task_of(run, viewer)
        return self.web.page("run.html", **self._run_context(viewer, run, task), nav="tasks")

    async def live(self, request: Request, viewer: Viewer) -> Response:
        """The run's changing parts, for the page's script to swap in while the run goes."""
        try:
            run = await self.s.runs.get(request.path_params["run_id"], owner=viewer.owner)
        except NotFound as exc:
            return json_answer({"error": exc.message}, 404)
        task = await self._task_of(run, viewer)
        html = self.web.fragment("run_live.html", **self._run_context(viewer, run, task))
        return json_answer({"status": run.status.value, "finished": run.status.finished,
                            "html": html})  # fmt: skip

    async def more(self, request: Request, viewer: Viewer) -> Response:
        """The next MORE_CHARS characters of a step's arguments or output after `offset`."""
        field, index = request.path_params["field"], request.path_params["index"]
        offset = request.query_params.get("offset", "0")
        if field not in ("args", "output") or not offset.isdigit():
            return json_answer({"error": "Ask for args or output from a numeric offset."}, 400)
        try:
            run = await self.s.runs.get(request.path_params["run_id"], owner=viewer.owner)
        except NotFound as exc:
            return json_answer({"error": exc.message}, 404)
        if index >= len(run.steps):
            return json_answer({"error": f"The run has {len(run.steps)} steps."}, 404)
        text = views.as_text(views.step_value(run.steps[index], field))
        start = int(offset)
        chunk = text[start : start + views.MORE_CHARS]
        end = start + len(chunk)
        return json_answer({"text": chunk, "next": end if end < len(text) else None})

    async def scheduler(self, request: Request, viewer: Viewer) -> Response:
        """Counts in SQL: queue, running runs, tasks by status, next fires, lateness."""
        now = self.s.clock.now()
        counts = await self.insight.gauges(now, owner=viewer.owner)
        alive_since = now - timedelta(seconds=self.s.settings.lease_s)
        processes = await self.insight.processes(alive_since) if viewer.operator else []
        fires = await self.insight.next_fires(owner=viewer.owner, limit=NEXT_FIRES)
        starts = await self.insight.recent_starts(owner=viewer.owner)
        late = [_lateness_ms(p) for p in starts]
        failures = await self.s.runs.history(
            owner=viewer.owner, task_id=None, limit=RECENT_FAILURES, cursor=None,
            statuses=[RunStatus.FAILED, RunStatus.INTERRUPTED],
        )  # fmt: skip
        return self.web.page(
            "scheduler.html", viewer=viewer, now=now, counts=counts, processes=processes,
            this_process=self.s.process_id, fires=fires, starts=starts[:10], late=late,
            failures=failures.items, when=views.when, tz=self.s.settings.timezone,
            nav="scheduler", lateness=_lateness_summary(late),
        )  # fmt: skip

    # -- actions: the same service calls as pause_task, resume_task, run_task, cancel_run ----

    async def task_action(self, request: Request, viewer: Viewer) -> Response:
        task_id, action = request.path_params["task_id"], request.path_params["action"]
        try:
            if action in ("pause", "resume"):
                await self.s.tasks.set_enabled(task_id, action == "resume", owner=viewer.owner)
                return RedirectResponse(f"{PREFIX}/tasks/{task_id}", status_code=303)
            if action == "run":
                return await self._run_now(task_id, viewer)
        except TaskloomError as exc:
            return self.web.error(viewer, 404 if isinstance(exc, NotFound) else 409, exc.message)
        return self.web.error(viewer, 404, f"There is no action {action[:40]!r}.")

    async def _run_now(self, task_id: str, viewer: Viewer) -> Response:
        task, run = await self.s.runs.admit_manual(task_id, owner=viewer.owner)
        if run.status == RunStatus.RUNNING:
            self.s.runs.launch(task, run)
        return RedirectResponse(f"{PREFIX}/runs/{run.id}", status_code=303)

    async def cancel(self, request: Request, viewer: Viewer) -> Response:
        run_id = request.path_params["run_id"]
        try:
            await self.s.runs.cancel(run_id, owner=viewer.owner)
        except TaskloomError as exc:
            return self.web.error(viewer, 404 if isinstance(exc, NotFound) else 409, exc.message)
        return RedirectResponse(f"{PREFIX}/runs/{run_id}", status_code=303)

    # -- shared pieces -----------------------------------------------------------------------

    async def _task_of(self, run: Run, viewer: Viewer) -> Task | None:
        try:
            return await self.s.tasks.get(run.task_id, owner=viewer.owner)
        except NotFound:
            return None  # deleted since; its runs are kept

    def _run_context(self, viewer: Viewer, run: Run, task: Task | None) -> dict[str, Any]:
        tz = task.timezone if task else self.s.settings.timezone
        return {
            "viewer": viewer, "run": run, "task": task, "tz": tz, "when": views.when,
            "waterfall": views.waterfall(run, tz), "shown": views.shown,
            "output": views.shown(run.output),
        }  # fmt: skip


def _point(run: Run) -> RunPoint:
    return RunPoint(
        run.id, run.task_id, run.status.value, run.cause.value, run.fire_time,
        run.started_at, run.duration_ms,
    )  # fmt: skip


def _lateness_ms(p: RunPoint) -> int:
    assert p.started_at is not None
    assert p.fire_time is not None
    return max(0, int((p.started_at - p.fire_time) / timedelta(milliseconds=1)))


def _lateness_summary(late: list[int]) -> dict[str, int] | None:
    if not late:
        return None
    ordered = sorted(late)
    return {"runs": len(late), "median": ordered[len(late) // 2], "max": ordered[-1],
            "p90": ordered[min(len(late) - 1, int(len(late) * 0.9))]}  # fmt: skip
