"""Real-history backtest of the flux-growth emergence warning (:mod:`~heliowatch.models.emergence.growth`).

For each of the 1,335 NOAA-numbered HARPs of 2010-05..2019-05 whose SHARP keywords are in
``sharp-keyword-timeseries/`` (12-min cadence, patch centre within 70 deg of central meridian),
the warning rule is run causally over the HARP's ``USFLUX`` series, one sample at a time, and
its first firing time is compared with the time NOAA first listed the HARP's region.

Times
-----
- Keyword times are ``T_REC`` in TAI, converted to UTC (TAI-UTC = 34..37 s in 2010-2019).
- **"NOAA first lists"** is the issue time of the first SRS whose Section I (spotted regions) or
  IA (plages) carries one of the HARP's NOAA numbers: SRS of date D are issued at **D 00:30 UTC**
  with positions valid at D 00:00 UTC from the data of day D-1. The issue time is what a
  forecaster (and the daemon, which reads the SRS) has; SWPC may announce a number earlier in
  the day in other products, which these data do not hold.
- A HARP with several NOAA numbers is first listed when the earliest of them is.
- Lead time = first listing - warning time, hours (positive: the warning came first). A
  nominal data latency (NRT SHARPs are not instantaneous) can be added to the warning time.

Sets and scores
---------------
Each HARP falls in one category ("seen first": its first record comes before D 00:00 of the
first SRS listing's date D, the end of the observing day NOAA reported):

- ``new`` (the events): born on the disk (the index's ``born_on_disk``: its first JSOC record is
  already within 70 deg; HARPs whose first record is the SHARP series' start, 2010-05-01, are
  not births) and seen first;
- ``prenumbered``: born on the disk but NOAA had listed the region before (re-detected or merged);
- ``entered_numbered``: came within 70 deg from the east limb (or existed at the series' start)
  with its region already listed;
- ``entered_unnumbered``: came within 70 deg and NOAA listed it afterwards (emerging at or behind
  the limb, or growing there): scored apart;
- ``unlisted`` (no SRS listing of its numbers) and ``empty`` (no rows).

**Old regions** are ``prenumbered`` + ``entered_numbered``: NOAA knew them before the backtest saw
the HARP, so any warning on them is false as a new-region warning.

- POD(lead > x): fraction of new regions warned more than (at least, for x > 0) x hours before the
  first listing; POD within N h after: warned no later than N h after it; lead quartiles over the
  warned new regions.
- A warning (the rule's first firing on a HARP, any category) is a **hit** when the HARP's region
  is first listed after it, within ``horizon_h``; otherwise a false alarm: ``late`` (already
  listed), ``early`` (listed more than ``horizon_h`` later) or ``unlisted``. FAR = false alarms /
  warnings, over every HARP. ``FAR_gated`` counts only the warnings a daemon that suppresses
  warnings on regions already numbered (it reads the SRS causally) would issue: early / (hits + early).
- What cannot be measured here: every HARP in these files has a NOAA number, while HARPNUM runs
  to ~7,400 over the same years: the ~6,000 HARPs that **never** became numbered regions are not
  in the sample, so the FARs here are lower bounds for the operational FAR, and the old-region
  firing rate is the nearest measurable stand-in for the rule's rate on unnumbered HARPs.
"""

from __future__ import annotations

import io
import itertools
import math
import re
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heliowatch.models.core.errors import ModelError
from heliowatch.models.emergence.growth import GrowthRule, first_firing

__all__ = [
    "Catalogue",
    "KeywordSeries",
    "evaluate",
    "format_report",
    "iter_keyword_csvs",
    "iter_keyword_series",
    "load_catalogue",
    "run_backtest",
    "tai_to_unix",
]

TARBALL = "sharp-keyword-timeseries/sharp_cea_720s_keyword_timeseries_1335harps.tar.xz"
INDEX = "sharp-keyword-timeseries/harp_summary_index.csv"
HARP_NOAA = "sharp-keyword-timeseries/all_harps_with_noaa_ars.txt"
HARP_NOAA_JSOC = "harp-noaa-map/HARP_TO_NOAA.txt"
SRS_CATALOGUE = "srs-catalog-1996-2022/srs_processed_catalog_1996-2022.csv"
SRS_HAND_FIXED = "noaa-srs/hand_fixed"
DEBRECEN = "debrecen-sunspot-births/sunspots_births_1872-2018.csv"
KASAPIS = "emerging-regions-kasapis/kasapis_emerging_ar_list_with_srs.csv"

#: SRS of date D are issued at D 00:30 UTC (":Issued: 2011 Feb 12 0030 UTC").
SRS_ISSUE_OFFSET_S = 1800.0

#: TAI-UTC from each UTC instant on (IERS Bulletin C), covering the SDO era.
_LEAP_SECONDS = tuple((float(pd.Timestamp(day).value // 10**9), dt) for day, dt in
                      (("2009-01-01", 34.0), ("2012-07-01", 35.0), ("2015-07-01", 36.0), ("2017-01-01", 37.0)))  # fmt: skip

#: First record of hmi.sharp_cea_720s (2010-05-01 00:00 TAI), Unix s UTC.
SHARP_SERIES_START = float(pd.Timestamp("2010-05-01").value // 10**9) - 34.0
#: HARP categories whose region NOAA had listed before the HARP entered the backtest (old regions).
OLD_CATEGORIES = ("prenumbered", "entered_numbered")

#: Lead-time thresholds (hours) of the POD columns.
POD_LEADS_H = (0.0, 12.0, 24.0)
#: Hours after the first listing within which a warning still counts for "POD within N h".
POD_WITHIN_H = 24.0
_HIST_EDGES_H = (-math.inf, -24.0, 0.0, 12.0, 24.0, 48.0, 72.0, math.inf)
# data/<HARPNUM>.csv only: the tarball also holds data/for_r/<n>.csv, small tables that are not HARPs.
_MEMBER = re.compile(r"^(?:\./)?(?:data/)?(\d+)\.csv$")


@dataclass(frozen=True)
class KeywordSeries:
    """One HARP's keyword samples, in time order.

    Attributes
    ----------
    harp : int
        HARPNUM (definitive series).
    t : ndarray
        Sample times, Unix seconds UTC.
    hours_since_first : ndarray
        The file's ``TIME``: hours since the HARP's first JSOC record (0 at the first row: born on the disk).
    usflux : ndarray
        ``USFLUX``, Mx.
    area : ndarray
        ``AREA_ACR``, micro-hemispheres.
    """

    harp: int
    t: np.ndarray
    hours_since_first: np.ndarray
    usflux: np.ndarray
    area: np.ndarray


@dataclass(frozen=True)
class Catalogue:
    """The truth tables the backtest joins to the series (see :func:`load_catalogue`).

    Attributes
    ----------
    harp_noaa : dict
        HARPNUM -> its NOAA numbers (full, e.g. 11158).
    born_on_disk, candidate : dict
        HARPNUM -> the index's ``born_on_disk`` and ``emergence_candidate`` flags.
    srs_first : dict
        NOAA number -> issue time (Unix s UTC) of the first SRS listing it in Section I or IA.
    dpd_birth : dict
        NOAA number -> Debrecen (DPD) first sighting of the sunspot group, Unix s UTC.
    kasapis : tuple
        NOAA numbers of the Kasapis et al. / SOLARED emerging-region list.
    checks : dict
        Cross-checks made while loading (counts), reported with the results.
    """

    harp_noaa: dict[int, tuple[int, ...]]
    born_on_disk: dict[int, bool]
    candidate: dict[int, bool]
    srs_first: dict[int, float]
    dpd_birth: dict[int, float] = field(default_factory=dict)
    kasapis: tuple[int, ...] = ()
    checks: dict[str, Any] = field(default_factory=dict)


def tai_to_unix(stamps: Iterable[str]) -> np.ndarray:
    """JSOC TAI strings (``2011.02.15_02:00:00_TAI``) to Unix seconds UTC, vectorised.

    Parameters
    ----------
    stamps : iterable of str
        ``T_REC``-style strings.

    Returns
    -------
    ndarray of float
        Unix seconds (UTC): the TAI reading less TAI-UTC at that time.

    Raises
    ------
    ModelError
        If a string is not of that form.
    """
    s = pd.Series(list(stamps), dtype=object)
    try:
        naive = pd.to_datetime(s.str.replace("_TAI", "", regex=False), format="%Y.%m.%d_%H:%M:%S")
    except (ValueError, TypeError) as exc:
        msg = f"tai_to_unix: not a JSOC TAI time string ({exc})"
        raise ModelError(msg) from exc
    tai = naive.to_numpy(dtype="datetime64[s]").astype(np.int64).astype(np.float64)
    offset = np.zeros_like(tai)
    for start_utc, dt in _LEAP_SECONDS:
        offset = np.where(tai >= start_utc + dt, dt, offset)
    if np.any(tai < _LEAP_SECONDS[0][0]):
        msg = "tai_to_unix: times before 2009 are outside the leap-second table"
        raise ModelError(msg)
    return tai - offset


def _day_to_unix(dates: pd.Series) -> np.ndarray:
    return pd.to_datetime(dates, format="%Y-%m-%d").to_numpy(dtype="datetime64[s]").astype(np.int64).astype(np.float64)


def _parse_series(harp: int, raw: bytes) -> KeywordSeries:
    # JSOC writes "MISSING" for a keyword it could not compute; the rule skips those samples (NaN).
    df = pd.read_csv(io.BytesIO(raw), usecols=["TRUE_TIME", "TIME", "USFLUX", "AREA_ACR"], na_values=["MISSING"])
    df = df[df["TRUE_TIME"].notna()]
    t = tai_to_unix(df["TRUE_TIME"]) if len(df) else np.zeros(0)
    order = np.argsort(t, kind="stable")
    return KeywordSeries(
        harp,
        t[order],
        df["TIME"].to_numpy(np.float64)[order],
        df["USFLUX"].to_numpy(np.float64)[order],
        df["AREA_ACR"].to_numpy(np.float64)[order],
    )


def iter_keyword_series(tar_path: Path, harps: Iterable[int] | None = None) -> Iterator[KeywordSeries]:
    """Stream the per-HARP CSVs out of the keyword tarball, without unpacking it to disk.

    Parameters
    ----------
    tar_path : Path
        ``sharp_cea_720s_keyword_timeseries_1335harps.tar.xz`` (or any tar of ``<HARPNUM>.csv``).
    harps : iterable of int, optional
        Only these HARPs (default: every ``<digits>.csv`` member).

    Yields
    ------
    KeywordSeries
        One per HARP member, in the tarball's order (a header-only file gives empty arrays).
    """
    for harp, raw in iter_keyword_csvs(tar_path, harps):
        yield _parse_series(harp, raw)


def iter_keyword_csvs(tar_path: Path, harps: Iterable[int] | None = None) -> Iterator[tuple[int, bytes]]:
    """Stream the raw per-HARP CSV members of the keyword tarball (all 19 keyword columns).

    ``tar_path`` and ``harps`` are those of :func:`iter_keyword_series`.

    Yields
    ------
    tuple of (int, bytes)
        HARPNUM and the member's CSV text, in the tarball's order.
    """
    wanted = None if harps is None else {int(h) for h in harps}
    # "r|*" reads the compressed stream once, front to back: 234 MB never land on disk.
    with tarfile.open(tar_path, mode="r|*") as tar:
        for member in tar:
            m = _MEMBER.match(member.name)
            if not member.isfile() or m is None:
                continue
            harp = int(m.group(1))
            if wanted is not None and harp not in wanted:
                continue
            fh = tar.extractfile(member)
            if fh is None:
                continue
            yield harp, fh.read()


def _read_harp_noaa(path: Path) -> dict[int, tuple[int, ...]]:
    out: dict[int, tuple[int, ...]] = {}
    for line in path.read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) == 2:
            out[int(parts[0])] = tuple(int(n) for n in parts[1].split(",") if n)
    return out


def _srs_numbers(text: str) -> set[int]:
    """NOAA numbers in Sections I and IA of one raw SRS text (4-digit, 2002-06 .. 2022: +10000)."""
    nums: set[int] = set()
    section = ""
    for line in text.splitlines():
        head = line.strip()
        if re.match(r"^(IA|I|II)\.", head):
            section = head.split(".")[0]
            continue
        m = re.match(r"^(\d{4})\s", head)
        if m and section in ("I", "IA"):
            nums.add(10000 + int(m.group(1)))
    return nums


def _srs_first(data_dir: Path, checks: dict[str, Any]) -> dict[int, float]:
    srs = pd.read_csv(data_dir / SRS_CATALOGUE, usecols=["date", "id", "number", "filter_reason"])
    listed = srs[srs["id"].isin(["I", "IA"]) & (srs["number"] > 0)]
    first_i = listed[listed["id"] == "I"].groupby("number")["date"].min()
    first = listed.groupby("number")["date"].min()
    checks["srs_numbers"] = int(first.size)
    checks["srs_first_in_IA_before_I"] = int((first.reindex(first_i.index) < first_i).sum())
    day = dict(zip(first.index.astype(int), first.to_numpy(), strict=True))
    # Reports the catalogue failed to load: read the hand-fixed raw copies where the archive has them.
    missing = sorted(set(srs.loc[srs["filter_reason"].fillna("").str.contains("load_unsuccessful"), "date"]))
    missing = [d for d in missing if d >= "2010-01-01"]
    filled, changed = [], 0
    for d in missing:
        p = data_dir / SRS_HAND_FIXED / f"{d.replace('-', '')}SRS.txt"
        if not p.is_file():
            continue
        filled.append(d)
        for n in _srs_numbers(p.read_text(errors="replace")):
            if n not in day or d < day[n]:
                changed += 1
                day[n] = d
    checks["srs_days_not_loaded_since_2010"] = missing
    checks["srs_days_filled_from_hand_fixed"] = filled
    checks["srs_first_listing_moved_by_fill"] = changed
    nums = np.array(sorted(day), dtype=np.int64)
    t = _day_to_unix(pd.Series([day[int(n)] for n in nums])) + SRS_ISSUE_OFFSET_S
    return {int(n): float(v) for n, v in zip(nums, t, strict=True)}


def load_catalogue(data_dir: Path) -> Catalogue:
    """Read the HARP->NOAA map, the index flags, the SRS first listings and the verification lists.

    Parameters
    ----------
    data_dir : Path
        The shared data directory (``../shared/data``). Required: the keyword index, the HARP->NOAA
        list and the SRS catalogue; optional (absent: empty): the JSOC HARP map, the hand-fixed raw
        SRS copies, the Debrecen births, the Kasapis list.

    Returns
    -------
    Catalogue
        With cross-check counts in ``checks``.

    Raises
    ------
    ModelError
        If a required file is missing.
    """
    data_dir = Path(data_dir)
    for rel in (INDEX, HARP_NOAA, SRS_CATALOGUE):
        if not (data_dir / rel).is_file():
            msg = f"emergence backtest: {data_dir / rel} is missing"
            raise ModelError(msg)
    checks: dict[str, Any] = {}
    harp_noaa = _read_harp_noaa(data_dir / HARP_NOAA)
    if (data_dir / HARP_NOAA_JSOC).is_file():
        jsoc = _read_harp_noaa(data_dir / HARP_NOAA_JSOC)
        common = set(jsoc) & set(harp_noaa)
        checks["harp_map_rows"] = {"series_list": len(harp_noaa), "jsoc_map": len(jsoc), "common": len(common)}
        checks["harp_map_disagreements"] = sum(jsoc[h] != harp_noaa[h] for h in common)
    ix = pd.read_csv(data_dir / INDEX, usecols=["harpnum", "born_on_disk", "emergence_candidate"])
    born = {int(h): bool(b) for h, b in zip(ix["harpnum"], ix["born_on_disk"], strict=True)}
    cand = {int(h): bool(c) for h, c in zip(ix["harpnum"], ix["emergence_candidate"], strict=True)}
    srs_first = _srs_first(data_dir, checks)
    dpd: dict[int, float] = {}
    if (data_dir / DEBRECEN).is_file():
        b = pd.read_csv(data_dir / DEBRECEN, usecols=["NOAA", "date_utc"], dtype={"NOAA": str})
        # Plain numbers only: DPD sub-groups ("12713v") are parts of a NOAA region, born later.
        b = b[b["NOAA"].str.fullmatch(r"\d+") & (b["date_utc"] >= "2010")]
        t = pd.to_datetime(b["date_utc"], utc=True).to_numpy(dtype="datetime64[s]").astype(np.int64)
        for n, tt in zip(b["NOAA"].astype(int), t, strict=True):
            dpd[int(n)] = min(float(tt), dpd.get(int(n), math.inf))
    kas: tuple[int, ...] = ()
    if (data_dir / KASAPIS).is_file():
        kas = tuple(int(n) for n in pd.read_csv(data_dir / KASAPIS, usecols=["noaa"])["noaa"])
    return Catalogue(harp_noaa, born, cand, srs_first, dpd, kas, checks)


def _quantiles(x: list[float]) -> dict[str, float | None]:
    if not x:
        return {"n": 0, "q25": None, "median": None, "q75": None}
    q = np.percentile(np.asarray(x, dtype=np.float64), [25, 50, 75])
    return {"n": len(x), "q25": float(q[0]), "median": float(q[1]), "q75": float(q[2])}


def _frac(num: int, den: int) -> float | None:
    return num / den if den else None


def _harp_record(s: KeywordSeries, cat: Catalogue, rule: GrowthRule, horizon_h: float, latency_h: float) -> dict[str, Any]:
    noaa = cat.harp_noaa.get(s.harp, ())
    firsts = [cat.srs_first[n] for n in noaa if n in cat.srs_first]
    t_list = min(firsts) if firsts else None
    rec: dict[str, Any] = {"harp": s.harp, "noaa": list(noaa), "n_rows": int(s.t.size), "t_list": t_list}
    if s.t.size == 0:
        rec.update(category="empty", year=None, fired=False)
        return rec
    t_first = float(s.t[0])
    flag = cat.born_on_disk.get(s.harp, bool(s.hours_since_first[0] == 0.0))
    # A HARP whose first record is the SHARP series' own start existed before it: not a birth.
    born = flag and t_first > SHARP_SERIES_START + 3600.0
    if t_list is None:
        category = "unlisted"
    else:
        # NOAA saw the region by the end of the day before the issue (positions valid at D 00:00).
        seen_first = t_first < t_list - SRS_ISSUE_OFFSET_S
        category = (
            ("new" if seen_first else "prenumbered") if born else ("entered_unnumbered" if seen_first else "entered_numbered")
        )
    rec.update(
        category=category,
        year=int(pd.Timestamp(t_first, unit="s").year),
        t_first=t_first,
        born_on_disk=born,
        candidate=cat.candidate.get(s.harp, False),
        born_flag_agrees=bool((s.hours_since_first[0] == 0.0) == flag),
    )
    hit = first_firing(s.t, s.usflux, rule, area_msh=s.area)
    rec["fired"] = hit is not None
    if hit is None:
        return rec
    t_warn = hit.time + latency_h * 3600.0
    rec.update(t_warn=t_warn, flux_warn=hit.flux_mx, baseline_warn=hit.baseline_mx, age_warn_h=(hit.time - t_first) / 3600.0)
    if t_list is None:
        rec["outcome"] = "unlisted"
        return rec
    lead = (t_list - t_warn) / 3600.0
    rec["lead_h"] = lead
    rec["outcome"] = "late" if lead <= 0 else ("hit" if lead <= horizon_h else "early")
    births = [cat.dpd_birth[n] for n in noaa if n in cat.dpd_birth]
    if births:
        rec["t_dpd_birth"] = min(births)
        rec["lead_vs_dpd_h"] = (min(births) - t_warn) / 3600.0
    return rec


def _summary(recs: list[dict[str, Any]], events: tuple[str, ...] = ("new",)) -> dict[str, Any]:
    """Scores of one set of HARP records (all years, or one year); POD and lead over the ``events`` categories."""
    new = [r for r in recs if r["category"] in events]
    warned_new = [r for r in new if r["fired"]]
    leads = [r["lead_h"] for r in warned_new]
    out: dict[str, Any] = {"new_regions": len(new), "new_warned": len(warned_new)}
    for x in POD_LEADS_H:
        key = "pod_lead_gt_0" if x == 0 else f"pod_lead_ge_{int(x)}h"
        out[key] = _frac(sum((lead > 0) if x == 0 else (lead >= x) for lead in leads), len(new))
    out[f"pod_within_{int(POD_WITHIN_H)}h_after"] = _frac(sum(lead >= -POD_WITHIN_H for lead in leads), len(new))
    out["pod_any"] = _frac(len(warned_new), len(new))
    out["lead_h"] = _quantiles(leads) | {"frac_positive": _frac(sum(lead > 0 for lead in leads), len(leads))}
    warnings = [r for r in recs if r["fired"]]
    outcomes = {k: sum(r.get("outcome") == k for r in warnings) for k in ("hit", "early", "late", "unlisted")}
    out["warnings"] = len(warnings)
    out["warning_outcomes"] = outcomes
    out["far"] = _frac(len(warnings) - outcomes["hit"], len(warnings))
    out["far_gated"] = _frac(outcomes["early"], outcomes["hit"] + outcomes["early"])
    old = [r for r in recs if r["category"] in OLD_CATEGORIES]
    old_warned = [r for r in old if r["fired"]]
    out["old_regions"] = len(old)
    out["old_warned"] = len(old_warned)
    out["frac_warnings_on_old_regions"] = _frac(len(old_warned), len(warnings))
    out["old_warned_rate"] = _frac(len(old_warned), len(old))
    return out


def _histogram(leads: list[float]) -> list[dict[str, Any]]:
    edges = _HIST_EDGES_H
    return [{"from_h": lo, "to_h": hi, "n": sum(lo < x <= hi for x in leads)} for lo, hi in itertools.pairwise(edges)]


def evaluate(
    series: Iterable[KeywordSeries],
    cat: Catalogue,
    rule: GrowthRule | None = None,
    *,
    horizon_h: float = 72.0,
    latency_h: float = 0.0,
) -> dict[str, Any]:
    """Run the rule over each series and score it against the catalogue.

    Parameters
    ----------
    series : iterable of KeywordSeries
        The HARPs (each run independently and causally).
    cat : Catalogue
        The truth (:func:`load_catalogue`).
    rule : GrowthRule, optional
        Default: ``GrowthRule()``, the a-priori parameters.
    horizon_h : float
        A warning followed by the first listing more than this many hours later is a false alarm (``early``).
    latency_h : float
        Hours added to every warning time (data latency of the NRT keywords).

    Returns
    -------
    dict
        ``rule``, ``settings``, ``counts``, ``overall``, ``by_year`` (year of the HARP's first
        record), ``candidates`` (the index's emergence candidates among new regions),
        ``lead_histogram_h``, ``debrecen``, ``kasapis``, ``checks`` and ``harps`` (one record each).
    """
    rule = rule or GrowthRule()
    recs = [_harp_record(s, cat, rule, horizon_h, latency_h) for s in series]
    recs.sort(key=lambda r: r["harp"])
    by_cat: dict[str, int] = {}
    for r in recs:
        by_cat[r["category"]] = by_cat.get(r["category"], 0) + 1
    years = sorted({r["year"] for r in recs if r["year"] is not None})
    new = [r for r in recs if r["category"] == "new"]
    new_leads = [r["lead_h"] for r in new if r["fired"]]
    dpd_new = [r for r in new if r.get("t_dpd_birth") is not None]
    dpd_all_new = [r for r in new if any(n in cat.dpd_birth for n in r["noaa"])]
    srs_after_dpd = [(r["t_list"] - min(cat.dpd_birth[n] for n in r["noaa"] if n in cat.dpd_birth)) / 3600.0 for r in dpd_all_new]
    kas = set(cat.kasapis)
    kas_recs = [r for r in recs if kas.intersection(r["noaa"])]
    kas_new = [r for r in kas_recs if r["category"] == "new"]
    return {
        "rule": asdict(rule),
        "settings": {"horizon_h": horizon_h, "latency_h": latency_h, "pod_within_h": POD_WITHIN_H},
        "counts": {
            "harps": len(recs),
            "by_category": by_cat,
            "born_flag_disagreements": sum(not r.get("born_flag_agrees", True) for r in recs),
        },
        "overall": _summary(recs),
        "by_year": {str(y): _summary([r for r in recs if r["year"] == y]) for y in years},
        # POD and lead on the new regions the index flags as emergence candidates (growth >= 10 and
        # max flux >= 1e21 Mx over the whole series: look-ahead, so a truth label, never a rule input).
        "candidates": _summary([r for r in new if r.get("candidate")]),
        "non_candidates": _summary([r for r in new if not r.get("candidate")]),
        # Regions NOAA first listed after their HARP came within 70 deg from the east limb: some
        # emerged behind or at the limb, some grew there; scored as events apart from the new ones.
        "entered_unnumbered": _summary([r for r in recs if r["category"] == "entered_unnumbered"], ("entered_unnumbered",)),
        "lead_histogram_h": _histogram(new_leads),
        "debrecen": {
            "new_regions_with_dpd_birth": len(dpd_all_new),
            "srs_first_listing_after_dpd_birth_h": _quantiles(srs_after_dpd),
            "lead_vs_dpd_birth_h": _quantiles([r["lead_vs_dpd_h"] for r in dpd_new])
            | {"frac_positive": _frac(sum(r["lead_vs_dpd_h"] > 0 for r in dpd_new), len(dpd_new))},
        },
        "kasapis": {
            "regions_in_list": len(kas),
            "with_series": len(kas_recs),
            "new_regions": len(kas_new),
            "warned_before_listing": sum(r["fired"] and r["lead_h"] > 0 for r in kas_new),
            "lead_h": _quantiles([r["lead_h"] for r in kas_new if r["fired"]]),
        },
        "checks": cat.checks,
        "harps": recs,
    }


def run_backtest(
    data_dir: Path,
    rule: GrowthRule | None = None,
    *,
    horizon_h: float = 72.0,
    latency_h: float = 0.0,
    series: Mapping[int, KeywordSeries] | None = None,
) -> dict[str, Any]:
    """Load the shared data and run :func:`evaluate` (see the module docstring for the definitions).

    Parameters
    ----------
    data_dir : Path
        The shared data directory.
    rule : GrowthRule, optional
        Default: the a-priori ``GrowthRule()``.
    horizon_h, latency_h : float
        As in :func:`evaluate`.
    series : mapping of int to KeywordSeries, optional
        Already-loaded series (to score several rules on one read of the tarball); default: stream the tarball.

    Returns
    -------
    dict
        As :func:`evaluate`, plus ``data`` (the files read).
    """
    data_dir = Path(data_dir)
    cat = load_catalogue(data_dir)
    tar_path = data_dir / TARBALL
    if series is None:
        if not tar_path.is_file():
            msg = f"emergence backtest: {tar_path} is missing"
            raise ModelError(msg)
        series = {s.harp: s for s in iter_keyword_series(tar_path)}
    res = evaluate(series.values(), cat, rule, horizon_h=horizon_h, latency_h=latency_h)
    res["data"] = {"dir": str(data_dir), "tarball": TARBALL, "index": INDEX, "harp_noaa": HARP_NOAA, "srs": SRS_CATALOGUE}
    return res


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _h(x: float | None) -> str:
    return "–" if x is None else f"{x:+.1f}"


def _row(label: str, s: dict[str, Any], *, pod_only: bool = False) -> str:
    lead = s["lead_h"]
    o = s["warning_outcomes"]
    if pod_only:
        far = "| n/a | n/a | n/a | n/a | n/a |"
    else:
        far = (f"| {s['warnings']} | {o['hit']} / {o['early']} / {o['late']} | {_pct(s['far'])} | {_pct(s['far_gated'])} "
               f"| {s['old_warned']} / {s['old_regions']} |")  # fmt: skip
    pods = " | ".join(
        _pct(s[k]) for k in ("pod_lead_gt_0", "pod_lead_ge_12h", "pod_lead_ge_24h", "pod_within_24h_after", "pod_any")
    )
    quartiles = f"{_h(lead['median'])} [{_h(lead['q25'])}, {_h(lead['q75'])}]"
    return f"| {label} | {s['new_regions']} | {pods} | {quartiles} | {_pct(lead['frac_positive'])} {far}"


def format_report(res: dict[str, Any]) -> str:
    """Markdown tables of a backtest result (overall, per year, lead histogram, verification lists).

    Parameters
    ----------
    res : dict
        What :func:`evaluate` or :func:`run_backtest` returned.

    Returns
    -------
    str
        Markdown.
    """
    head = (
        "| year | new regions | POD lead>0 | POD lead≥12 h | POD lead≥24 h | POD ≤24 h after | warned at all "
        "| lead h median [q25, q75] | warned with lead>0 | warnings (all HARPs) | hit / early / late | FAR | FAR gated "
        "| old regions warned |\n|---|" + "---|" * 13
    )
    lines = [head, *(_row(y, s) for y, s in res["by_year"].items()), _row("**all**", res["overall"])]
    lines.append(_row("all, emergence candidates", res["candidates"], pod_only=True))
    lines.append(_row("all, other new regions", res["non_candidates"], pod_only=True))
    lines.append(_row("all, entered from the limb, listed later (as events)", res["entered_unnumbered"], pod_only=True))
    hist = " | ".join(f"({b['from_h']:g}, {b['to_h']:g}]: {b['n']}" for b in res["lead_histogram_h"])
    d, k = res["debrecen"], res["kasapis"]
    dl, ds = d["lead_vs_dpd_birth_h"], d["srs_first_listing_after_dpd_birth_h"]
    kl = k["lead_h"]
    lines += [
        "",
        f"Lead-time histogram of warned new regions (hours before the first SRS listing): {hist}",
        "",
        f"Debrecen births: {d['new_regions_with_dpd_birth']} new regions have a DPD birth; the SRS first listing comes "
        f"{_h(ds['median'])} h [{_h(ds['q25'])}, {_h(ds['q75'])}] after it; the warning comes {_h(dl['median'])} h "
        f"[{_h(dl['q25'])}, {_h(dl['q75'])}] before the DPD birth ({_pct(dl['frac_positive'])} before it, n = {dl['n']}).",
        "",
        f"Kasapis et al. emerging regions: {k['regions_in_list']} listed, {k['with_series']} with a keyword series, "
        f"{k['new_regions']} of them new regions here; {k['warned_before_listing']} warned before the first listing, "
        f"lead {_h(kl['median'])} h [{_h(kl['q25'])}, {_h(kl['q75'])}] (n = {kl['n']}).",
    ]
    return "\n".join(lines)
