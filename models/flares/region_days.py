"""Region-days from the SHARP keyword time series: one row per HARP and forecast day, every region every day.

A forecast for UTC day D is issued at D 00:00 UTC. It knows:

- the HARP's **last SHARP keyword record before D 00:00 UTC**, if one exists in the 24 h before
  (records are ``hmi.sharp_cea_720s`` keywords at 12-min cadence, patch centre within 70 deg of
  central meridian; their ``T_REC`` is TAI and is converted to UTC);
- the **flare history** of the HARP's NOAA regions from the GOES event lists (flares starting
  before D 00:00);
- the **SRS of D-1** (issued D-1 00:30 UTC; the SRS of D is issued half an hour after the issue):
  McIntosh class, Mt. Wilson class, area and longitude of the HARP's largest NOAA region listed
  in Section I of that SRS (``srs-catalog-1996-2022``), NaN when none is listed.

Labels ``y_c``/``y_m``: a flare of at least C1.0 / M1.0 attributed to any of the HARP's NOAA
regions *starting* in ``[D, D+1)``. A flare starting at D 00:05 is therefore a label of D and
history only from D+1 on.

Sample: a row exists only for days with a keyword record in the preceding 24 h, so every
numbered region on the visible disk (within 70 deg) is sampled every day, flaring or not:
operational base rates. HARPs that never received a NOAA number are not in the tarball.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from heliowatch.models.core.errors import UsageError
from heliowatch.models.emergence.backtest import HARP_NOAA, SRS_CATALOGUE, TARBALL, iter_keyword_csvs, tai_to_unix
from heliowatch.models.flares.climatology import load_region_days
from heliowatch.models.flares.events import load_events

__all__ = [
    "HISTORY",
    "HISTORY_AGG",
    "HOURS_SINCE_CAP",
    "KEYWORDS",
    "SRS_COLUMNS",
    "build_region_days",
    "default_event_files",
    "history_features",
    "region_labels",
]

#: The 17 keyword columns of the tarball (``TRUE_TIME`` and ``TIME`` aside), as the JSOC names them.
KEYWORDS = [
    "USFLUX", "MEANGAM", "MEANGBT", "MEANGBZ", "MEANGBH", "MEANJZD", "TOTUSJZ", "MEANJZH", "TOTUSJH",
    "ABSNJZH", "SAVNCPP", "MEANPOT", "TOTPOT", "MEANSHR", "SHRGT45", "R_VALUE", "AREA_ACR",
]  # fmt: skip
#: Flare-history columns (:func:`history_features`).
HISTORY = ["n_c_24h", "n_m_24h", "n_c_72h", "n_m_72h", "logmax_72h", "c_yesterday", "hours_since_m"]
#: How a HARP with several NOAA regions combines their history (counts add, the rest is the most active).
HISTORY_AGG = {
    "n_c_24h": "sum", "n_m_24h": "sum", "n_c_72h": "sum", "n_m_72h": "sum",
    "logmax_72h": "max", "c_yesterday": "max", "hours_since_m": "min",
}  # fmt: skip
#: Previous-day SRS columns (NaN / "" where the region is not in Section I of that SRS).
SRS_COLUMNS = ["srs_mcintosh", "srs_magtype", "srs_area", "srs_lon"]
#: "Hours since the region's last M+ flare" saturates here (no M flare in 10 days, or never).
HOURS_SINCE_CAP = 240.0
#: Peak flux floor of ``logmax_72h`` (B1.0: no C-or-larger flare in 72 h).
FLUX_FLOOR = 1e-7
#: Bumped whenever the table's definition changes (part of the cache key).
_VERSION = "2"

HAYES = "hayes-flare-ar/AR_flare_ml_23_24.csv"
_EVENT_FILES = ("hayes-flare-ar/swpc_flarelist_20100101-20210810.csv", "noaa-srs/00_All_GOES_SUNPY.csv")


def default_event_files(data_dir: Path) -> list[Path]:
    """The GOES event lists the table is built from, under a shared-data root.

    The SWPC list (as compiled by Hayes) and the HEK GOES list; of an event in both (same class
    within 10 minutes) the copy that names a NOAA region is kept. Over the tarball's span
    (2010-05 .. 2019-05) they agree: NOAA region-days with an M1+ flare 467 (SWPC), 468 (HEK),
    464 in both; the tarball's own ``noaa_data.csv`` has 470 (it lists no flare below C1.1,
    so 2,898 C1+ region-days against 3,030 / 3,029) and is not used.
    """
    found = [Path(data_dir) / f for f in _EVENT_FILES if (Path(data_dir) / f).exists()]
    if not found:
        msg = f"{data_dir}: no GOES event list ({', '.join(_EVENT_FILES)})"
        raise UsageError(msg)
    return found


def _read_harp_noaa(path: Path) -> pd.DataFrame:
    d = pd.read_csv(path, sep=r"\s+", dtype={"NOAA_ARS": str})
    d = d.rename(columns={"HARPNUM": "harpnum", "NOAA_ARS": "noaa_ars"})
    d["noaa_ar"] = d["noaa_ars"].str.split(",").str[0].astype(int)
    return d[["harpnum", "noaa_ar", "noaa_ars"]]


def _last_before_days(harp: int, raw: bytes) -> pd.DataFrame:
    """The HARP's last record in ``[D - 24 h, D)`` for every day D that has one."""
    df = pd.read_csv(io.BytesIO(raw), na_values=["MISSING", "nan", "NaN"])
    df = df[df["TRUE_TIME"].notna()]
    if df.empty:
        return pd.DataFrame(columns=["harpnum", "day", "t_rec", *KEYWORDS])
    t = pd.to_datetime(tai_to_unix(df["TRUE_TIME"]), unit="s")
    df = df.assign(t_rec=t.to_numpy()).sort_values("t_rec", kind="stable")
    # A record at t informs the issue at the next 00:00 UTC strictly after it.
    df["day"] = df["t_rec"].dt.floor("D") + pd.Timedelta(days=1)
    last = df.groupby("day", sort=True).tail(1)
    out = last[["day", "t_rec", *[k for k in KEYWORDS if k in last.columns]]].copy()
    out.insert(0, "harpnum", harp)
    return out


def _flux_floor(x: pd.Series) -> pd.Series:
    return x.where(x >= FLUX_FLOOR * (1 - 1e-9), FLUX_FLOOR)


def history_features(events: pd.DataFrame, noaa: pd.Series, day: pd.Series) -> pd.DataFrame:
    """Flare-history columns (:data:`HISTORY`) of NOAA regions at issue times ``day`` (00:00 UTC).

    Parameters
    ----------
    events : DataFrame
        Normalised GOES events (:func:`~heliowatch.models.flares.events.load_events`).
    noaa : Series of int
        One NOAA number per row.
    day : Series of Timestamp
        The issue time of each row; only flares starting strictly before it count.

    Returns
    -------
    DataFrame
        ``n_c_24h``, ``n_c_72h``: C-class flares (C1.0 .. C9.9) starting in the last 24 / 72 h;
        ``n_m_24h``, ``n_m_72h``: flares of at least M1.0; ``logmax_72h``: log10 of the largest
        peak flux in the last 72 h (floor 1e-7 W/m^2); ``c_yesterday``: 1 if a flare of at least
        C1.0 started in the last 24 h; ``hours_since_m``: hours since the last M1.0+ flare started,
        capped at :data:`HOURS_SINCE_CAP`. Index follows ``noaa``.
    """
    n = np.asarray(noaa, dtype=np.int64)
    ev = events.dropna(subset=["noaa_ar", "flux"])
    ev = ev[(ev["flux"] >= 1e-6 * (1 - 1e-9)) & ev["noaa_ar"].isin(np.unique(n))]
    t = pd.to_datetime(day).to_numpy()
    cols = {c: np.zeros(len(n)) for c in HISTORY}
    cols["logmax_72h"][:] = np.log10(FLUX_FLOOR)
    cols["hours_since_m"][:] = HOURS_SINCE_CAP
    by_region = {int(k): g.sort_values("start") for k, g in ev.groupby(ev["noaa_ar"].astype(np.int64))}
    for region in np.unique(n):
        g = by_region.get(int(region))
        if g is None:
            continue
        rows = np.flatnonzero(n == region)
        starts = g["start"].to_numpy()
        flux = g["flux"].to_numpy(np.float64)
        for i in rows:
            before = starts < t[i]
            age_h = (t[i] - starts) / np.timedelta64(1, "h")
            w24, w72 = before & (age_h <= 24), before & (age_h <= 72)
            m = flux >= 1e-5 * (1 - 1e-9)
            cols["n_c_24h"][i] = np.sum(w24 & ~m)
            cols["n_m_24h"][i] = np.sum(w24 & m)
            cols["n_c_72h"][i] = np.sum(w72 & ~m)
            cols["n_m_72h"][i] = np.sum(w72 & m)
            cols["c_yesterday"][i] = float(w24.any())
            if w72.any():
                cols["logmax_72h"][i] = np.log10(max(flux[w72].max(), FLUX_FLOOR))
            if (before & m).any():
                cols["hours_since_m"][i] = min(float(age_h[before & m].min()), HOURS_SINCE_CAP)
    return pd.DataFrame(cols, index=noaa.index)


def region_labels(events: pd.DataFrame, noaa: pd.Series, day: pd.Series) -> pd.DataFrame:
    """``y_c``, ``y_m``: a flare of at least C1.0 / M1.0 of region ``noaa`` starting in ``[day, day + 1 d)``."""
    ev = events.dropna(subset=["noaa_ar", "flux"])
    key = pd.DataFrame({"noaa_ar": ev["noaa_ar"].astype(np.int64), "day": ev["start"].dt.floor("D"), "flux": ev["flux"]})
    peak = key.groupby(["noaa_ar", "day"])["flux"].max()
    idx = pd.MultiIndex.from_arrays([np.asarray(noaa, np.int64), pd.to_datetime(day).dt.floor("D")])
    f = peak.reindex(idx).to_numpy()
    f = np.where(np.isnan(f), 0.0, f)
    return pd.DataFrame(
        {"y_c": (f >= 1e-6 * (1 - 1e-9)).astype(int), "y_m": (f >= 1e-5 * (1 - 1e-9)).astype(int)}, index=noaa.index
    )


def _srs_table(root: Path) -> pd.DataFrame:
    """Section I SRS rows (``noaa_ar``, ``day`` = SRS date + 1, the :data:`SRS_COLUMNS`).

    The Hayes region-days (1996-08 .. 2018-12) come first; the SRS catalogue fills the days it
    lacks (after 2018, and the SRS the Hayes table has but the catalogue failed to parse, or
    vice versa). Longitudes are degrees west-positive in both.
    """
    frames = []
    hayes = root / HAYES
    if hayes.exists():
        h = load_region_days(hayes)
        frames.append(
            pd.DataFrame(
                {
                    "noaa_ar": h["noaa_ar"].astype(np.int64),
                    "day": h["day"],
                    "srs_mcintosh": h["McIntosh"],
                    "srs_magtype": h["MAGTYPE"],
                    "srs_area": pd.to_numeric(h["AREA"], errors="coerce"),
                    "srs_lon": pd.to_numeric(h["Longitude"], errors="coerce"),
                }
            )
        )
    cat = root / SRS_CATALOGUE
    if cat.exists():
        c = pd.read_csv(
            cat, usecols=["date", "id", "number", "area", "mcintosh_class", "magnetic_class", "longitude", "filtered"]
        )
        c = c[(c["id"] == "I") & ~c["filtered"].astype(bool)].dropna(subset=["number"])
        frames.append(
            pd.DataFrame(
                {
                    "noaa_ar": c["number"].astype(np.int64),
                    "day": pd.to_datetime(c["date"]),
                    "srs_mcintosh": c["mcintosh_class"].fillna("").astype(str).str.upper(),
                    "srs_magtype": c["magnetic_class"].fillna("").astype(str).str.upper(),
                    "srs_area": pd.to_numeric(c["area"], errors="coerce"),
                    "srs_lon": pd.to_numeric(c["longitude"], errors="coerce"),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["noaa_ar", "day", *SRS_COLUMNS])
    s = pd.concat(frames, ignore_index=True).drop_duplicates(["noaa_ar", "day"])
    s["day"] = s["day"] + pd.Timedelta(days=1)  # the SRS of D-1 informs day D
    return s


def _srs_previous_day(data_dir: Path, noaa: pd.Series, day: pd.Series) -> pd.DataFrame:
    """Section I properties of each region in the SRS issued on the day before ``day``."""
    s = _srs_table(Path(data_dir))
    out = pd.DataFrame({c: np.nan for c in SRS_COLUMNS}, index=noaa.index)
    out[["srs_mcintosh", "srs_magtype"]] = ""
    if s.empty:
        return out
    key = pd.DataFrame({"noaa_ar": np.asarray(noaa, np.int64), "day": pd.to_datetime(day).to_numpy()}, index=noaa.index)
    m = key.reset_index().merge(s, on=["noaa_ar", "day"], how="left").set_index("index")
    out.loc[m.index, SRS_COLUMNS] = m[SRS_COLUMNS]
    out[["srs_mcintosh", "srs_magtype"]] = out[["srs_mcintosh", "srs_magtype"]].fillna("")
    out[["srs_area", "srs_lon"]] = out[["srs_area", "srs_lon"]].astype(float)
    return out


def _combine_regions(rows: pd.DataFrame, events: pd.DataFrame, data_dir: Path) -> pd.DataFrame:
    """History, SRS and labels over all of each HARP's NOAA regions."""
    ex = rows[["harpnum", "day", "noaa_ars"]].copy()
    ex["noaa"] = ex["noaa_ars"].str.split(",")
    ex = ex.explode("noaa")
    ex["noaa"] = ex["noaa"].astype(np.int64)
    ex = ex.reset_index(names="row")
    h = history_features(events, ex["noaa"], ex["day"])
    y = region_labels(events, ex["noaa"], ex["day"])
    srs = _srs_previous_day(data_dir, ex["noaa"], ex["day"])
    part = pd.concat([ex[["row"]], h, y, srs], axis=1)
    out = part.groupby("row").agg({**HISTORY_AGG, "y_c": "max", "y_m": "max"})
    # SRS: the HARP's largest listed region of the previous day.
    best = part.assign(_a=part["srs_area"].fillna(-1)).sort_values("_a", kind="stable").groupby("row").tail(1)
    out[SRS_COLUMNS] = best.set_index("row")[SRS_COLUMNS]
    return out


def _cache_key(tar: Path, events: list[Path], harps: list[int] | None) -> str:
    h = hashlib.sha256()
    with tar.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    for e in events:
        h.update(f"{e.name}:{e.stat().st_size}".encode())
    h.update(f"v{_VERSION}:{sorted(harps) if harps is not None else 'all'}".encode())
    return h.hexdigest()[:16]


def _read_cache(path: Path) -> pd.DataFrame:
    d = pd.read_csv(path, dtype={"noaa_ars": str, "srs_mcintosh": str, "srs_magtype": str})
    d["day"] = pd.to_datetime(d["day"])
    d["t_rec"] = pd.to_datetime(d["t_rec"])
    d[["srs_mcintosh", "srs_magtype"]] = d[["srs_mcintosh", "srs_magtype"]].fillna("")
    return d


def build_region_days(
    data_dir: Path,
    *,
    harps: Iterable[int] | None = None,
    cache_dir: Path | None = None,
    event_files: list[Path] | None = None,
) -> pd.DataFrame:
    """The region-day table of the SHARP keyword tarball (one row per HARP and forecast day).

    Parameters
    ----------
    data_dir : Path
        Shared-data root holding ``sharp-keyword-timeseries/`` (and the event lists and the SRS
        catalogue).
    harps : iterable of int, optional
        Only these HARPs (default: all 1,335).
    cache_dir : Path, optional
        Where the built table is kept as CSV, keyed by the tarball's SHA-256 (and the event
        lists' sizes, the HARP subset and the table version); reused when present.
    event_files : list of Path, optional
        GOES event lists (default: :func:`default_event_files`).

    Returns
    -------
    DataFrame
        ``harpnum``, ``noaa_ar`` (first NOAA number), ``noaa_ars`` (comma-separated), ``day``
        (D 00:00 UTC, naive), ``t_rec`` (UTC of the record used), the :data:`KEYWORDS`,
        :data:`HISTORY`, :data:`SRS_COLUMNS`, ``y_c`` and ``y_m``; sorted by HARP and day.

    Raises
    ------
    UsageError
        If the tarball or the HARP -> NOAA map is missing.
    """
    root = Path(data_dir)
    tar = root / TARBALL
    if not tar.is_file() or not (root / HARP_NOAA).is_file():
        msg = f"{root}: needs {TARBALL} and {HARP_NOAA} (../shared/data)"
        raise UsageError(msg)
    want = None if harps is None else sorted({int(h) for h in harps})
    events_paths = event_files or default_event_files(root)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"region-days-{_cache_key(tar, events_paths, want)}.csv"
        if cache.exists():
            return _read_cache(cache)
    parts = [_last_before_days(h, raw) for h, raw in iter_keyword_csvs(tar, want)]
    parts = [p for p in parts if len(p)]
    cols = ["harpnum", "noaa_ar", "noaa_ars", "day", "t_rec", *KEYWORDS, *HISTORY, *SRS_COLUMNS, "y_c", "y_m"]
    if not parts:
        return pd.DataFrame(columns=cols)
    rows = pd.concat(parts, ignore_index=True)
    for k in KEYWORDS:
        if k not in rows.columns:
            rows[k] = np.nan
    rows = rows.merge(_read_harp_noaa(root / HARP_NOAA), on="harpnum", how="inner")
    rows = rows.sort_values(["harpnum", "day"], kind="stable").reset_index(drop=True)
    extra = _combine_regions(rows, load_events(events_paths, prefer_attributed=True), root)
    rows = pd.concat([rows, extra], axis=1)[cols]
    rows[["y_c", "y_m"]] = rows[["y_c", "y_m"]].astype(int)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        rows.to_csv(tmp, index=False)
        tmp.replace(cache)
    return rows
