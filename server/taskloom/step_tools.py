"""The catalogue of step tools a chain may call: built-ins plus the upstream MCP servers' tools."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from taskloom_tools.base import StepTool

if TYPE_CHECKING:
    from taskloom.upstream import UpstreamPool


class StepToolInfo(BaseModel):
    """A step tool as `list_step_tools` shows it."""

    model_config = ConfigDict(frozen=True)

    name: str
    source: str  # "builtin" or the upstream server's name
    description: str
    input_schema: dict[str, Any]
    read_only: bool = False
    open_world: bool = True


@dataclass
class StepCatalog:
    builtins: dict[str, StepTool]
    upstream: "UpstreamPool | None" = None
    # Each built-in tool's info, made once: its schema is generated and validated once, not
    # at every step of every create that names the tool.
    _infos: dict[str, StepToolInfo] = field(default_factory=dict)

    def builtin(self, name: str) -> StepTool | None:
        return self.builtins.get(name)

    def builtin_info(self, tool: StepTool) -> StepToolInfo:
        info = self._infos.get(tool.name)
        if info is None:
            info = self._infos[tool.name] = StepToolInfo(
                name=tool.name,
                source="builtin",
                description=tool.description,
                input_schema=tool.args_model.model_json_schema(),
                read_only=tool.read_only,
                open_world=tool.open_world,
            )
        return info

    async def list(self, *, include_upstream: bool = True) -> list[StepToolInfo]:
        tools = [self.builtin_info(t) for t in self.builtins.values()]
        if include_upstream and self.upstream is not None:
            for info in await self.upstream.list_tools():
                tools.append(
                    StepToolInfo(
                        name=info.name,
                        source=info.server,
                        description=info.description,
                        input_schema=info.input_schema,
                    )
                )
        return tools

    async def find(self, name: str) -> StepToolInfo | None:
        tool = self.builtins.get(name)
        if tool is not None:
            return self.builtin_info(tool)
        if "/" not in name or self.upstream is None:
            return None
        for info in await self.upstream.list_tools():
            if info.name == name:
                return StepToolInfo(
                    name=info.name,
                    source=info.server,
                    description=info.description,
                    input_schema=info.input_schema,
                )
        return None
