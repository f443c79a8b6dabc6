"""Malformed and unusable configs are one line and exit 2, never a traceback (issue 11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from heliowatch.daemon.cli import main
from heliowatch.daemon.config import load_config
from heliowatch.daemon.errors import ConfigError


def _write(tmp_path: Path, content: bytes | str) -> Path:
    f = tmp_path / "config.toml"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    return f


CASES: dict[str, tuple[bytes | str, str]] = {
    "non-UTF-8 file": (b'[daemon]\nstate_dir = "\xff\xfe"\n', "not UTF-8"),
    "deeply nested arrays": ("x = " + "[" * 3000 + "]" * 3000 + "\n", "nests arrays or tables too deeply"),
    "deeply nested tables": ("x = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n", "too deeply"),
    "a 5 MB value": ('[replay]\narchive = "' + "a" * 5_000_000 + '"\n', "larger than 1024 KiB"),
    "a 5,000-digit integer": ("[jsoc]\nretries = " + "9" * 5000 + "\n", "not valid TOML"),
    "a long string value": ('[replay]\narchive = "' + "a" * 5000 + '"\n', "replay.archive: is 5000 characters long"),
    "a bad state.url": ('[state]\nurl = "not a url"\n', "state.url: not an SQLAlchemy URL"),
    "a state.url with a bad port": ('[state]\nurl = "postgresql://u:secret@h:notaport/db"\n', "state.url"),
    "a garbage store.url": ('[store]\nurl = "::::"\n', "store.url: not an SQLAlchemy URL"),
    "inf max_file_mb": ("[jsoc]\nmax_file_mb = inf\n", "jsoc.max_file_mb: must be a finite number"),
    "inf verification_days": ("[flares]\nverification_days = inf\n", "flares.verification_days: must be a finite number"),
    "nan speed": ("[replay]\nspeed = nan\n", "replay.speed: must be a finite number"),
    "a NUL in state_dir": ('[daemon]\nstate_dir = "/tmp/a\\u0000b"\n', "daemon.state_dir: must not contain a NUL"),
    "a 300-character name": (
        '[daemon]\nstate_dir = "/tmp/' + "n" * 300 + '"\n',
        "daemon.state_dir: has a file name of 300 bytes",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_config_is_one_config_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    content, message = CASES[case]
    f = _write(tmp_path, content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")) as e:
        load_config(f, environ={})
    assert "\n" not in str(e.value)
    assert "secret" not in str(e.value)  # a URL's password is never quoted back
    assert main(["status", "--config", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("heliowatch: config error: ")


def test_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    f = _write(tmp_path, f'[daemon]\nstate_dir = "{tmp_path / "afile"}"\n')
    with pytest.raises(ConfigError, match=r"daemon\.state_dir: .* is a file, not a directory"):
        load_config(f, environ={})


def test_environment_overrides_cannot_smuggle_what_the_file_cannot(tmp_path: Path) -> None:
    for name, value, message in [
        ("HELIOWATCH_JSOC__MAX_FILE_MB", "inf", "finite"),
        ("HELIOWATCH_REPLAY__ARCHIVE", "[" * 5000, "characters long"),
        ("HELIOWATCH_JSOC__RETRIES", "9" * 5000, "characters long"),
        ("HELIOWATCH_JSOC__RETRIES", "9" * 4000, r"must be 0\.\.20 \(got 9{57}\.\.\.\)$"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(None, environ={name: value})


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('[metrics]\nhost = "no-such-host.invalid"\n', "metrics.host: cannot resolve"),
        ('[metrics]\nhost = "no-such-host.invalid"\nport = 0\n', "metrics.host: cannot resolve"),
        ('[daemon]\nstate_dir = "/proc/heliowatch"\n', "daemon.state_dir"),
    ],
)
def test_unusable_at_run_time_is_one_line_and_exit_2(tmp_path: Path, config: str, message: str) -> None:
    f = _write(tmp_path, config)
    out = _run("run", "--config", str(f), "--once", "--replay", "demo", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert message in out.stderr


@pytest.mark.slow
def test_metrics_on_a_non_loopback_address_is_a_logged_warning(tmp_path: Path, tiny_archive: Path) -> None:
    f = _write(tmp_path, '[metrics]\nhost = "0.0.0.0"\nport = 0\n[logging]\nformat = "console"\n')
    out = _run("run", "--config", str(f), "--once", "--replay", str(tiny_archive), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "metrics_not_loopback" in out.stderr
    assert "Traceback" not in out.stderr
    f.write_text('[metrics]\nhost = "127.0.0.1"\nport = 0\n[logging]\nformat = "console"\n')
    out = _run("run", "--config", str(f), "--once", "--replay", str(tiny_archive), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "metrics_not_loopback" not in out.stderr
