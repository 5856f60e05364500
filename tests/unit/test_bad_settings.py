"""Every bad setting stops `taskloom serve|worker|status` (the installed console script) with one
line on stderr naming the setting, its value and the fix, and exit code 2."""

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TASKLOOM = Path(sys.executable).with_name("taskloom")


@dataclass
class Case:
    """A command run with `env` in a fresh folder (`{dir}` in values stands for it); its one
    stderr line must contain every fragment."""

    command: str
    env: dict[str, str]
    fragments: list[str]
    prepare: Callable[[Path], None] = lambda _: None
    absent: list[str] = field(default_factory=list)


def read_only(path: Path) -> None:
    """No write permission; for root, which permissions do not bind, the immutable flag."""
    path.chmod(0o555 if path.is_dir() else 0o444)
    if os.geteuid() == 0:
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(path)], check=False).returncode:
            pytest.skip("running as root, and `chattr +i` is unavailable to make a file read-only")


def _file(name: str, text: str, *, locked: bool = False) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / name).write_text(text)
        if locked:
            read_only(folder / name)

    return write


def _read_only_folder(folder: Path) -> None:
    (folder / "locked").mkdir()
    read_only(folder / "locked")


DB = "TASKLOOM_DATABASE_URL"
CASES = {
    "db-under-a-file": Case("status", {DB: "sqlite:///{dir}/afile/x.db"},
                            [DB, "afile/x.db", "is a file, not a folder"], _file("afile", "")),
    "mysql": Case("worker", {DB: "mysql://u:pw@db/tl"},
                  [DB, "mysql://u:***@db/tl", "not mysql", "postgresql://"], absent=["pw"]),
    "not-a-url": Case("serve", {DB: "not a url"}, [DB, "'not a url'", "sqlite:///"]),
    "corrupt-sqlite": Case("worker", {DB: "sqlite:///{dir}/bad.db"},
                           [DB, "bad.db", "not a SQLite database", "restore a backup"],
                           _file("bad.db", "this is not a database at all")),
    "read-only-file": Case("status", {DB: "sqlite:///{dir}/ro.db"},
                           [DB, "ro.db", "read-only", "chmod"], _file("ro.db", "", locked=True)),
    "read-only-folder": Case("serve", {DB: "sqlite:///{dir}/locked/new.db"},
                             [DB, "locked", "read-only"], _read_only_folder),
    "postgresql-unreachable": Case("status", {DB: "postgresql://tl@127.0.0.1:1/tl"},
                                   [DB, "127.0.0.1:1", "cannot connect"]),
    "data-dir-under-a-file": Case("worker", {"TASKLOOM_DATA_DIR": "{dir}/afile/data"},
                                  ["TASKLOOM_DATA_DIR", "is a file, not a folder"],
                                  _file("afile", "")),
    "timezone": Case("worker", {"TASKLOOM_TIMEZONE": "Mars/Olympus"},
                     ["TASKLOOM_TIMEZONE", "Mars/Olympus", "IANA"]),
    "not-a-number": Case("status", {"TASKLOOM_LEASE_S": "thirty"},
                         ["TASKLOOM_LEASE_S", "thirty", "valid number", "default, 30"]),
    "below-minimum": Case("serve", {"TASKLOOM_MAX_OUTPUT_BYTES": "10"},
                          ["TASKLOOM_MAX_OUTPUT_BYTES", "'10'", "greater than or equal to 1024"]),
    "not-a-boolean": Case("worker", {"TASKLOOM_SCHEDULER": "maybe"},
                          ["TASKLOOM_SCHEDULER", "maybe", "boolean"]),
    "log-level": Case("serve", {"TASKLOOM_LOG_LEVEL": "loud"},
                      ["TASKLOOM_LOG_LEVEL", "loud", "'debug'"]),
    "toml-syntax": Case("status", {"TASKLOOM_CONFIG_FILE": "{dir}/c.toml"},
                        ["TASKLOOM_CONFIG_FILE", "c.toml", "TOML"], _file("c.toml", "lease_s = [")),
    "toml-unknown-key": Case("worker", {"TASKLOOM_CONFIG_FILE": "{dir}/c.toml"},
                             ["leese_s in", "c.toml", "not a setting", "lease_s"],
                             _file("c.toml", "leese_s = 5\n")),
    "toml-bad-value": Case("serve", {"TASKLOOM_CONFIG_FILE": "{dir}/c.toml"},
                           ["lease_s in", "c.toml", "'x'", "valid number"],
                           _file("c.toml", 'lease_s = "x"\n')),
    "http-tokens": Case("serve", {"TASKLOOM_HTTP_TOKENS": "alice=short"},
                        ["TASKLOOM_HTTP_TOKENS", "alice", "16 characters"], absent=["short"]),
    "allow-hosts": Case("worker", {"TASKLOOM_HTTP_ALLOW_HOSTS": "api.internal,10.0.0.0/33"},
                        ["TASKLOOM_HTTP_ALLOW_HOSTS", "10.0.0.0/33", "CIDR"]),
    "mcp-config-missing": Case("status", {"TASKLOOM_MCP_CONFIG": "{dir}/none.json"},
                               ["TASKLOOM_MCP_CONFIG", "none.json", "does not exist"]),
}  # fmt: skip


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """The case's folder; files made read-only are made writable again afterwards."""
    yield tmp_path
    for path in tmp_path.rglob("*"):
        if os.geteuid() == 0 and shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(path)], check=False, capture_output=True)
        path.chmod(0o755)


def run(case: Case, folder: Path) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
    env = {**keep, "HOME": str(folder), "TASKLOOM_DATA_DIR": str(folder / "data"),
           "TASKLOOM_CONFIG_FILE": str(folder / "no-config.toml"), "COLUMNS": "80"}  # fmt: skip
    env |= {k: v.replace("{dir}", str(folder)) for k, v in case.env.items()}
    return subprocess.run(
        [str(TASKLOOM), case.command], env=env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=90, cwd=folder,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_setting_is_one_line_and_exit_2(name: str, folder: Path) -> None:
    """The command exits 2 with one stderr line naming the setting, the value and the fix."""
    case = CASES[name]
    case.prepare(folder)
    done = run(case, folder)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Bad setting ")
    for fragment in case.fragments:
        assert fragment in lines[0]
    for secret in case.absent:
        assert secret not in lines[0]
    assert done.stdout == ""
