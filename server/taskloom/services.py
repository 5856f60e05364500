"""The service graph, wired in one place (`app.py`) and handed to the MCP surface and the CLI."""

from dataclasses import dataclass

from taskloom.answers import TaskAnswer
from taskloom.clock import Clock
from taskloom.settings import Settings
from taskloom.step_tools import StepCatalog
from taskloom.store.sql import Store
from taskloom.tasks.service import TaskService


@dataclass
class Services:
    settings: Settings
    clock: Clock
    store: Store
    catalog: StepCatalog
    tasks: TaskService

    async def start(self) -> None:
        await self.store.open()

    async def stop(self) -> None:
        await self.store.close()

    async def task_details(self, task_id: str, *, owner: str | None) -> TaskAnswer:
        task = await self.tasks.get(task_id, owner=owner)
        runs = await self.store.list_runs(owner=owner, task_id=task_id, limit=5)
        return self.tasks.answer(task, recent_runs=runs.items)
