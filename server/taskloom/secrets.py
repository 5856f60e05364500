"""Secrets by name, from `TASKLOOM_SECRET_<NAME>` or a NAME=value file kept at mode 0600.

Only the names a chain references are resolved, at run time; values never reach the database,
logs or answers (the runner redacts them with `Secrets.redact`).
"""

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from taskloom.domain.templates import Secrets
from taskloom.errors import TaskloomError

ENV_PREFIX = "TASKLOOM_SECRET_"


def load_secrets(names: Iterable[str], secrets_file: Path | None) -> Secrets:
    wanted = set(names)
    values: dict[str, str] = {}
    if wanted and secrets_file is not None and secrets_file.exists():
        file_values = read_secrets_file(secrets_file)
        values.update({k: v for k, v in file_values.items() if k in wanted})
    for name in wanted:
        env = os.environ.get(ENV_PREFIX + name)
        if env is not None:
            values[name] = env
    return Secrets(values)


def read_secrets_file(path: Path) -> dict[str, str]:
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TaskloomError(
            f"The secrets file {path} can be read by other users (mode {oct(mode & 0o777)}); "
            f"run `chmod 600 {path}` and try again."
        )
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip().strip('"').strip("'")
    return values
