"""structlog to stderr: console on a terminal, JSON otherwise. stdout belongs to the protocol."""

import functools
import logging
import sys
from typing import Literal

import structlog

_SECRET_KEYS = ("secret", "token", "password", "api_key", "authorization")


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    """Whether a log key names a secret (asked for every key of every line: cached)."""
    lowered = key.lower()
    return any(s in lowered for s in _SECRET_KEYS)


def _drop_secrets(
    _: object, __: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    for key in [k for k in event if _secret_key(k)]:
        event[key] = "[redacted]"
    return event


def configure(level: str = "info", fmt: Literal["auto", "console", "json"] = "auto") -> None:
    """Called once, from the entry point."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through stdlib logging (FastMCP, uvicorn, SQLAlchemy) come out on
    # stderr in the same format, warnings and up.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(numeric, logging.WARNING))
