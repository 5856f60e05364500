"""The catalog of built-in step tools and the contract they share."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import taskloom_tools
from taskloom_tools.base import StepTool
from taskloom_tools.catalog import builtin_tools

TOOLS = builtin_tools()
PACKAGE_DIR = Path(taskloom_tools.__file__).parent


def test_lists_the_seven_builtin_tools() -> None:
    """The catalog holds each built-in tool under its own name."""
    assert sorted(TOOLS) == [
        "agent", "extract", "http_request", "llm_prompt", "notify", "render", "wait"
    ]  # fmt: skip
    assert all(name == tool.name for name, tool in TOOLS.items())


@pytest.mark.parametrize("tool", TOOLS.values(), ids=list(TOOLS))
def test_schemas_forbid_unknown_keys_and_describe_every_field(tool: StepTool) -> None:
    """Each input schema is JSON, rejects extra keys and describes each property."""
    schema = json.loads(json.dumps(tool.input_schema()))
    assert schema["additionalProperties"] is False
    assert all("description" in prop for prop in schema["properties"].values())


@pytest.mark.parametrize("tool", TOOLS.values(), ids=list(TOOLS))
def test_descriptions_give_the_output_shape_and_an_example(tool: StepTool) -> None:
    """Each description tells the authoring model what comes back and shows a call."""
    assert "Output:" in tool.description
    assert "Example:" in tool.description


def test_hints_match_what_the_tools_touch() -> None:
    """Only the tools that reach other systems are open-world; only pure ones are read-only."""
    open_world = {n for n, t in TOOLS.items() if t.open_world}
    assert open_world == {"agent", "http_request", "llm_prompt", "notify"}
    assert {n for n, t in TOOLS.items() if not t.read_only} == {"agent", "http_request", "notify"}


@pytest.mark.slow
def test_listing_the_tools_imports_no_heavy_library() -> None:
    """Listing the tools and their schemas loads no HTTP, template, JMESPath or LLM library."""
    heavy = ["anthropic", "httpx", "httpx2", "jinja2", "jmespath", "structlog"]
    code = (
        "import sys\nfrom taskloom_tools.catalog import builtin_tools\n"
        "[t.input_schema() for t in builtin_tools().values()]\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_the_package_never_imports_taskloom() -> None:
    """taskloom_tools stays independent of the server package."""
    imported: set[str] = set()
    for path in PACKAGE_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    assert not any(name == "taskloom" or name.startswith("taskloom.") for name in imported)
