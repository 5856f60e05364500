"""The files in manifests/ agree with the code: tools, commands, settings, versions, examples."""

import json
import plistlib
import re
import tomllib
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
import typer
from fastmcp import Client
from pydantic import TypeAdapter

from taskloom import __version__
from taskloom.app import build_server
from taskloom.cli import app as cli_app
from taskloom.service_install import ServiceKind, render_service
from taskloom.services import build_services
from taskloom.settings import Settings
from taskloom.tasks.files import read_raw, task_schema

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
CLIENT_CONFIGS = ["claude_desktop_config.json", "cursor-mcp.json", "vscode-mcp.json"]
JSON_FILES = sorted(p.relative_to(MANIFESTS).as_posix() for p in MANIFESTS.rglob("*.json"))
EXAMPLES = sorted(p.name for p in (MANIFESTS / "examples").glob("*.yaml"))
# Read by the MCPB runtime or the shell, not by Taskloom.
RUNTIME_VARS = {"PYTHONPATH", "PATH"}
SERVER_NAME = "io.github.taskloom/taskloom"
REFERENCE = re.compile(r"\$\{([a-zA-Z_]+)[.:]([a-zA-Z0-9_-]+)\}")

# The rendered examples in manifests/systemd and manifests/launchd; the templates under
# server/taskloom/service_templates are the source. Rewrite them with
# `.venv/bin/python tests/unit/test_manifests.py`.
SERVICE_EXAMPLES: dict[ServiceKind, dict[str, Any]] = {
    "systemd": {
        "file": "systemd/taskloom.service",
        "taskloom_bin": Path("/home/alice/.local/bin/taskloom"),
        "log_dir": Path("/home/alice/.local/state/taskloom"),
        "env": {
            "PATH": "/home/alice/.local/bin:/usr/local/bin:/usr/bin:/bin",
            "TASKLOOM_TIMEZONE": "Europe/Berlin",
            "TASKLOOM_DATABASE_URL": "sqlite:////home/alice/.local/share/taskloom/taskloom.db",
        },
    },
    "launchd": {
        "file": "launchd/io.taskloom.worker.plist",
        "taskloom_bin": Path("/Users/alice/.local/bin/taskloom"),
        "log_dir": Path("/Users/alice/Library/Logs/taskloom"),
        "env": {
            "PATH": "/Users/alice/.local/bin:/opt/homebrew/bin:/usr/bin:/bin",
            "TASKLOOM_TIMEZONE": "Europe/Berlin",
        },
    },
}


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    duplicates = {k for k in keys if keys.count(k) > 1}
    assert not duplicates, f"duplicate keys {duplicates}"
    return dict(pairs)


def load(name: str) -> Any:
    """A manifest as JSON; a key given twice fails (json.loads would keep the last silently)."""
    return json.loads((MANIFESTS / name).read_text("utf-8"), object_pairs_hook=_no_duplicate_keys)


def load_example(name: str) -> Any:
    """An example task file as the task file reader sees it (YAML 1.2: `on` is a key)."""
    (document,) = read_raw(MANIFESTS / "examples" / name)
    return document


def settings_env_names() -> set[str]:
    """Every environment variable Settings reads (TASKLOOM_CONFIG_FILE names its TOML file)."""
    names = {"TASKLOOM_CONFIG_FILE"}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias if isinstance(alias, str) else f"TASKLOOM_{name.upper()}")
    return names


def client_servers(name: str) -> dict[str, Any]:
    config = load(name)
    servers: dict[str, Any] = config.get("mcpServers") or config["servers"]
    return servers


def manifest_env_vars() -> list[tuple[str, str]]:
    """(file, variable) for each environment variable any manifest sets or declares."""
    found = [
        (f, var) for f in CLIENT_CONFIGS for s in client_servers(f).values() for var in s["env"]
    ]
    found += [
        ("manifest.json", var) for var in load("manifest.json")["server"]["mcp_config"]["env"]
    ]
    package = load("server.json")["packages"][0]
    found += [("server.json", var["name"]) for var in package["environmentVariables"]]
    return found


def cli_commands() -> set[str]:
    return set(typer.main.get_command(cli_app).commands)  # type: ignore[attr-defined]


def mcpb_env_with_defaults() -> dict[str, str]:
    """The MCPB server's environment as a client fills it from the user_config defaults."""
    manifest = load("manifest.json")
    defaults = {k: str(v.get("default", "")) for k, v in manifest["user_config"].items()}
    env = manifest["server"]["mcp_config"]["env"]
    return {
        var: REFERENCE.sub(lambda m: defaults[m.group(2)], value)
        for var, value in env.items()
        if var not in RUNTIME_VARS
    }


@pytest.mark.parametrize("name", JSON_FILES)
def test_manifest_is_strict_json(name: str) -> None:
    """Each JSON manifest parses and gives no key twice."""
    assert load(name)


async def test_mcpb_tools_are_the_tools_the_server_registers(settings: Settings) -> None:
    """manifest.json lists exactly the tools a client sees from the built server."""
    server = build_server(build_services(settings))
    async with Client(server) as client:
        registered = {tool.name for tool in await client.list_tools()}
    listed = [tool["name"] for tool in load("manifest.json")["tools"]]
    assert len(listed) == len(set(listed))
    assert set(listed) == registered


def test_mcpb_tools_are_described() -> None:
    """Every tool in manifest.json has a description."""
    assert all(tool["description"].strip() for tool in load("manifest.json")["tools"])


@pytest.mark.parametrize(("name", "var"), manifest_env_vars())
def test_manifest_env_var_is_a_setting(name: str, var: str) -> None:
    """Every environment variable a manifest names is one Settings reads, or a runtime's own."""
    assert var in settings_env_names() | RUNTIME_VARS, f"{name}: {var} is not a setting"


def test_server_json_declares_every_setting() -> None:
    """server.json declares each environment variable Settings reads."""
    package = load("server.json")["packages"][0]
    assert {var["name"] for var in package["environmentVariables"]} == settings_env_names()


def test_server_json_defaults_and_choices_match_settings() -> None:
    """Each declared default equals the field's default and each choice list its Literal."""
    fields = {f"TASKLOOM_{name.upper()}": field for name, field in Settings.model_fields.items()}
    for var in load("server.json")["packages"][0]["environmentVariables"]:
        field = fields.get(var["name"])
        if field is None or field.annotation is None:
            assert not {"default", "choices"} & set(var), var["name"]
            continue
        if "default" in var:
            assert TypeAdapter(field.annotation).validate_python(var["default"]) == field.default
        if "choices" in var:
            assert var["choices"] == list(get_args(field.annotation))


def test_server_json_marks_tokens_and_keys_secret() -> None:
    """Variables that carry credentials are marked isSecret."""
    declared = load("server.json")["packages"][0]["environmentVariables"]
    secret = {var["name"] for var in declared if var.get("isSecret")}
    assert {"TASKLOOM_HTTP_TOKENS", "ANTHROPIC_API_KEY", "TASKLOOM_DATABASE_URL"} <= secret
    assert all(var["isRequired"] is False for var in declared)


def test_versions_match_pyproject() -> None:
    """server.json, its package, manifest.json and __version__ carry pyproject's version."""
    server = load("server.json")
    versions = {
        server["version"],
        server["packages"][0]["version"],
        load("manifest.json")["version"],
        __version__,
    }
    assert versions == {PROJECT["version"]}


def test_server_json_follows_registry_rules() -> None:
    """server.json uses the 2025-12-11 schema, a namespaced name and a short description."""
    server = load("server.json")
    assert server["$schema"].endswith("/2025-12-11/server.schema.json")
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", server["name"])
    assert server["name"] == SERVER_NAME
    assert 1 <= len(server["description"]) <= 100
    assert "remotes" not in server  # nothing is hosted: each user runs their own Taskloom


def test_server_json_package_runs_taskloom_serve_over_stdio() -> None:
    """The PyPI package is this project and its argument is the `serve` command."""
    package = load("server.json")["packages"][0]
    assert (package["registryType"], package["identifier"]) == ("pypi", PROJECT["name"])
    assert package["transport"] == {"type": "stdio"}
    arguments = [arg["value"] for arg in package["packageArguments"]]
    assert arguments == ["serve"]
    assert "serve" in cli_commands()


def test_readme_names_the_registry_server() -> None:
    """README.md carries the `mcp-name:` marker the registry checks for PyPI packages."""
    assert f"mcp-name: {SERVER_NAME}" in (ROOT / "README.md").read_text("utf-8")


@pytest.mark.parametrize("name", CLIENT_CONFIGS)
def test_client_config_launches_the_console_script(name: str) -> None:
    """Each client entry runs the `taskloom` console script's `serve`, directly or via uvx."""
    assert "taskloom" in PROJECT["scripts"]
    for key, server in client_servers(name).items():
        command, args = server["command"], server["args"]
        if command == "uvx":
            assert args[:1] == [PROJECT["name"]], key
            args = args[1:]
        else:
            assert Path(command).name == "taskloom", key
        assert args == ["serve"], key
        assert args[0] in cli_commands()


def test_claude_desktop_config_offers_uvx_and_a_checkout() -> None:
    """The Claude Desktop snippet has a uvx entry and a local-checkout entry."""
    servers = client_servers("claude_desktop_config.json")
    assert servers["taskloom"]["command"] == "uvx"
    assert servers["taskloom-local"]["command"].endswith("/.venv/bin/taskloom")


def test_vscode_config_is_stdio_with_defined_inputs() -> None:
    """VS Code entries are stdio and every ${input:...} they use is declared."""
    config = load("vscode-mcp.json")
    declared = {i["id"] for i in config["inputs"]}
    for server in config["servers"].values():
        assert server["type"] == "stdio"
        used = {m.group(2) for v in server["env"].values() for m in REFERENCE.finditer(v)}
        assert used <= declared


@pytest.mark.parametrize("name", CLIENT_CONFIGS)
def test_client_config_env_makes_valid_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The literal settings each client entry sets validate as Settings."""
    for server in client_servers(name).values():
        for var, value in server["env"].items():
            if not REFERENCE.search(value):
                monkeypatch.setenv(var, value)
        assert Settings().timezone == server["env"]["TASKLOOM_TIMEZONE"]


def test_mcpb_runs_the_package_module() -> None:
    """The MCPB entry point is the package's __main__ and its arguments are `-m taskloom serve`."""
    server = load("manifest.json")["server"]
    assert server["type"] == "python"
    assert server["entry_point"].endswith("taskloom/__main__.py")
    assert (ROOT / "server" / "taskloom" / "__main__.py").is_file()
    assert server["mcp_config"]["args"] == ["-m", "taskloom", "serve"]


def test_mcpb_python_runtime_matches_requires_python() -> None:
    """manifest.json asks for the Python versions pyproject requires."""
    runtimes = load("manifest.json")["compatibility"]["runtimes"]
    assert runtimes["python"] == PROJECT["requires-python"]


def test_mcpb_user_config_is_all_used_and_all_defined() -> None:
    """Every ${user_config.X} is declared, and every declared option is used."""
    manifest = load("manifest.json")
    env = manifest["server"]["mcp_config"]["env"]
    used = {
        m.group(2) for v in env.values() for m in REFERENCE.finditer(v) if m[1] == "user_config"
    }
    assert used == set(manifest["user_config"])


def test_mcpb_defaults_make_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every option left at its default, Settings validates and uses the SQLite file."""
    for var, value in mcpb_env_with_defaults().items():
        monkeypatch.setenv(var, value)
    settings = Settings()
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.anthropic_api_key is None or not settings.anthropic_api_key


@pytest.mark.parametrize("name", EXAMPLES)
async def test_example_task_is_accepted_by_create_task(name: str, settings: Settings) -> None:
    """Each example task file is a valid create_task call."""
    example = load_example(name)
    server = build_server(build_services(settings))
    async with Client(server) as client:
        result = await client.call_tool("create_task", example, raise_on_error=False)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["task"]["name"] == example["name"]


def test_there_are_example_tasks_for_each_trigger_kind() -> None:
    """The examples cover a cron, an interval and an event trigger."""
    kinds = {next(iter(load_example(n)["trigger"])) for n in EXAMPLES}
    assert {"cron", "every", "event"} <= kinds


def test_published_task_schema_is_the_generated_one() -> None:
    """manifests/task.schema.json is what `taskloom schema` prints from the task model."""
    assert load("task.schema.json") == task_schema(), (
        "manifests/task.schema.json is stale: run `.venv/bin/python tests/unit/test_manifests.py`"
    )


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_task_follows_the_published_schema(name: str) -> None:
    """Each example validates against the task file schema editors use."""
    jsonschema.validate(load_example(name), load("task.schema.json"))


@pytest.mark.parametrize("kind", list(SERVICE_EXAMPLES))
def test_service_example_is_rendered_from_the_template(kind: ServiceKind) -> None:
    """The example in manifests/ is what the packaged template renders for its sample values."""
    example = dict(SERVICE_EXAMPLES[kind])
    path = MANIFESTS / example.pop("file")
    assert path.read_text("utf-8") == render_service(kind, **example), (
        f"{path} is stale: run `.venv/bin/python tests/unit/test_manifests.py`"
    )


def test_service_examples_run_an_existing_cli_command() -> None:
    """Both service files run `taskloom worker`, and `worker` is a command of the CLI."""
    unit = (MANIFESTS / SERVICE_EXAMPLES["systemd"]["file"]).read_text("utf-8")
    plist = plistlib.loads((MANIFESTS / SERVICE_EXAMPLES["launchd"]["file"]).read_bytes())
    exec_start = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    assert exec_start.split()[-1] == plist["ProgramArguments"][-1] == "worker"
    assert "worker" in cli_commands()


if __name__ == "__main__":
    (MANIFESTS / "task.schema.json").write_text(
        json.dumps(task_schema(), indent=2, ensure_ascii=False) + "\n", "utf-8"
    )
    for kind, values in SERVICE_EXAMPLES.items():
        sample = dict(values)
        (MANIFESTS / sample.pop("file")).write_text(render_service(kind, **sample), "utf-8")
