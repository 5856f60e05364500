"""User-service files that keep `taskloom worker` running, so tasks fire while no client is open.

The templates in `service_templates/` (shipped in the wheel) are the single source;
`manifests/systemd/` and `manifests/launchd/` hold examples rendered from them, which the tests
check. Installing only writes the file: starting the service is the user's call, so `install`
returns the command to run instead of running it.
"""

import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

from taskloom.errors import InvalidInput, TaskloomError

ServiceKind = Literal["systemd", "launchd"]

LABEL = "io.taskloom.worker"
UNIT = "taskloom.service"
TEMPLATES: dict[ServiceKind, str] = {"systemd": UNIT, "launchd": f"{LABEL}.plist"}
# Variables the worker needs to behave like the shell it was installed from.
INHERITED = ("PATH", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")


def render_service(
    kind: ServiceKind, *, taskloom_bin: Path, env: Mapping[str, str], log_dir: Path
) -> str:
    """The service file for `kind`, running `taskloom_bin worker` with `env` (sorted by name).

    systemd logs to the journal, so `log_dir` only matters for launchd.
    """
    _check_path("taskloom_bin", taskloom_bin)
    _check_path("log_dir", log_dir)
    _check_env(env)
    if kind == "systemd":
        values = {
            "TASKLOOM_BIN": _systemd_quote(str(taskloom_bin), in_exec=True),
            "ENVIRONMENT": "".join(
                f"Environment={_systemd_quote(f'{k}={v}', in_exec=False)}\n"
                for k, v in sorted(env.items())
            ),
        }
    else:
        values = {
            "TASKLOOM_BIN": escape(str(taskloom_bin)),
            "LOG_DIR": escape(str(log_dir)),
            "ENVIRONMENT": "".join(
                f"    <key>{escape(k)}</key>\n    <string>{escape(v)}</string>\n"
                for k, v in sorted(env.items())
            ),
        }
    template = (files("taskloom") / "service_templates" / TEMPLATES[kind]).read_text("utf-8")
    # The environment is a block of whole lines: it replaces its placeholder's line.
    template = template.replace("{{ENVIRONMENT}}\n", values.pop("ENVIRONMENT"))
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def service_path(kind: ServiceKind, *, home: Path | None = None) -> Path:
    """Where the service manager looks for the user's service file."""
    base = home or Path.home()
    if kind == "launchd":
        return base / "Library" / "LaunchAgents" / TEMPLATES["launchd"]
    xdg = os.environ.get("XDG_CONFIG_HOME", "") if home is None else ""
    config = Path(xdg) if Path(xdg).is_absolute() else base / ".config"
    return config / "systemd" / "user" / UNIT


def default_log_dir(kind: ServiceKind, *, home: Path | None = None) -> Path:
    base = home or Path.home()
    if kind == "launchd":
        return base / "Library" / "Logs" / "taskloom"
    return base / ".local" / "state" / "taskloom"


def detect_kind(platform: str = sys.platform) -> ServiceKind:
    """launchd on macOS, systemd on Linux; other platforms have no user service we write."""
    if platform == "darwin":
        return "launchd"
    if platform.startswith("linux"):
        return "systemd"
    raise TaskloomError(
        f"Taskloom cannot install a user service on {platform!r}. Run `taskloom worker` under "
        "your own supervisor instead (on Windows: a Task Scheduler task at logon)."
    )


def service_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The TASKLOOM_* settings of `environ`, plus the few variables in `INHERITED`."""
    return {k: v for k, v in environ.items() if k.startswith("TASKLOOM_") or k in INHERITED}


def find_taskloom_bin() -> Path:
    """The `taskloom` command beside the running interpreter, else the one on PATH."""
    name = "taskloom.exe" if sys.platform == "win32" else "taskloom"
    beside = Path(sys.executable).parent / name
    found = beside if beside.is_file() else Path(shutil.which(name) or "")
    if not found.is_absolute():
        raise TaskloomError(
            "Cannot find the `taskloom` command. Install it for good with "
            "`uv tool install taskloom` (or pipx), then run this again."
        )
    if any(part.startswith("archive-v") for part in found.parts):
        raise TaskloomError(
            f"{found} lives in uv's temporary cache (this is a `uvx` run) and may vanish. Install "
            "it for good with `uv tool install taskloom`, then run this again from there."
        )
    return found


def next_step(kind: ServiceKind, path: Path) -> str:
    """The shell command that (re)starts the service from the file just written."""
    if kind == "systemd":
        return (
            "systemctl --user daemon-reload && systemctl --user enable taskloom.service "
            "&& systemctl --user restart taskloom.service"
        )
    # bootout first so that a re-install replaces a loaded agent instead of failing.
    return (
        f"launchctl bootout gui/$(id -u)/{LABEL} 2>/dev/null; "
        f"launchctl bootstrap gui/$(id -u) {shlex.quote(str(path))}"
    )


def install(
    kind: ServiceKind | None = None,
    *,
    taskloom_bin: Path | None = None,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    log_dir: Path | None = None,
) -> tuple[Path, str]:
    """Write the user-service file (mode 0600: it may hold tokens) and return its path and the
    command that starts it. Never starts anything itself."""
    kind = kind or detect_kind()
    log_dir = log_dir or default_log_dir(kind, home=home)
    text = render_service(
        kind,
        taskloom_bin=taskloom_bin or find_taskloom_bin(),
        env=service_environment(os.environ) if env is None else env,
        log_dir=log_dir,
    )
    path = service_path(kind, home=home)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "launchd":
        # launchd does not create the directories of StandardOutPath / StandardErrorPath.
        log_dir.mkdir(parents=True, exist_ok=True)
    _write_private(path, text)
    return path, next_step(kind, path)


def _write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with a file only its owner can read."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(partial, 0o600)
    os.replace(partial, path)


def _systemd_quote(text: str, *, in_exec: bool) -> str:
    """One double-quoted systemd word: `%` is a specifier and, in Exec lines, `$` a variable."""
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if in_exec:
        text = text.replace("$", "$$")
    return f'"{text}"'


def _check_path(field: str, path: Path) -> None:
    if not path.is_absolute() or _CONTROL.search(str(path)):
        raise InvalidInput(field, str(path), "Give an absolute path without control characters.")


def _check_env(env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise InvalidInput("env", name, "Environment variable names are letters, digits, _.")
        if _CONTROL.search(value):
            # The value may be a token: the message names the variable, never the value.
            raise InvalidInput(
                f"env.{name}", "<value>", "Values cannot hold newlines or control characters."
            )
