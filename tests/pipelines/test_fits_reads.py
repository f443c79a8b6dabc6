"""Every FITS file is opened at most twice per poll: once to check its structure and checksum
unread, once to read it; the products get the frame that ingest read."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import astropy.io.fits

from heliowatch.daemon.config import load_config
from heliowatch.daemon.service import Daemon


def test_each_ingested_file_is_opened_at_most_twice(disk_archive: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    state = tmp_path / "state"
    cfg = load_config(
        None,
        environ={
            "HELIOWATCH_DAEMON__STATE_DIR": str(state),
            "HELIOWATCH_METRICS__ENABLED": "false",
            "HELIOWATCH_REPLAY__ARCHIVE": str(disk_archive),
            "HELIOWATCH_JSOC__ENABLED_SOURCES": '["magnetogram", "sharp"]',
            "HELIOWATCH_FLARES__CNN_MODEL": '""',
        },
    )
    opens: Counter[str] = Counter()
    real_open = astropy.io.fits.open

    def counting_open(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        p = Path(str(name))
        if state in p.parents:
            opens[p.name.removesuffix(".part")] += 1
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(astropy.io.fits, "open", counting_open)
    summary = Daemon.from_config(cfg, once=True).run()
    assert summary.processed == {"data_health": 6, "regions": 3, "emergence": 3, "flares": 3}
    mags = {k: v for k, v in opens.items() if ".magnetogram." in k and k.startswith("hmi.M_")}
    sharps = {k: v for k, v in opens.items() if k.startswith("hmi.sharp")}
    assert len(mags) == 3 and len(sharps) == 5  # 3 magnetograms; 3 SHARP records with 5 segment files
    assert max(opens.values()) <= 2, opens
