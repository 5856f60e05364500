"""The `taskloom` console script as a user runs it: a subprocess on a temp SQLite file, its
stdout piped or a pseudo-terminal of a chosen width."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

TASKLOOM = Path(sys.executable).parent / "taskloom"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"
TIMEOUT_S = 120

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.splitlines()


def cli_env(db: Path, **extra: str) -> dict[str, str]:
    """A user's environment on the SQLite file `db`: no developer settings or colour choices."""
    drop = ("TASKLOOM_", "NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TTY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return env | {
        "TASKLOOM_DATABASE_URL": f"sqlite:///{db}",
        "TASKLOOM_CONFIG_FILE": str(db.parent / "no-config.toml"),
        "TASKLOOM_DATA_DIR": str(db.parent / "data"),
        "TASKLOOM_TIMEZONE": "UTC",
        "TERM": "xterm-256color",
        **extra,
    }


@dataclass(frozen=True)
class Cli:
    """Runs `taskloom ARGS` on one database; stdin is never a terminal unless `tty` is given."""

    db: Path

    def __call__(self, *args: str, stdin: str = "", **env: str) -> Result:
        done = subprocess.run(
            [str(TASKLOOM), *args], input=stdin, capture_output=True, text=True,
            env=cli_env(self.db, **env), timeout=TIMEOUT_S, check=False,
        )  # fmt: skip
        return Result(done.returncode, done.stdout, done.stderr)

    def tty(self, *args: str, columns: int, typed: str | None = None) -> Result:
        """`taskloom ARGS` with stdout a terminal `columns` wide and stderr piped; with `typed`,
        stdin is that terminal too and `typed` is what the user types into it."""
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        with subprocess.Popen(
            [str(TASKLOOM), *args], stdout=follower, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL if typed is None else follower, env=cli_env(self.db),
        ) as process:  # fmt: skip
            os.close(follower)
            if typed is not None:
                os.write(leader, typed.encode())  # kept by the terminal until it is read
            shown = _drain(leader)
            stderr = process.stderr.read() if process.stderr else b""
            code = process.wait(TIMEOUT_S)
        os.close(leader)
        return Result(code, shown.decode(), stderr.decode())


def _drain(fd: int) -> bytes:
    """Everything written to a pseudo-terminal until its writer exits (Linux answers EIO)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "cli.db")


@pytest.fixture(scope="module")
def shared_cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """One database for a module's tests that only read it (each command costs a process)."""
    return Cli(tmp_path_factory.mktemp("shared") / "cli.db")


@pytest.fixture
def other_cli(tmp_path: Path) -> Cli:
    """A second, empty database."""
    return Cli(tmp_path / "other.db")


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Writes a file under the test's directory and answers its path."""

    def writer(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return writer
