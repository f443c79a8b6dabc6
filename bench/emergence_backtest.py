"""Real-history backtest of the flux-growth emergence warning against NOAA's first SRS listings (issue 13, 4b).

Streams the 1,335 SHARP keyword series (12-min cadence, 2010-05..2019-05) out of
``sharp-keyword-timeseries/`` once, runs the a-priori ``GrowthRule()`` causally over each HARP,
scores the first firings against the first SRS listing of the HARP's NOAA region(s), prints the
tables and writes ``emergence-backtest.json`` and ``emergence-backtest.md`` into ``--out``.
A one-parameter-at-a-time sensitivity table follows (reported, not used to choose anything).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/emergence_backtest.py --data /work/shared/data [--out docs/eval]
        [--horizon-h 72] [--latency-h 0] [--no-sensitivity]

Under a minute on one core (10-15 s of it decompressing and parsing the tarball; the rest is the sensitivity and
tuning runs, skipped by ``--no-sensitivity``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: One-at-a-time departures from the a-priori rule for the sensitivity table (label, rule changes, latency h).
VARIANTS: tuple[tuple[str, dict[str, Any], float], ...] = (
    ("floor 1e20 Mx", {"floor_mx": 1e20}, 0.0),
    ("floor 1e21 Mx", {"floor_mx": 1e21}, 0.0),
    ("factor 1.5", {"factor": 1.5}, 0.0),
    ("factor 3", {"factor": 3.0}, 0.0),
    ("window 12 h", {"window_h": 12.0}, 0.0),
    ("window 48 h", {"window_h": 48.0}, 0.0),
    ("no smoothing", {"smooth_h": 0.0}, 0.0),
    ("+3 h data latency", {}, 3.0),
)

#: Grid searched on 2010-2012 only (the held-out comparison); objective: POD(lead >= 12 h) - old-region firing rate.
TUNE_GRID: dict[str, tuple[float, ...]] = {
    "floor_mx": (1e20, 3e20, 1e21),
    "factor": (1.5, 2.0, 3.0, 4.0),
    "window_h": (12.0, 24.0, 48.0),
}
TUNE_YEARS = (2010, 2012)

RULE_WHY = """\
Chosen **a priori** from the literature before the first run; nothing was tuned on these data
(the sensitivity table and the 2010-2012 tuning below were computed afterwards and changed nothing:
the a-priori rule stays the default, the tuned one is reported for the lead engineer's choice):

- `floor_mx = 3e20`: ephemeral regions reach at most ~1e20 Mx, within a day of appearing
  (Harvey & Martin 1973, Sol. Phys. 32, 389), so a growth test alone would fire on them; the floor
  is three times that, a margin for the network and plage pixels a SHARP patch also sums. NOAA
  numbers a region once it has a spot (van Driel-Gesztelyi & Green 2015, LRSP 12, 1); spotted
  regions carry ~1e21 Mx and more (de la Rosa 1983 puts the small/large region boundary near
  1e21 Mx), so the floor sits below them to leave room for lead time.
- `factor = 2` over `window_h = 24`: emerging regions grow at (0.5-5)e20 Mx/h near their peak
  rate (Abramenko et al. 2017, Sol. Phys. 292, 48), several-fold in their first day, while
  decaying spots lose ~2-3e19 Mx/h (Norton et al. 2017, ApJ 842, 3), ~10-15 % of a few-1e21 Mx
  region a day: doubling within a day is emergence, not decay nor the centre-to-limb change of
  CEA flux over the 13 deg a region rotates in a day. One day is also the SRS cadence.
- `smooth_h = 1`: a trailing median of the ~5 samples of one hour removes single-frame glitches.
- `min_area_msh = None`: no area condition (USFLUX only)."""

DEFINITIONS = """\
- **Warning time**: `T_REC` (TAI, converted to UTC) of the keyword sample at which the rule first
  fires on a HARP, reading the HARP's samples in time order, each step seeing only the samples up to
  it (`GrowthMonitor.update`); plus `--latency-h` (0 here; NRT SHARPs arrive later than `T_REC`).
- **NOAA first lists**: the issue time, **D 00:30 UTC**, of the first SRS of date D whose Section I
  (spotted regions) or IA (plages) carries one of the HARP's NOAA numbers (ARCCnet's catalogue
  of the SRS; the reports it failed to load are read from the hand-fixed raw copies in
  `noaa-srs/hand_fixed/` where those exist, see Data; 2016-07-19 and 2019-04-27 exist nowhere here).
  Its positions are valid at D 00:00 UTC from the data of day D-1. A HARP with several numbers: the
  earliest of them.
- **Lead** = first listing - warning, hours (> 0: the warning came first).
- **New regions** (the events): HARPs born on the disk (the index's `born_on_disk`: first JSOC record
  already within 70 deg of central meridian; not the two HARPs whose first record is the series'
  start) whose first record precedes D 00:00 of the first listing. **Old regions**: HARPs born on
  the disk whose region NOAA had already listed (re-detected or merged: `prenumbered`) and HARPs
  that entered the 70-deg window from the limb with their region already listed
  (`entered_numbered`). HARPs that entered from the limb and were listed later
  (`entered_unnumbered`) are scored separately.
- **POD lead>0 / ≥12 h / ≥24 h**: fraction of new regions warned that long before the first
  listing; **POD ≤24 h after**: warned no later than 24 h after it; **warned at all**: the rule
  fired on the HARP at some time.
- **Warnings**: the first firing on every HARP (any category). **hit**: the region is first listed
  after the warning, within `--horizon-h` (72 h); **early**: listed later than that; **late**: the
  region was already listed. **FAR** = (early + late + unlisted) / warnings. **FAR gated** = early /
  (hit + early): the warnings left when the daemon suppresses those on regions the SRS already
  numbers (it reads the SRS causally). **Old regions warned**: how many old regions the rule fires on.
- **Year**: of the HARP's first record (2010 from May, 2019 to May)."""

CAVEATS = """\
- **HARPs that never became numbered regions are not in these data.** Every one of the 1,335 files
  is a NOAA-numbered HARP, while definitive HARPNUMs run to ~7,400 over the same years: about
  6,000 HARPs (plage, ephemeral and decaying flux) are absent, and the rule's firing rate on them
  cannot be measured here. The FARs above are lower bounds on the operational FAR. The nearest
  measurable stand-ins are the rule's rate on old regions ({old_rate} of them warned) and on
  `prenumbered` HARPs (new HARPs of regions NOAA already numbered: {pre_rate} warned): the rule
  fires on nearly every *newly created* HARP whose flux reaches the floor, because the baseline of
  a new HARP is its near-zero flux at detection. The floor does most of the work on new HARPs; the
  rate on unnumbered HARPs needs the JSOC (keywords of all HARPs) to measure.
- The lead time is mostly how much earlier HMI's HARP tracker sees a region than NOAA's spot-based
  numbering does: new regions' HARPs start a median {birth_lead:.1f} h before the first listing, and the
  rule fires a median {age_med:.1f} h after the HARP's first record.
- The series hold only samples with the patch centre within 70 deg of central meridian and QUALITY
  < 65536, from the definitive series; the daemon reads NRT SHARPs (other HARP numbers, later
  availability, noisier). A daemon that reads the limb too would see rotated-on regions earlier.
- Lead is measured to the SRS issue time, what a forecaster (and the daemon) gets. SWPC assigns the
  number during the previous day, at a time these data do not hold, so the lead over SWPC's own
  numbering is shorter by up to ~24 h. The event set (HARP↔NOAA, born on the disk) comes from the
  definitive HARP-NOAA map, made after the fact; the daemon must match HARPs to SRS regions by position.
- The `early` false alarms (warned more than 72 h before the first listing; {n_early} of the new regions)
  are HARPs whose flux passed the floor, doubling, more than three days before NOAA listed them:
  flux growth NOAA had not numbered (presumably no spots yet; these data cannot tell).
- The "+3 h data latency" row is illustrative: NRT SHARP latency is not measured here.
- One warning per HARP (the first firing): re-growth later in a HARP's life is not scored."""


def _sensitivity_row(label: str, res: dict[str, Any]) -> str:
    o = res["overall"]
    lead = o["lead_h"]

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{100 * x:.0f} %"

    return (
        f"| {label} | {pct(o['pod_lead_gt_0'])} | {pct(o['pod_lead_ge_24h'])} | {lead['median']:+.1f} | {o['warnings']} "
        f"| {pct(o['far'])} | {pct(o['far_gated'])} | {o['old_warned']} / {o['old_regions']} |"
    )


def _heldout_row(label: str, sa: dict[str, Any], st: dict[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "–" if x is None else f"{100 * x:.0f} %"

    def lead(s: dict[str, Any]) -> str:
        m = s["lead_h"]["median"]
        return "–" if m is None else f"{m:+.1f}"

    cells = [
        f"{pct(sa['pod_lead_gt_0'])} → {pct(st['pod_lead_gt_0'])}",
        f"{pct(sa['pod_lead_ge_12h'])} → {pct(st['pod_lead_ge_12h'])}",
        f"{lead(sa)} → {lead(st)}",
        f"{sa['warnings']} → {st['warnings']}",
        f"{pct(sa['far'])} → {pct(st['far'])}",
        f"{pct(sa['far_gated'])} → {pct(st['far_gated'])}",
        f"{sa['old_warned']} → {st['old_warned']} / {sa['old_regions']}",
    ]
    return f"| {label} | {sa['new_regions']} | " + " | ".join(cells) + " |"


def _tune_score(o: dict[str, Any]) -> tuple[float, float]:
    # Hanssen-Kuipers-like: timely hits on new regions minus firings on old ones; then the lower FAR.
    return ((o["pod_lead_ge_12h"] or 0.0) - (o["old_warned_rate"] or 0.0), -(o["far"] or 1.0))


#: Columns of the per-HARP table in the JSON (one row per HARP; times ISO UTC).
HARP_COLUMNS = ("harp", "noaa", "category", "year", "candidate", "t_first", "t_list", "fired", "t_warn", "lead_h", "outcome",
                "flux_warn", "baseline_warn", "age_warn_h", "lead_vs_dpd_h")  # fmt: skip


def _compact(h: dict[str, Any], iso: Any) -> list[Any]:
    """One HARP's record as a row of :data:`HARP_COLUMNS`: times ISO UTC, numbers rounded."""
    row: list[Any] = []
    for k in HARP_COLUMNS:
        v = h.get(k)
        if k == "noaa":
            v = ",".join(str(n) for n in v)
        elif k.startswith("t_") and isinstance(v, float):
            v = iso(v)
        elif isinstance(v, float):
            v = float(f"{v:.4g}") if k.startswith(("flux", "baseline")) else round(v, 2)
        row.append(v)
    return row


def main() -> None:
    import numpy as np

    from heliowatch.models.core import jsonio
    from heliowatch.models.core.times import iso_utc
    from heliowatch.models.emergence import backtest as bt
    from heliowatch.models.emergence.growth import GrowthRule

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--out", default="docs/eval", help="folder for emergence-backtest.json and .md")
    ap.add_argument("--horizon-h", type=float, default=72.0, help="a warning more than this before the first listing is early")
    ap.add_argument("--latency-h", type=float, default=0.0, help="hours added to every warning time")
    ap.add_argument("--no-sensitivity", action="store_true", help="skip the one-at-a-time sensitivity runs")
    a = ap.parse_args()
    data = Path(a.data)
    t0 = time.perf_counter()
    series = {s.harp: s for s in bt.iter_keyword_series(data / bt.TARBALL)}
    t_load = time.perf_counter() - t0
    rule = GrowthRule()
    res = bt.run_backtest(data, rule, horizon_h=a.horizon_h, latency_h=a.latency_h, series=series)
    report = bt.format_report(res)
    print(report)
    sens_rows = []
    sens: dict[str, Any] = {}
    if not a.no_sensitivity:
        sens_rows.append(_sensitivity_row("**a-priori rule**", res))
        for label, change, latency in VARIANTS:
            variant = dataclasses.replace(rule, **change)
            r = bt.run_backtest(data, variant, horizon_h=a.horizon_h, latency_h=a.latency_h + latency, series=series)
            sens[label] = {"rule": r["rule"], "latency_h": r["settings"]["latency_h"], "overall": r["overall"]}
            sens_rows.append(_sensitivity_row(label, r))
    sens_table = ""
    if sens_rows:
        sens_table = (
            "| variant (all years) | POD lead>0 | POD lead≥24 h | median lead h | warnings | FAR | FAR gated "
            "| old regions warned |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(sens_rows)
        )
        print("\n" + sens_table)
    tuned_md = "(not run: --no-sensitivity)"
    if not a.no_sensitivity:
        lo, hi = TUNE_YEARS
        year = {h: time.gmtime(float(s.t[0])).tm_year for h, s in series.items() if s.t.size}
        early = {h: s for h, s in series.items() if lo <= year.get(h, 0) <= hi}
        late = {h: s for h, s in series.items() if year.get(h, 0) > hi}
        grid = []
        for floor in TUNE_GRID["floor_mx"]:
            for factor in TUNE_GRID["factor"]:
                for window in TUNE_GRID["window_h"]:
                    cand = GrowthRule(floor_mx=floor, factor=factor, window_h=window)
                    r = bt.run_backtest(data, cand, horizon_h=a.horizon_h, latency_h=a.latency_h, series=early)
                    grid.append((_tune_score(r["overall"]), cand, r["overall"]))
        grid.sort(key=lambda g: g[0], reverse=True)
        best = grid[0][1]
        ra = bt.run_backtest(data, rule, horizon_h=a.horizon_h, latency_h=a.latency_h, series=late)
        rt = bt.run_backtest(data, best, horizon_h=a.horizon_h, latency_h=a.latency_h, series=late)
        res["tuned_on_2010_2012"] = {
            "objective": "POD(lead >= 12 h) - fraction of old regions warned, then lower FAR",
            "grid": {k: list(v) for k, v in TUNE_GRID.items()},
            "best": dataclasses.asdict(best),
            "best_score_2010_2012": grid[0][0][0],
            "a_priori_score_2010_2012": next(g[0][0] for g in grid if g[1] == rule),
            "held_out_2013_2019": {"a_priori": {"overall": ra["overall"], "by_year": ra["by_year"]},
                                   "tuned": {"overall": rt["overall"], "by_year": rt["by_year"]}},
        }  # fmt: skip
        rows = [_heldout_row(y, ra["by_year"][y], rt["by_year"][y]) for y in ra["by_year"]]
        rows.append(_heldout_row("**2013-2019**", ra["overall"], rt["overall"]))
        tuned_md = (
            f"Grid on the HARPs first seen in {lo}-{hi} only ({len(early)} HARPs): floor {TUNE_GRID['floor_mx']} Mx x factor "
            f"{TUNE_GRID['factor']} x window {TUNE_GRID['window_h']} h; objective POD(lead ≥ 12 h) minus the fraction of old "
            f"regions warned. Best: floor {best.floor_mx:.0e} Mx, factor {best.factor:g}, window {best.window_h:g} h (score "
            f"{grid[0][0][0]:.3f}; the a-priori rule scores {res['tuned_on_2010_2012']['a_priori_score_2010_2012']:.3f} there). "
            f"Both rules on the held-out {hi + 1}-2019 HARPs ({len(late)}), never used for either choice "
            "(each cell: a-priori → tuned):\n\n"
            "| year | new regions | POD lead>0 | POD lead≥12 h | median lead h | warnings | FAR | FAR gated "
            "| old regions warned |\n"
            "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
        )
        print("\n" + tuned_md)
    new = [h for h in res["harps"] if h["category"] == "new" and h["fired"]]
    age = np.percentile([h["age_warn_h"] for h in new], [25, 50, 75]) if new else [float("nan")] * 3
    flux = np.percentile([h["flux_warn"] for h in new], [25, 50, 75]) if new else [float("nan")] * 3
    counts = res["counts"]["by_category"]
    chk = res["checks"]
    by_cat_fired = {c: [h["fired"] for h in res["harps"] if h["category"] == c] for c in counts}
    old_o = res["overall"]
    caveats = CAVEATS.format(
        old_rate=f"{old_o['old_warned']} / {old_o['old_regions']}",
        pre_rate=f"{sum(by_cat_fired.get('prenumbered', []))} / {len(by_cat_fired.get('prenumbered', []))}",
        birth_lead=float(np.median([(h["t_list"] - h["t_first"]) / 3600 for h in res["harps"] if h["category"] == "new"])),
        age_med=float(age[1]),
        n_early=sum(1 for h in res["harps"] if h["category"] == "new" and h.get("outcome") == "early"),
    )
    n_read, n_empty, n_flag = res["counts"]["harps"], counts.get("empty", 0), res["counts"]["born_flag_disagreements"]
    n_common, n_map_bad = chk.get("harp_map_rows", {}).get("common", "?"), chk.get("harp_map_disagreements", "?")
    n_ia, n_moved = chk["srs_first_in_IA_before_I"], chk["srs_first_listing_moved_by_fill"]
    not_loaded, filled = ", ".join(chk["srs_days_not_loaded_since_2010"]), ", ".join(chk["srs_days_filled_from_hand_fixed"])
    cmd = "OMP_NUM_THREADS=1 .venv/bin/python bench/emergence_backtest.py --data /work/shared/data --out docs/eval"
    extra = ""
    if a.horizon_h != 72.0 or a.latency_h != 0.0:
        extra = f" --horizon-h {a.horizon_h:g} --latency-h {a.latency_h:g}"
    md = f"""# Flux-growth emergence warning: real-history backtest (2010-05 .. 2019-05)

Issue 13, item 4(b). How many hours before NOAA first lists a region does heliowatch's surface
flux-growth warning (`heliowatch.models.emergence.growth.GrowthRule`) fire, computed from the SHARP
keywords as the daemon would see them (each HARP's samples in time order, no look-ahead), and how
often does it fire on regions that were not new?

Reproduce (under a minute on one core, 10-15 s of it streaming the 66 MB tarball; nothing is unpacked to disk):

```bash
{cmd}{extra}
```

Code: `models/emergence/growth.py` (the rule), `models/emergence/backtest.py` (loading, definitions,
scores), `bench/emergence_backtest.py` (this report); tests: `tests/models/test_emergence_backtest.py`.

## The rule

At each keyword sample t of a HARP: smoothed flux = median `USFLUX` over (t - `smooth_h`, t]; fire the
first time the smoothed flux is ≥ `floor_mx` **and** ≥ `factor` × the minimum smoothed flux over
(t - `window_h`, t] (since the HARP's first sample if it is younger).

Parameters: `{jsonio.dumps(res["rule"])}`

{RULE_WHY}

## Data

- `sharp-keyword-timeseries/`: 1,335 HARP keyword series (hmi.sharp_cea_720s, 12 min, patch centre within
  70 deg of central meridian), {n_read} read, {n_empty} empty; the index's `born_on_disk` flag agrees with
  the files' `TIME` = 0 at the first row for every HARP ({n_flag} disagreements).
- HARP→NOAA: `sharp-keyword-timeseries/all_harps_with_noaa_ars.txt`; `harp-noaa-map/HARP_TO_NOAA.txt`
  agrees on all {n_common} common HARPs ({n_map_bad} disagreements). (`noaa_data.csv`, a flare list, is not needed here.)
- First listings: `srs-catalog-1996-2022/` (Sections I and IA; {n_ia} numbers appear in IA before I, over
  1996-2022); reports not loaded there since 2010: {not_loaded}; read from `noaa-srs/hand_fixed/`: {filled}
  ({n_moved} first listings moved earlier).
- Verification lists: Debrecen DPD sunspot-group births (plain NOAA numbers), Kasapis et al. emerging regions.
- HARPs per category: {", ".join(f"{k} {v}" for k, v in sorted(counts.items()))}.

## Definitions

{DEFINITIONS}

## Results

{report}

On warned new regions the rule fired a median {age[1]:.1f} h [{age[0]:.1f}, {age[2]:.1f}] after the HARP's first record, at a
smoothed flux of {flux[1]:.2e} Mx [{flux[0]:.2e}, {flux[2]:.2e}].

### Sensitivity (one parameter at a time, all years; computed after the fact, not used to choose)

{sens_table or "(not run: --no-sensitivity)"}

### A rule tuned on 2010-2012 only, against the a-priori one on 2013-2019

{tuned_md}

## Caveats

{caveats}
"""
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res["sensitivity"] = sens
    res["command"] = cmd + extra
    # A compact table (one HARP per line) keeps the 1,335 records diffable and the file small.
    body = jsonio.dumps({k: v for k, v in res.items() if k != "harps"}, indent=1)
    rows = ",\n".join("  " + jsonio.dumps(_compact(h, iso_utc), separators=(",", ":")) for h in res["harps"])
    harps = f'{{"columns": {jsonio.dumps(list(HARP_COLUMNS))}, "rows": [\n{rows}\n ]}}'
    (out / "emergence-backtest.json").write_text(body[: body.rindex("}")].rstrip() + f',\n "harps": {harps}\n}}\n')
    (out / "emergence-backtest.md").write_text(md)
    print(f"\nwrote {out / 'emergence-backtest.json'} and {out / 'emergence-backtest.md'}")
    print(f"done in {time.perf_counter() - t0:.0f} s (tarball {t_load:.0f} s)")


if __name__ == "__main__":
    main()
