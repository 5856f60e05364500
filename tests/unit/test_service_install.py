"""User-service files: rendering, escaping, where they go, and what installing writes."""

import configparser
import plistlib
import stat
from pathlib import Path

import pytest

from taskloom.errors import InvalidInput, TaskloomError
from taskloom.service_install import (
    detect_kind,
    find_taskloom_bin,
    install,
    render_service,
    service_environment,
    service_path,
)
from taskloom.settings import Settings

BIN = Path("/opt/task loom/bin/taskloom")
LOGS = Path("/var/tmp/taskloom logs")
ENV = {
    "TASKLOOM_TIMEZONE": "Europe/Berlin",
    "TASKLOOM_DATABASE_URL": "postgresql://u:p%40ss@db/taskloom",
    "TASKLOOM_HTTP_TOKENS": 'alice=a"b\\c$d',
    "TASKLOOM_OWNER": "<me> & co",
}


def parse_unit(text: str) -> configparser.ConfigParser:
    """systemd INI as configparser sees it (case kept; repeated keys allowed, the last wins)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def systemd_unquote(word: str) -> str:
    """The value systemd reads from one double-quoted word (escapes, `%%`, `$$` undone)."""
    assert word[0] == word[-1] == '"'
    inner = word[1:-1].replace("%%", "%").replace("$$", "$")
    return inner.replace('\\"', '"').replace("\\\\", "\\")


def test_systemd_unit_is_valid_ini_without_placeholders() -> None:
    """The systemd unit parses as INI with its three sections and no `{{` left."""
    text = render_service("systemd", taskloom_bin=BIN, env=ENV, log_dir=LOGS)
    unit = parse_unit(text)
    assert "{{" not in text
    assert unit.sections() == ["Unit", "Service", "Install"]
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "default.target"


def test_systemd_unit_runs_the_worker_from_a_quoted_path() -> None:
    """ExecStart quotes the binary so a path with spaces stays one word."""
    text = render_service("systemd", taskloom_bin=BIN, env={}, log_dir=LOGS)
    assert parse_unit(text)["Service"]["ExecStart"] == f'"{BIN}" worker'


def test_systemd_environment_round_trips_quotes_percent_and_backslashes() -> None:
    """Each variable is one Environment line that systemd reads back to the exact value."""
    text = render_service("systemd", taskloom_bin=BIN, env=ENV, log_dir=LOGS)
    lines = [ln.removeprefix("Environment=") for ln in text.splitlines() if "Environment=" in ln]
    read = dict(systemd_unquote(word).split("=", 1) for word in lines)
    assert read == ENV


def test_systemd_exec_path_escapes_specifiers_and_variables() -> None:
    """`%` and `$` in the binary path are doubled so systemd does not expand them."""
    text = render_service(
        "systemd", taskloom_bin=Path("/x/%h/$HOME/taskloom"), env={}, log_dir=LOGS
    )
    assert 'ExecStart="/x/%%h/$$HOME/taskloom" worker' in text


def test_launchd_plist_parses_with_worker_arguments_and_logs() -> None:
    """The plist parses and runs `taskloom worker`, logging under the log directory."""
    text = render_service("launchd", taskloom_bin=BIN, env=ENV, log_dir=LOGS)
    plist = plistlib.loads(text.encode())
    assert "{{" not in text
    assert plist["Label"] == "io.taskloom.worker"
    assert plist["ProgramArguments"] == [str(BIN), "worker"]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardOutPath"] == f"{LOGS}/worker.out.log"
    assert plist["StandardErrorPath"] == f"{LOGS}/worker.err.log"


def test_launchd_environment_round_trips_xml_special_characters() -> None:
    """Environment values with `<`, `&` and quotes come back unchanged from the plist."""
    text = render_service("launchd", taskloom_bin=BIN, env=ENV, log_dir=LOGS)
    assert plistlib.loads(text.encode())["EnvironmentVariables"] == ENV


def test_launchd_plist_with_no_environment_is_valid() -> None:
    """An empty environment renders an empty EnvironmentVariables dict."""
    text = render_service("launchd", taskloom_bin=BIN, env={}, log_dir=LOGS)
    assert plistlib.loads(text.encode())["EnvironmentVariables"] == {}


def test_relative_binary_path_is_refused() -> None:
    """A relative binary path is an InvalidInput naming taskloom_bin."""
    with pytest.raises(InvalidInput, match="taskloom_bin"):
        render_service("systemd", taskloom_bin=Path("taskloom"), env={}, log_dir=LOGS)


def test_value_with_newline_is_refused_without_showing_it() -> None:
    """A newline in a value is refused, and the message never shows the value."""
    env = {"TASKLOOM_HTTP_TOKENS": "secret\n[Service]"}
    with pytest.raises(InvalidInput) as caught:
        render_service("launchd", taskloom_bin=BIN, env=env, log_dir=LOGS)
    assert "TASKLOOM_HTTP_TOKENS" in caught.value.message
    assert "secret" not in caught.value.message


def test_bad_variable_name_is_refused() -> None:
    """A variable name that is not an identifier is refused."""
    with pytest.raises(InvalidInput, match="env"):
        render_service("systemd", taskloom_bin=BIN, env={"A B": "1"}, log_dir=LOGS)


def test_service_paths_are_the_user_service_directories(tmp_path: Path) -> None:
    """systemd files go to ~/.config/systemd/user, launchd files to ~/Library/LaunchAgents."""
    assert service_path("systemd", home=tmp_path) == (
        tmp_path / ".config/systemd/user/taskloom.service"
    )
    assert service_path("launchd", home=tmp_path) == (
        tmp_path / "Library/LaunchAgents/io.taskloom.worker.plist"
    )


def test_systemd_path_follows_xdg_config_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an explicit home, the systemd path honours XDG_CONFIG_HOME."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert service_path("systemd") == tmp_path / "cfg/systemd/user/taskloom.service"


@pytest.mark.parametrize(("platform", "kind"), [("linux", "systemd"), ("darwin", "launchd")])
def test_detect_kind_picks_the_platform_service_manager(platform: str, kind: str) -> None:
    """Linux gets systemd and macOS gets launchd."""
    assert detect_kind(platform) == kind


def test_detect_kind_refuses_other_platforms() -> None:
    """Windows has no user service Taskloom writes; the error says what to do instead."""
    with pytest.raises(TaskloomError, match="taskloom worker"):
        detect_kind("win32")


def test_service_environment_keeps_settings_and_path_only() -> None:
    """TASKLOOM_* settings, PATH and the Anthropic variables are kept; the rest is dropped."""
    environ = {"TASKLOOM_TIMEZONE": "UTC", "PATH": "/bin", "HOME": "/h", "ANTHROPIC_API_KEY": "k"}
    assert service_environment(environ) == {
        "TASKLOOM_TIMEZONE": "UTC",
        "PATH": "/bin",
        "ANTHROPIC_API_KEY": "k",
    }


def test_install_writes_a_private_systemd_unit_under_home(tmp_path: Path) -> None:
    """install writes the unit (mode 0600) under the given home and returns the systemctl hint."""
    path, hint = install("systemd", taskloom_bin=BIN, env=ENV, home=tmp_path)
    assert path == tmp_path / ".config/systemd/user/taskloom.service"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == render_service(
        "systemd", taskloom_bin=BIN, env=ENV, log_dir=tmp_path / ".local/state/taskloom"
    )
    assert hint.startswith("systemctl --user daemon-reload")


def test_install_launchd_creates_the_log_directory(tmp_path: Path) -> None:
    """A launchd install creates ~/Library/Logs/taskloom, which launchd will not create."""
    path, hint = install("launchd", taskloom_bin=BIN, env={}, home=tmp_path)
    assert (tmp_path / "Library/Logs/taskloom").is_dir()
    assert plistlib.loads(path.read_bytes())["StandardOutPath"].startswith(str(tmp_path))
    assert f"launchctl bootstrap gui/$(id -u) {path}" in hint


def test_install_follows_home_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an explicit home, install writes under $HOME."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    path, _ = install("systemd", taskloom_bin=BIN, env={})
    assert path.is_relative_to(tmp_path)


def test_install_replaces_an_existing_file(tmp_path: Path) -> None:
    """Installing again overwrites the previous file and leaves no partial file behind."""
    install("systemd", taskloom_bin=BIN, env={"TASKLOOM_OWNER": "old"}, home=tmp_path)
    path, _ = install("systemd", taskloom_bin=BIN, env={"TASKLOOM_OWNER": "new"}, home=tmp_path)
    assert "TASKLOOM_OWNER=new" in path.read_text()
    assert sorted(p.name for p in path.parent.iterdir()) == ["taskloom.service"]


def test_stop_timeouts_outlast_the_shutdown_grace() -> None:
    """Both service files wait longer than the default shutdown grace before killing the worker."""
    grace = Settings.model_fields["shutdown_grace_s"].default
    unit = parse_unit(render_service("systemd", taskloom_bin=BIN, env={}, log_dir=LOGS))
    launchd = render_service("launchd", taskloom_bin=BIN, env={}, log_dir=LOGS)
    plist = plistlib.loads(launchd.encode())
    assert int(unit["Service"]["TimeoutStopSec"]) > grace
    assert plist["ExitTimeOut"] > grace


def fake_interpreter(monkeypatch: pytest.MonkeyPatch, bin_dir: Path) -> Path:
    """Pretend the running interpreter lives in `bin_dir`, beside a `taskloom` script."""
    bin_dir.mkdir(parents=True)
    (bin_dir / "taskloom").write_text("#!/bin/sh\n")
    monkeypatch.setattr("sys.executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", "")
    return bin_dir / "taskloom"


def test_find_taskloom_bin_prefers_the_script_beside_the_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `taskloom` script of the running environment is the one the service runs."""
    script = fake_interpreter(monkeypatch, tmp_path / "venv" / "bin")
    assert find_taskloom_bin() == script


def test_find_taskloom_bin_refuses_a_uvx_cache_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script in uv's temporary cache is refused with the command that installs it for good."""
    fake_interpreter(monkeypatch, tmp_path / "uv" / "archive-v0" / "abc123" / "bin")
    with pytest.raises(TaskloomError, match="uv tool install taskloom"):
        find_taskloom_bin()


def test_find_taskloom_bin_fails_clearly_when_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a `taskloom` script anywhere, the error says how to install one."""
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", "")
    with pytest.raises(TaskloomError, match="Cannot find the `taskloom` command"):
        find_taskloom_bin()
