"""The command-line contract: --version, strict JSON (RFC 8259), one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from heliowatch.pipelines.standin.archive import demo_archive_path


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def strict_loads(text: str) -> object:
    """A parser that, like JSON.parse, refuses NaN and Infinity."""

    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_version() -> None:
    p = cli("--version")
    assert p.returncode == 0 and p.stdout.startswith("heliowatch ")


def test_detect_and_forecast_json_are_strict_json_with_a_schema_version() -> None:
    # The demo's 02:00 frame has regions without an opposite-polarity umbra: their delta
    # separation is undefined, written as null (it used to be Infinity).
    frame = demo_archive_path() / "magnetogram" / "hmi.M_720s_nrt.20110215_020034_TAI.3.magnetogram.fits"
    d = cli("detect", str(frame), "--json")
    assert d.returncode == 0, d.stderr
    doc = strict_loads(d.stdout)
    assert isinstance(doc, dict) and doc["schema_version"] == 1
    assert any(r["measures"].get("delta_separation_deg") is None for r in doc["regions"])
    sharps = [str(p) for p in sorted((demo_archive_path() / "sharp").glob("*.fits"))]
    f = cli("forecast", *sharps, "--json")
    assert f.returncode == 0, f.stderr
    assert isinstance(strict_loads(f.stdout), list)


def test_a_busy_metrics_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = cli("run", "--replay", "demo", "--once", cwd=tmp_path, env={"HELIOWATCH_METRICS__PORT": str(port)})
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith("heliowatch: config error: metrics.port: cannot listen on 127.0.0.1:")
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("args", [["backfill", "--start", "yesterday", "--end", "2011-01-01"], ["gaps", "--last", "forever"]])
def test_bad_backfill_times_are_one_line(args: list[str], tmp_path: Path) -> None:
    p = cli(*args, "--replay", "demo", cwd=tmp_path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "heliowatch: error:" in p.stderr
