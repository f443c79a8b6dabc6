"""astropy never reaches for the network in a heliowatch process (the box may be offline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: A started CLI (its command fails: no state), then the time conversions that need astropy's
#: Earth-rotation and leap-second tables, with every network call refused and recorded.
_PROBE = """
import json, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[1:2]))
    raise OSError("offline")
socket.socket.connect = refuse
socket.getaddrinfo = refuse
from heliowatch.daemon.cli import main
rc = main(["status"])
from astropy.time import Time
from astropy.utils import iers
t = Time.now()
ut1, tai = t.ut1.iso, t.tai.iso
print(json.dumps({"rc": rc, "auto_download": iers.conf.auto_download, "auto_max_age": iers.conf.auto_max_age,
                  "attempts": attempts}))
"""


def test_a_started_cli_uses_the_bundled_iers_tables_offline(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "astropy").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELIOWATCH_", "ASTROPY_", "XDG_"))}
    # A fresh astropy cache: nothing downloaded before can stand in for the bundled tables.
    env |= {"HOME": str(home), "ASTROPY_CACHE_DIR": str(home / "astropy"), "ASTROPY_CONFIG_DIR": str(home / "astropy")}
    p = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, check=False
    )
    # Without the setting, astropy's IERS_Auto raises for "now" once the bundled predictions are
    # more than 30 days old, after trying to download a newer table.
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["rc"] == 2  # `status` without state: the CLI really ran
    assert out["auto_download"] is False and out["auto_max_age"] is None
    assert out["attempts"] == []
