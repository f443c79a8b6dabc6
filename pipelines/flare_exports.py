"""Exports of a flare issue: the whole issue as JSON, and the CCMC Flare Scoreboard fields.

Both are returned as bytes with their file names, so the flare product can hand them to the
fan-out (which writes them) and ``heliowatch forecast --out`` can write them itself.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from heliowatch.models.core import jsonio
from heliowatch.models.flares.forecaster import FullDiskForecast

__all__ = ["export_files", "write_exports"]


def _ccmc_probs(p_c: float, p_m: float, p_x: float) -> dict[str, float]:
    return {
        "C": round(max(p_c - p_m, 0.0), 4),
        "M": round(max(p_m - p_x, 0.0), 4),
        "X": round(p_x, 4),
        "CPlus": round(p_c, 4),
        "MPlus": round(p_m, 4),
    }


def export_files(fd: FullDiskForecast) -> list[tuple[str, bytes]]:
    """``[(flare-forecast-<issue>.json, ...), (flare-forecast-<issue>.ccmc.json, ...)]``."""
    stem = fd.issue_time.replace(":", "").replace("-", "")
    window = {"issue_time": fd.issue_time, "start_window": fd.start_window, "end_window": fd.end_window}
    ccmc = {
        "forecast_system": "heliowatch",
        "full_disk": {**window, **_ccmc_probs(fd.p_c, fd.p_m, fd.p_x)},
        "regions": [
            {
                **window,
                "noaa_ar": r.noaa_ar,
                "harpnum": r.harpnum,
                "hgs_lat": r.hgs_lat,
                "hgs_lon": r.hgs_lon,
                **_ccmc_probs(r.p_c, r.p_m, r.p_x),
            }
            for r in fd.regions
        ],
    }
    return [
        (f"flare-forecast-{stem}.json", jsonio.dumps(asdict(fd), indent=2).encode()),
        (f"flare-forecast-{stem}.ccmc.json", jsonio.dumps(ccmc, indent=2).encode()),
    ]


def write_exports(fd: FullDiskForecast, out_dir: Path) -> list[Path]:
    """Write the export files of an issue into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in export_files(fd):
        p = out_dir / name
        tmp = p.with_name(p.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(p)
        paths.append(p)
    return paths
