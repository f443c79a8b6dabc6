"""Fixtures for end-to-end tests: external tools from Debian's packages, a live daemon."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def need(tool: str) -> str:
    """The path of a Debian-packaged tool; CI installs them all, so missing there is a failure."""
    path = shutil.which(tool)
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{tool} is missing in CI: .ci/run installs it from Debian's packages")
    pytest.skip(f"{tool} is not installed here (apt-get install; CI installs it)")
    raise AssertionError  # unreachable


@pytest.fixture(scope="module")
def live_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """`heliowatch run --replay demo --keep-running` with its status page on a free port."""
    d = tmp_path_factory.mktemp("live")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HELIOWATCH_METRICS__PORT": str(port), "HELIOWATCH_REPLAY__SPEED": "5000"}
    # The daemon logs on stderr: into a file, since a pipe nobody reads would stall it once full.
    log = d / "daemon.log"
    with log.open("w") as err:
        p = subprocess.Popen(
            [sys.executable, "-m", "heliowatch.daemon.cli", "run", "--replay", "demo", "--keep-running"],
            cwd=d,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
    base = f"http://127.0.0.1:{port}"
    status: dict = {}
    deadline = time.time() + 240
    while time.time() < deadline:
        try:
            status = json.loads(urllib.request.urlopen(base + "/status.json", timeout=5).read())
            if status.get("regions") and status.get("quicklook") and status.get("alerts"):
                break
        except OSError:
            pass
        if p.poll() is not None:
            pytest.fail(f"daemon exited: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    else:
        p.kill()
        pytest.fail(f"daemon produced no regions/quicklook/alerts in time; last status: {status}")
    yield {"base": base, "dir": d, "status": status}
    p.terminate()
    p.wait(timeout=60)
