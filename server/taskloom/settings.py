"""Configuration from `TASKLOOM_*` environment variables and an optional TOML config file.

`load_settings` turns every problem with them into one `BadSetting` (the setting, its value and
the fix, on one line), which the CLI prints and exits 2 on."""

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from platformdirs import user_config_dir, user_data_dir
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from taskloom.domain.tasks import check_timezone
from taskloom.errors import TaskloomError

APP_NAME = "taskloom"
DATABASE_URL_FIX = "use sqlite:///path/to/taskloom.db or postgresql://user@host:5432/database"
# What an entry of TASKLOOM_HTTP_ALLOW_HOSTS that is meant as an address or network looks like.
_ADDRESS_LIKE = re.compile(r"^[0-9.]+(/.*)?$|:|/")


class BadSetting(TaskloomError):
    """A setting Taskloom cannot start with; the message is one line: setting, value, fix."""

    def __init__(self, name: str, value: object, problem: str) -> None:
        shown = value if isinstance(value, str) else str(value)
        message = f"Bad setting {name}={shown!r}: {problem}"
        super().__init__(" ".join(message.split()))
        self.name = name


def default_data_dir() -> Path:
    return Path(user_data_dir(APP_NAME, appauthor=False))


def default_config_file() -> Path:
    return Path(user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


class Settings(BaseSettings):
    """Every setting can be given as `TASKLOOM_<NAME>` (e.g. `TASKLOOM_DATABASE_URL`) or as a key
    in the TOML file named by `TASKLOOM_CONFIG_FILE` (default: the user config directory)."""

    model_config = SettingsConfigDict(
        env_prefix="TASKLOOM_", extra="ignore", frozen=True, validate_default=True
    )

    data_dir: Path = Field(default_factory=default_data_dir, description="where state is kept")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/taskloom.db. "
        "PostgreSQL: postgresql://user@host/db",
    )
    timezone: str = Field(default="UTC", description="default IANA timezone for triggers")
    mcp_config: Path | None = Field(
        default=None, description="MCP config file (Claude Desktop 'mcpServers' format)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "console", "json"] = Field(
        default="auto", description="auto: console on a terminal, JSON otherwise"
    )
    http_allow_hosts: str = Field(
        default="",
        description="hosts or CIDRs http_request may reach although private/loopback",
    )
    http_tokens: str = Field(
        default="",
        description="bearer tokens for HTTP transports: name=token pairs, comma-separated",
    )
    llm_model: str = Field(default="claude-sonnet-4-6", description="default model for llm_prompt")
    summary_model: str = Field(default="claude-haiku-4-5", description="model for run summaries")
    agent_max_total_tokens: int = Field(
        default=200_000, ge=1000, description="tokens (in and out) one agent step may use in all"
    )
    secrets_file: Path | None = Field(
        default=None, description="file of NAME=value lines (mode 0600) for {{ secrets.NAME }}"
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias="ANTHROPIC_API_KEY", description="for llm_prompt/summaries"
    )
    anthropic_base_url: str | None = Field(default=None, validation_alias="ANTHROPIC_BASE_URL")
    lease_s: float = Field(default=30, ge=3, description="run lease; renewed every third of it")
    shutdown_grace_s: float = Field(
        default=60, ge=0, description="how long in-flight runs may finish at shutdown"
    )
    scheduler: bool = Field(default=True, description="fire schedules in this process")
    mcp_tasks: bool = Field(
        default=False,
        description="serve run_task as an MCP background task (tasks extension) to clients that "
        "declare it; adds about 0.3 s to start-up",
    )
    event_store_max_events: int = Field(
        default=2000,
        ge=100,
        description="Streamable HTTP: messages kept in memory for clients that reconnect "
        "(Last-Event-ID); the oldest go first",
    )
    event_store_max_events_per_stream: int = Field(
        default=500, ge=10, description="Streamable HTTP: messages kept per response stream"
    )
    event_store_ttl_s: int = Field(
        default=900, ge=10, description="Streamable HTTP: seconds a kept message can be replayed"
    )
    step_timeout_s: float = Field(default=300, gt=0, description="default timeout of one step")
    max_revisions_per_task: int = Field(
        default=100, ge=1, le=100_000, description="revisions kept per task (the oldest go)"
    )
    max_foreach_items: int = Field(
        default=100, ge=1, le=100_000, description="items one foreach step may run over"
    )
    max_output_bytes: int = Field(
        default=65536, ge=1024, description="stored output (and arguments) per step"
    )
    sandbox_workers: int = Field(
        default=2, ge=1, le=64, description="worker processes for templates, render and extract"
    )
    sandbox_memory_mb: int = Field(
        default=512, ge=128, description="memory (address space) of one sandbox worker, in MB"
    )
    sandbox_cpu_s: float = Field(
        default=2.0, gt=0, description="CPU seconds one step's templates, render or extract may use"
    )
    sandbox_wall_s: float = Field(
        default=10.0, gt=0, description="seconds one sandbox job may take before it is killed"
    )
    sandbox_value_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="largest value (pickled) a step's evaluation may hand back, in bytes",
    )
    max_answer_bytes: int = Field(
        default=32000,
        ge=4096,
        description="the most bytes one tool answer or resource read sends; longer values are "
        "shown as a head and the get_run/get_task call that pages the rest",
    )
    max_tasks_per_owner: int = Field(default=1000, ge=1)
    owner: str = Field(default="local", description="owner of tasks created without HTTP auth")
    max_concurrent_runs: int = Field(
        default=50, ge=1, description="runs one principal may have running at once"
    )
    max_runs_per_minute: int = Field(
        default=300, ge=1, description="runs one principal may start (or queue) per minute"
    )
    max_queued_runs: int = Field(
        default=200, ge=0, description="runs one principal may have waiting in the queue"
    )
    max_event_payload_bytes: int = Field(
        default=1024 * 1024,
        ge=2,
        description="largest event payload (emit_event, POST /events/{name}), as JSON bytes",
    )
    secret_grants: str = Field(
        default="",
        description="which principals may use which secret when several HTTP tokens are set: "
        "NAME=principal,principal;NAME2=principal (no grant, no access)",
    )
    operators: str = Field(
        default="",
        description="comma-separated principals that see every process and run in "
        "scheduler_status (the local stdio user always does)",
    )
    mount_server: str = Field(
        default="",
        description="module:attribute of a FastMCP server whose tools, resources and prompts are "
        "served beside Taskloom's (the MCP conformance tests mount their fixtures this way)",
    )

    metrics_max_tasks: int = Field(
        default=50,
        ge=1,
        le=10000,
        description="Prometheus: task ids labelled one by one; later tasks are labelled 'other'",
    )
    dashboard_session_s: int = Field(
        default=8 * 3600, ge=60, description="how long a dashboard sign-in lasts, in seconds"
    )
    # Retention (runs/retention.py): 0 days means "keep forever", and is the only way to say it.
    retention_days: int = Field(
        default=90,
        ge=0,
        description="finished runs older than this many days are pruned; 0 keeps runs forever",
    )
    retention_keep_last: int = Field(
        default=20,
        ge=0,
        description="the newest this many finished runs of each task are kept whatever their age",
    )
    retention_failed_days: int = Field(
        default=180,
        ge=0,
        description="failed and interrupted runs are kept this many days "
        "(never fewer than TASKLOOM_RETENTION_DAYS); 0 keeps them forever",
    )
    retention_batch: int = Field(
        default=500, ge=1, le=10000, description="runs deleted per transaction when pruning"
    )
    retention_interval_s: float = Field(
        default=600, ge=10, description="seconds between the scheduler's prunes"
    )

    @field_validator("mcp_config", "secrets_file", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        check_timezone(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if not value:
            return None
        from taskloom import dburl

        try:
            backend = dburl.parse(value).backend
        except ValueError:
            raise ValueError(f"not a database URL; {DATABASE_URL_FIX}") from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"Taskloom keeps its data in SQLite or PostgreSQL, not {backend}; "
                             f"{DATABASE_URL_FIX}")  # fmt: skip
        return value

    @field_validator("http_tokens")
    @classmethod
    def _token_pairs(cls, value: str) -> str:
        parse_http_tokens(value)
        return value

    @field_validator("http_allow_hosts")
    @classmethod
    def _allow_list(cls, value: str) -> str:
        for entry in (item.strip().strip("[]") for item in value.split(",")):
            if entry and _ADDRESS_LIKE.search(entry):
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(
                        f"{entry!r} is neither an IP address nor a network; write hosts, "
                        "addresses or CIDRs separated by commas, e.g. api.internal,10.0.0.0/8"
                    ) from None
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'taskloom.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        import os

        path = Path(os.environ.get("TASKLOOM_CONFIG_FILE", str(default_config_file())))
        toml = TomlConfigSettingsSource(settings_cls, toml_file=path if path.is_file() else None)
        return (init_settings, env_settings, toml)


def parse_http_tokens(text: str) -> dict[str, str]:
    """TASKLOOM_HTTP_TOKENS ("alice=tok1,bob=tok2") as {name: token}; a malformed entry raises."""
    tokens: dict[str, str] = {}
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        name, _, token = pair.partition("=")
        if not name or len(token) < 16:
            raise ValueError(
                f"entry {name or pair[:8]!r} is not name=token with a token of at least 16 "
                "characters; generate one with `openssl rand -hex 24`"
            )
        tokens[name] = token
    return tokens


def config_file() -> Path:
    return Path(os.environ.get("TASKLOOM_CONFIG_FILE", str(default_config_file())))


def load_settings() -> Settings:
    """The settings, or one `BadSetting` naming what is wrong (config file, value or key)."""
    path = config_file()
    try:
        keys = _config_keys(path)
        settings = Settings()
    except ValidationError as exc:
        raise _explain(exc, path) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        problem = f"cannot read it as TOML ({exc}); fix the file or point it elsewhere"
        raise BadSetting("TASKLOOM_CONFIG_FILE", str(path), problem) from None
    unknown = sorted(keys - set(Settings.model_fields))
    if unknown:
        problem = f"is not a setting (known keys: {', '.join(sorted(Settings.model_fields))})"
        raise BadSetting(f"{unknown[0]} in {path}", unknown[0], problem)
    return settings


def _config_keys(path: Path) -> set[str]:
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder")
    if not path.is_file():
        return set()
    with path.open("rb") as handle:
        return set(tomllib.load(handle))


def _explain(exc: ValidationError, path: Path) -> BadSetting:
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    name = field if field.isupper() else f"TASKLOOM_{field.upper()}"
    if name not in os.environ and field in _config_keys(path):
        name = f"{field} in {path}"
    message = str(first["msg"]).removeprefix("Value error, ")
    return BadSetting(name, _shown(field, first.get("input")), f"{message}{_default_hint(field)}")


def _shown(field: str, value: Any) -> Any:
    if field == "database_url" and isinstance(value, str):
        from taskloom import dburl

        try:
            return dburl.parse(value).shown()
        except ValueError:
            return value
    return "***" if "token" in field or "key" in field.lower() else value


def _default_hint(field: str) -> str:
    info = Settings.model_fields.get(field)
    if info is None or info.default_factory is not None or info.default in (None, ""):
        return ""
    return f" (unset it for the default, {info.default})"
