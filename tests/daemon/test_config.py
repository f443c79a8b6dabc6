"""Configuration: defaults, documentation, validation with key paths, env overrides, secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from heliowatch.daemon.config import Config, Secret, default_config_text, iter_documented_keys, load_config
from heliowatch.daemon.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_equals_builtin_defaults() -> None:
    # Except that a file's relative state_dir is beside the file, the defaults' under the working directory.
    shipped = load_config(ROOT / "config.toml", environ={})
    assert shipped.daemon.state_dir == ROOT / "heliowatch-state"
    assert shipped == load_config(None, environ={}).replace(daemon={"state_dir": ROOT / "heliowatch-state"})


def test_relative_directories_in_a_config_file_are_relative_to_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "c.toml"
    conf.parent.mkdir()
    conf.write_text(
        "[daemon]\nstate_dir = 'state'\noutput_dir = ''\n[alerts]\nmaildir = '../mail'\n"
        "[alerts.smtp]\npassword_file = 'smtp-password'\n[models]\nexport_dir = '/srv/onnx'\n"
    )
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "smtp-password").write_text("pw\n")
    creds = {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}
    cfg = load_config(conf, environ=creds)
    assert cfg.daemon.state_dir == tmp_path / "etc" / "state"
    assert cfg.daemon.outputs == tmp_path / "etc" / "state" / "outputs"  # empty: the default, under state_dir
    assert cfg.maildir == tmp_path / "etc" / ".." / "mail"
    assert cfg.export_dir == Path("/srv/onnx")
    # A relative *_file is a systemd credential name, read from $CREDENTIALS_DIRECTORY.
    assert cfg.alerts.smtp.password.reveal() == "pw"
    # An environment override is the shell's: relative to the working directory, as given.
    env = load_config(conf, environ={**creds, "HELIOWATCH_DAEMON__STATE_DIR": "here"})
    assert env.daemon.state_dir == Path("here")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def test_state_dir_of_a_config_file_is_found_from_any_working_directory(tmp_path: Path) -> None:
    conf = tmp_path / "site" / "config.toml"
    conf.parent.mkdir()
    conf.write_text("[daemon]\nstate_dir = 'state'\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # No state directory yet: a one-line error naming it, and nothing created anywhere.
    p = _cli("alerts", "test", "--config", str(conf), cwd=elsewhere)
    assert p.returncode == 2
    assert p.stderr.strip() == (
        f"heliowatch: error: no state directory {conf.parent / 'state'}: run the daemon with this configuration first"
    )
    assert not any(elsewhere.iterdir()) and not (conf.parent / "state").exists()
    (conf.parent / "state").mkdir()
    p = _cli("alerts", "test", "--config", str(conf), cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    assert f"({conf.parent / 'state' / 'maildir'})" in p.stdout
    assert len(list((conf.parent / "state" / "maildir" / "new").iterdir())) == 1
    # `status` from a third directory reads the same state (the outbox's database).
    third = tmp_path / "third"
    third.mkdir()
    s = _cli("status", "--config", str(conf), cwd=third)
    assert s.returncode == 0, s.stderr
    assert json.loads(s.stdout)["state_dir"] == str(conf.parent / "state")
    assert not any(elsewhere.iterdir()) and not any(third.iterdir())


def test_defaults_are_safe_and_offline() -> None:
    cfg = load_config(None, environ={})
    assert cfg.jsoc.server == "replay"
    assert cfg.metrics.host == "127.0.0.1"
    assert cfg.state_url.startswith("sqlite:///")


def test_every_key_is_documented_in_config_toml() -> None:
    text = default_config_text()
    for key, doc in iter_documented_keys():
        section, name = key.rsplit(".", 1)
        assert f"[{section}]" in text, section
        assert f"\n{name} = " in text, f"{key} missing from config.toml"
        assert doc, f"{key} has no doc string"


@pytest.mark.parametrize(
    ("toml", "path", "fragment"),
    [
        ("[metrics]\nport = 70000\n", "metrics.port", "must be 0..65535"),
        ("[metrics]\nport = 'x'\n", "metrics.port", "must be an integer"),
        ("[metrics]\nprot = 1\n", "metrics.prot", "did you mean 'port'"),
        ("[nosuch]\na = 1\n", "nosuch", "unknown key"),
        ("[jsoc]\naia_wavelengths = [305]\n", "jsoc.aia_wavelengths", "unknown AIA wavelength"),
        ("[jsoc]\nemail = 'not-an-address'\n", "jsoc.email", "e-mail"),
        ("[jsoc]\nserver = 'ftp://x'\n", "jsoc.server", "http"),
        ("[jsoc]\nenabled_sources = ['magnetogram', 'hmi']\n", "jsoc.enabled_sources", "unknown source"),
        ("[logging]\nlevel = 'loud'\n", "logging.level", "must be one of"),
        ("[schedule]\naia_interval_s = 0\n", "schedule.aia_interval_s", "must be 1..86400"),
        ("[daemon]\nheartbeat_s = true\n", "daemon.heartbeat_s", "must be a number"),
    ],
)
def test_bad_values_name_the_key_path(tmp_path: Path, toml: str, path: str, fragment: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as e:
        load_config(f, environ={})
    assert str(e.value).startswith(path + ":")
    assert fragment in str(e.value)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[metrics\nport=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


def test_environment_overrides() -> None:
    env = {
        "HELIOWATCH_METRICS__PORT": "2525",
        "HELIOWATCH_JSOC__AIA_WAVELENGTHS": "[171, 304]",
        "HELIOWATCH_LOGGING__LEVEL": "debug",
    }
    cfg = load_config(None, environ=env)
    assert cfg.metrics.port == 2525
    assert cfg.jsoc.aia_wavelengths == [171, 304]
    assert cfg.logging.level == "debug"
    with pytest.raises(ConfigError, match=r"^metrics\.port:"):
        load_config(None, environ={"HELIOWATCH_METRICS__PORT": "99999"})


def test_secret_never_shows_in_repr_or_str() -> None:
    cfg = load_config(None, environ={"HELIOWATCH_JSOC__EMAIL": "ops@observatory.example"})
    assert cfg.jsoc.email.reveal() == "ops@observatory.example"
    for text in (repr(cfg), str(cfg), f"{cfg.jsoc.email}", str(cfg.jsoc)):
        assert "ops@observatory.example" not in text
    assert repr(Secret("")) == "Secret('')"


def test_email_from_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "jsoc-email").write_text("ops@observatory.example\n")
    env = {"HELIOWATCH_JSOC__EMAIL_FILE": "jsoc-email", "CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert load_config(None, environ=env).jsoc.email.reveal() == "ops@observatory.example"
    with pytest.raises(ConfigError, match=r"^jsoc\.email_file: cannot read"):
        load_config(None, environ={**env, "HELIOWATCH_JSOC__EMAIL_FILE": "missing"})


def test_cli_reports_a_bad_config_in_one_line(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[alerts]\nsmtp = 1\n[metrics]\nport = -1\n")
    p = subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", "run", "--config", str(f), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("heliowatch: config error: ")
    assert "Traceback" not in p.stderr


def test_config_is_frozen() -> None:
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.metrics.port = 1  # type: ignore[misc]
