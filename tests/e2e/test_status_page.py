"""The status page, loaded by headless Chromium (a screenshot test, not just an HTTP 200)."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import numpy as np

from tests.e2e.conftest import need

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def test_status_page_renders_in_chromium(live_daemon: dict, tmp_path: Path) -> None:
    chromium = need("chromium")
    base = live_daemon["base"]
    shot = tmp_path / "status.png"
    profile = tmp_path / "profile"
    p = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", "--window-size=1400,1100", f"--screenshot={shot}", base + "/"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), p.stderr[-2000:]
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[:2] == (1100, 1400)
    # Not blank: text, tables and the magnetogram make the page vary.
    assert float(np.std(img[..., :3])) > 0.05
    dom = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", base + "/"], capture_output=True, text=True, timeout=120
    )
    html = dom.stdout
    assert "heliowatch" in html and "healthy" in html
    assert "12673" in html or "11158" in html  # the region table holds the demo's regions
    assert "hmi.sharp_cea_720s_nrt" in html  # data health
    assert "[heliowatch]" in html  # last alerts
    # The quicklook the page shows is a real PNG.
    png = urllib.request.urlopen(base + "/quicklook.png", timeout=10).read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert urllib.request.urlopen(base + "/status.json", timeout=10).headers["Content-Type"] == "application/json"


def test_endpoint_is_on_loopback_only(live_daemon: dict) -> None:
    assert live_daemon["base"].startswith("http://127.0.0.1:")
