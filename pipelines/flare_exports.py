"""Exports of a flare issue: the whole issue as JSON, and the CCMC Flare Scoreboard submission.

Three files per issue, returned as bytes with their names so the flare product can hand them
to the fan-out (which writes them) and ``heliowatch forecast --out`` can write them itself:

- ``flare-forecast-<issue>.json``: the issue as heliowatch holds it (every region, the models,
  what was missing);
- ``Flare_Forecast_<model>_<yyyymmdd>_<hhmm>.txt``: the scoreboard's text submission. Header
  lines (``Forecasting method:``, ``Issue Time:``, ``Prediction Window Start Time:``,
  ``Prediction Window End Time:``, ``Probability Bins:``, ``Input data:``,
  ``Prediction window (hours):``), then the full-disk row and one row per NOAA region, each
  ``X_prob X_uncert X_level M_prob M_uncert M_level C_prob C_uncert C_level`` (region rows start
  with the NOAA number). Probabilities have 4 decimals and are cumulative (``M+``: M1.0 and
  above); heliowatch gives no uncertainty and no calibration level, written ``-1`` (the
  scoreboard's "missing"). A region without a NOAA number has no text row (the scoreboard
  names regions by NOAA number); two HARPs of one NOAA region give the row of the likelier one;
- ``Flare_Forecast_<model>_<yyyymmdd>_<hhmm>.json``: the JSON submission,
  ``forecast_submission`` -> ``full_disk_forecasts`` / ``region_forecasts``, each with
  ``prediction_window {start_time, end_time}`` and ``flare_probabilities [{class, probability}]``,
  regions with ``region_ids [{type: NOAA|HARP, number}]``, plus the model's short name and the
  issue time. No machine-readable schema of it was available; this is the shape a public
  scoreboard client reads.

Times are UTC to the minute with a ``Z`` (``2011-02-15T01:59Z``), as the scoreboard's examples.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

from heliowatch.models.core import jsonio
from heliowatch.models.core.times import parse_iso
from heliowatch.models.flares.forecaster import FullDiskForecast, RegionForecast
from heliowatch.pipelines.exports import ExportSettings

__all__ = ["CCMC_COLUMNS", "ccmc_json", "ccmc_name", "ccmc_text", "export_files", "write_exports"]

#: The columns of a full-disk row (a region row has ``NOAA`` first).
CCMC_COLUMNS = ("X_prob", "X_uncert", "X_level", "M_prob", "M_uncert", "M_level", "C_prob", "C_uncert", "C_level")
_MISSING = -1
_INPUT_DATA = "SDO/HMI SHARP CEA line-of-sight magnetogram keywords; GOES X-ray flare history"


def _t(text: str) -> dt.datetime:
    return parse_iso(text).astimezone(dt.UTC)


def _minute(text: str) -> str:
    return _t(text).strftime("%Y-%m-%dT%H:%MZ")


def ccmc_name(fd: FullDiskForecast, settings: ExportSettings | None = None, *, suffix: str = "txt") -> str:
    """``Flare_Forecast_<model>_<yyyymmdd>_<hhmm>.<suffix>`` of an issue."""
    s = settings or ExportSettings()
    return f"Flare_Forecast_{s.model_id}_{_t(fd.issue_time).strftime('%Y%m%d_%H%M')}.{suffix}"


def _row(p_x: float, p_m: float, p_c: float) -> str:
    return " ".join(f"{p:.4f} {_MISSING} {_MISSING}" for p in (p_x, p_m, p_c))


def _noaa_regions(fd: FullDiskForecast) -> list[RegionForecast]:
    """One forecast per NOAA region (the likelier of two HARPs of one region), by NOAA number."""
    best: dict[int, RegionForecast] = {}
    for r in fd.regions:
        if r.noaa_ar and (r.noaa_ar not in best or r.p_m > best[r.noaa_ar].p_m):
            best[r.noaa_ar] = r
    return [best[n] for n in sorted(best)]


def ccmc_text(fd: FullDiskForecast, settings: ExportSettings | None = None) -> str:
    """The scoreboard's text submission of an issue."""
    s = settings or ExportSettings()
    hours = (_t(fd.end_window) - _t(fd.start_window)).total_seconds() / 3600
    lines = [
        f"Forecasting method: {s.model_id}",
        f"Issue Time: {_minute(fd.issue_time)}",
        f"Prediction Window Start Time: {_minute(fd.start_window)}",
        f"Prediction Window End Time: {_minute(fd.end_window)}",
        "Probability Bins: M+",
        f"Input data: {_INPUT_DATA}",
        f"Prediction window (hours): {hours:g}",
        "#Full Disk Forecast",
        "#" + " ".join(CCMC_COLUMNS),
        _row(fd.p_x, fd.p_m, fd.p_c),
        "#Region Forecasts",
        "#NOAA " + " ".join(CCMC_COLUMNS),
    ]
    lines += [f"{r.noaa_ar} {_row(r.p_x, r.p_m, r.p_c)}" for r in _noaa_regions(fd)]
    return "\n".join(lines) + "\n"


def _probabilities(p_c: float, p_m: float, p_x: float) -> list[dict[str, Any]]:
    return [{"class": c, "probability": round(p, 4)} for c, p in (("C+", p_c), ("M+", p_m), ("X+", p_x))]


def ccmc_json(fd: FullDiskForecast, settings: ExportSettings | None = None) -> dict[str, Any]:
    """The scoreboard's JSON submission of an issue."""
    s = settings or ExportSettings()
    window = {"start_time": _minute(fd.start_window), "end_time": _minute(fd.end_window)}
    regions = []
    for r in fd.regions:
        ids = [{"type": "NOAA", "number": r.noaa_ar}] if r.noaa_ar else []
        ids += [{"type": "HARP", "number": r.harpnum}] if r.harpnum else []
        if ids:  # a region the scoreboard cannot name is only in the full-disk forecast
            regions.append(
                {"region_ids": ids, "prediction_window": window, "flare_probabilities": _probabilities(r.p_c, r.p_m, r.p_x)}
            )
    return {
        "forecast_submission": {
            "model": {"short_name": s.model_id},
            "issue_time": _minute(fd.issue_time),
            "input_data": _INPUT_DATA,
            "full_disk_forecasts": [{"prediction_window": window, "flare_probabilities": _probabilities(fd.p_c, fd.p_m, fd.p_x)}],
            "region_forecasts": regions,
        }
    }


def export_files(fd: FullDiskForecast, settings: ExportSettings | None = None) -> list[tuple[str, bytes]]:
    """``[(flare-forecast-<issue>.json, ...), (Flare_Forecast_....txt, ...), (Flare_Forecast_....json, ...)]``."""
    stem = fd.issue_time.replace(":", "").replace("-", "")
    return [
        (f"flare-forecast-{stem}.json", jsonio.dumps(asdict(fd), indent=2).encode()),
        (ccmc_name(fd, settings), ccmc_text(fd, settings).encode()),
        (ccmc_name(fd, settings, suffix="json"), jsonio.dumps(ccmc_json(fd, settings), indent=2).encode()),
    ]


def write_exports(fd: FullDiskForecast, out_dir: Path, settings: ExportSettings | None = None) -> list[Path]:
    """Write the export files of an issue into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in export_files(fd, settings):
        p = out_dir / name
        tmp = p.with_name(p.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(p)
        paths.append(p)
    return paths
