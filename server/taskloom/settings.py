"""Configuration from `TASKLOOM_*` environment variables and an optional TOML config file."""

from pathlib import Path
from typing import Literal

from platformdirs import user_config_dir, user_data_dir
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from taskloom.tasks.model import check_timezone

APP_NAME = "taskloom"


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
    max_output_bytes: int = Field(default=65536, ge=1024, description="stored output per step")
    max_tasks_per_owner: int = Field(default=1000, ge=1)
    owner: str = Field(default="local", description="owner of tasks created without HTTP auth")
    mount_server: str = Field(
        default="",
        description="module:attribute of a FastMCP server whose tools, resources and prompts are "
        "served beside Taskloom's (the MCP conformance tests mount their fixtures this way)",
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
