"""GOES flare event lists: SWPC CSV, HEK CSV and SWPC JSON files, normalised to one table.

Sources, all normalised to one table (``start``, ``peak``, ``end`` as UTC timestamps,
``goes_class`` like ``M1.3``, ``letter``, ``flux`` in W/m^2, ``noaa_ar`` or NA):

- ``swpc-csv``: the SWPC event list as compiled by Hayes (``swpc_flarelist_*.csv``: date,
  HHMM start/max/end, goes_class, noaa_ar);
- ``hek-csv``: the HEK GOES list (``00_All_GOES_SUNPY.csv``: ``;``-separated, no header);
- ``swpc-json``: SWPC's ``xray-flares-*.json`` feed (``begin_time``, ``max_time``,
  ``end_time``, ``max_class``), as a file the daemon's fetcher (or the replay) writes.

Several lists can be merged; duplicates (same class within 10 minutes) are dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from heliowatch.models.core.errors import UsageError

__all__ = ["class_flux", "empty_events", "event_days", "flares_between", "load_events", "read_event_file"]

_LETTER_FLUX = {"A": 1e-8, "B": 1e-7, "C": 1e-6, "M": 1e-5, "X": 1e-4}


def class_flux(goes_class: str) -> float:
    """Peak 1-8 A flux (W/m^2) of a GOES class string like ``M1.3`` (NaN if unparsable)."""
    s = str(goes_class).strip().upper()
    if not s or s[0] not in _LETTER_FLUX:
        return float("nan")
    try:
        return _LETTER_FLUX[s[0]] * float(s[1:] or 1.0)
    except ValueError:
        return float("nan")


def _hhmm(day: pd.Series, hhmm: pd.Series) -> pd.Series:
    # Missing times are written '////' in SWPC lists.
    t = pd.to_numeric(hhmm, errors="coerce").astype("Int64").astype(str).str.zfill(4)
    return pd.to_datetime(day.astype(str) + t, format="%Y%m%d%H%M", errors="coerce")


def _noaa(s: pd.Series) -> pd.Series:
    v = pd.to_numeric(s.astype(str).str.strip(), errors="coerce")
    # SWPC lists give 4-digit region numbers after 2002 (10000 subtracted); restore them.
    return v.where(~((v > 0) & (v < 5000)), v + 10000).astype("Int64")


def read_event_file(path: Path, kind: str | None = None) -> pd.DataFrame:
    """Read one event list; ``kind`` is guessed from the file when not given."""
    p = Path(path)
    if not p.exists():
        msg = f"event list {p} does not exist"
        raise UsageError(msg)
    if kind is None:
        if p.suffix == ".json":
            kind = "swpc-json"
        else:
            head = p.read_text(errors="replace")[:300]
            kind = "hek-csv" if ";" in head.splitlines()[0] else "swpc-csv"
    if kind == "swpc-csv":
        d = pd.read_csv(p)
        out = pd.DataFrame(
            {
                "start": _hhmm(d["date"], d["start_time"]),
                "peak": _hhmm(d["date"], d["max_time"]),
                "end": _hhmm(d["date"], d["end_time"]),
                "goes_class": d["goes_class"].astype(str).str.strip(),
                "noaa_ar": _noaa(d["noaa_ar"]),
            }
        )
    elif kind == "hek-csv":
        d = pd.read_csv(p, sep=";", header=None, index_col=False, usecols=range(7))
        d.columns = ["date", "start", "peak", "end", "goes_class", "xy", "noaa_ar"]
        out = pd.DataFrame(
            {
                "start": pd.to_datetime(d["start"], errors="coerce"),
                "peak": pd.to_datetime(d["peak"], errors="coerce"),
                "end": pd.to_datetime(d["end"], errors="coerce"),
                "goes_class": d["goes_class"].astype(str).str.strip(),
                "noaa_ar": _noaa(d["noaa_ar"]),
            }
        )
    elif kind == "swpc-json":
        rows = json.loads(p.read_text())
        d = pd.DataFrame(rows)
        out = pd.DataFrame(
            {
                "start": pd.to_datetime(d["begin_time"], utc=True).dt.tz_localize(None),
                "peak": pd.to_datetime(d["max_time"], utc=True).dt.tz_localize(None),
                "end": pd.to_datetime(d.get("end_time"), utc=True, errors="coerce").dt.tz_localize(None),
                "goes_class": d["max_class"].astype(str),
                "noaa_ar": _noaa(d["active_region"]) if "active_region" in d else pd.Series(pd.NA, index=d.index, dtype="Int64"),
            }
        )
    else:
        msg = f"unknown event list kind {kind!r}; use swpc-csv, hek-csv or swpc-json"
        raise UsageError(msg)
    out["letter"] = out["goes_class"].str[0].str.upper()
    out["flux"] = out["goes_class"].map(class_flux)
    return out.dropna(subset=["start"]).reset_index(drop=True)


def load_events(paths: list[Path], *, prefer_attributed: bool = False) -> pd.DataFrame:
    """Merge event lists; the same class starting within 10 minutes counts once.

    The copy kept of a duplicated event is the earliest-starting one; with
    ``prefer_attributed``, one that names a NOAA region if any does (lists differ in which
    flares they attribute).
    """
    if not paths:
        msg = "no event list given"
        raise UsageError(msg)
    ev = pd.concat([read_event_file(p) for p in paths], ignore_index=True).sort_values("start")
    key = ev["start"].dt.round("10min").astype(str) + ev["goes_class"]
    if prefer_attributed:
        unattributed = ~(ev["noaa_ar"].fillna(0) > 0)
        order = pd.DataFrame({"key": key, "u": unattributed}).sort_values(["key", "u"], kind="stable").index
        keep = ev.loc[order].loc[~key.loc[order].duplicated()]
        return keep.sort_values("start", kind="stable").reset_index(drop=True)
    return ev.loc[~key.duplicated()].reset_index(drop=True)


def event_days(events: pd.DataFrame, *, min_flux: float) -> set[pd.Timestamp]:
    """UTC days with at least one flare of peak flux >= ``min_flux`` starting in them."""
    sel = events["flux"] >= min_flux * (1 - 1e-9)
    return set(events.loc[sel, "start"].dt.normalize())


def flares_between(events: pd.DataFrame, t0: pd.Timestamp, t1: pd.Timestamp, *, min_flux: float) -> pd.DataFrame:
    """Flares of at least ``min_flux`` starting in ``[t0, t1)``."""
    s = events["start"]
    return events[(s >= t0) & (s < t1) & (events["flux"] >= min_flux * (1 - 1e-9))]


def empty_events() -> pd.DataFrame:
    """An event table with no rows (the columns of :func:`read_event_file`)."""
    return pd.DataFrame(
        {
            "start": pd.Series(dtype="datetime64[ns]"),
            "peak": pd.Series(dtype="datetime64[ns]"),
            "end": pd.Series(dtype="datetime64[ns]"),
            "goes_class": pd.Series(dtype=str),
            "noaa_ar": pd.Series(dtype="Int64"),
            "letter": pd.Series(dtype=str),
            "flux": pd.Series(dtype=float),
        }
    )
