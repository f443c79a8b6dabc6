"""Evaluating jet detectors: pure scoring functions, and loaders for the real data they are tried on.

Scoring (arrays and sequences in, numbers out):

- window classification: accuracy, precision, recall, F1 and ROC AUC
  (:func:`heliowatch.models.skill.roc_auc`) of a window score against jet / no jet;
- the threshold is chosen on a **tuning split** (:func:`choose_threshold`) and then applied
  unchanged to the reported split (:func:`classification_metrics`);
- localisation of the detections matched to the truth (:func:`match`): base-point error
  (arcsec), direction error (degrees), relative speed error, length ratio;
- false alarms per hour of jet-free full-disk data (:func:`false_alarms_per_hour`).

A detector is a callable taking a window (a sequence of
:class:`~heliowatch.models.jets.frames.PooledFrame`) and returning its detections, or
``(detections, window_score)``; without a window score the best detection's score is used.

Loaders (the data directory is always an argument):

- :func:`load_aia_sequence`: the real AIA 304 cutout frames (0.6"/px, 12 s) pooled 3x3;
- :func:`extend_sequence`: a real 12 s sequence stretched to 30 frames by playing it forwards
  and backwards (ping-pong) and labelling the frames 24 s apart; see its notes for what that does
  and does not preserve;
- :func:`load_sjh_animation`: a Solar Jet Hunter rendering (15 frames, rendered levels) binned
  to about 1.8"/px and put on a DN/s-like scale (:func:`~heliowatch.models.jets.frames.robust_normalise`);
- :func:`load_jp2_frame`: a Helioviewer full-disk JP2 (byte-scaled) through Pillow's OpenJPEG.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from PIL import Image
from scipy.stats import chi2

from heliowatch.models import skill
from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import unix_from_iso
from heliowatch.models.jets.baseline import JetDetection
from heliowatch.models.jets.frames import PooledFrame, km_per_arcsec, pool3, robust_normalise, rsun_arcsec_for
from heliowatch.models.measures import bin_mean
from heliowatch.models.synthetic.ephemeris import ephemeris

__all__ = [
    "Detector",
    "Match",
    "choose_threshold",
    "classification_metrics",
    "extend_sequence",
    "false_alarms_per_hour",
    "load_aia_sequence",
    "load_jp2_frame",
    "load_sjh_animation",
    "localisation_errors",
    "match",
    "window_scores",
]

Detector = Callable[[Sequence[PooledFrame]], "list[JetDetection] | tuple[list[JetDetection], float]"]


def _run(detector: Detector, frames: Sequence[PooledFrame]) -> tuple[list[JetDetection], float]:
    out = detector(frames)
    if isinstance(out, tuple):
        dets, score = out
        return list(dets), float(score)
    dets = list(out)
    return dets, max((d.score for d in dets), default=0.0)


def window_scores(detector: Detector, windows: Sequence[Sequence[PooledFrame]]) -> tuple[np.ndarray, list[list[JetDetection]]]:
    """Run ``detector`` on each window: (window scores, detections per window)."""
    scores, dets = [], []
    for w in windows:
        d, s = _run(detector, w)
        scores.append(s)
        dets.append(d)
    return np.asarray(scores, dtype=float), dets


def classification_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall, F1, false-positive rate at ``threshold``, and ROC AUC of the scores.

    Parameters
    ----------
    y : array of bool or int
        1 for a window with a jet.
    score : array of float
    threshold : float
        A window is called a jet when ``score >= threshold``.
    """
    yb = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=float)
    if yb.shape != s.shape or yb.size == 0:
        msg = f"y and score must be non-empty and of one shape (got {yb.shape}, {s.shape})"
        raise UsageError(msg)
    a, c, b, d = skill.contingency(yb, s, threshold)
    prec = a / (a + b) if a + b else 0.0
    rec = a / (a + c) if a + c else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {
        "n": int(yb.size),
        "positives": int(yb.sum()),
        "threshold": float(threshold),
        "accuracy": (a + d) / yb.size,
        "precision": prec,
        "recall": rec,
        "f1": f1,
        "false_positive_rate": b / (b + d) if b + d else 0.0,
        "auc": skill.roc_auc(yb.astype(int), s),
        "tp": a,
        "fn": c,
        "fp": b,
        "tn": d,
    }


def choose_threshold(y_tune: np.ndarray, score_tune: np.ndarray, *, objective: str = "f1", min_recall: float = 0.9) -> float:
    """A threshold chosen on a tuning split only.

    Parameters
    ----------
    y_tune, score_tune : arrays
        The tuning split's labels and window scores (never the reported split's).
    objective : {"f1", "recall"}
        ``"f1"``: the threshold of best F1; ``"recall"``: the highest threshold whose recall is
        at least ``min_recall`` (Charlet et al. tuned for recall).
    min_recall : float

    Returns
    -------
    float
    """
    yb = np.asarray(y_tune).astype(bool)
    s = np.asarray(score_tune, dtype=float)
    if not yb.any():
        msg = "the tuning split has no positive window"
        raise UsageError(msg)
    cands = np.unique(np.concatenate([s, [0.5]]))
    if objective == "f1":
        f1s = [classification_metrics(yb, s, float(t))["f1"] for t in cands]
        return float(cands[int(np.argmax(f1s))])
    if objective == "recall":
        ok = [float(t) for t in cands if classification_metrics(yb, s, float(t))["recall"] >= min_recall]
        return max(ok) if ok else float(cands.min())
    msg = f"objective must be 'f1' or 'recall' (got {objective!r})"
    raise UsageError(msg)


@dataclass(frozen=True)
class Match:
    """A truth jet and the detection matched to it (None when missed)."""

    truth: dict[str, Any]
    detection: JetDetection | None
    base_error_arcsec: float


def match(
    detections: Sequence[JetDetection],
    truth_jets: Sequence[dict[str, Any]],
    *,
    max_sep_arcsec: float = 40.0,
    time_slack_s: float = 120.0,
) -> tuple[list[Match], list[JetDetection]]:
    """Match detections to truth jets (greedy, nearest base first).

    A detection matches a truth jet when its base lies within ``max_sep_arcsec`` of the true
    base and its time interval overlaps the jet's (``start_t``..``end_t``) within ``time_slack_s``.

    Returns
    -------
    (matches, unmatched)
        One :class:`Match` per truth jet (``detection`` None when missed), and the detections
        matched to no jet (false alarms, when the truth is complete).
    """
    pairs = []
    for i, j in enumerate(truth_jets):
        tb = j["base_hpc_arcsec"]
        for k, d in enumerate(detections):
            if d.start_t > j["end_t"] + time_slack_s or d.end_t < j["start_t"] - time_slack_s:
                continue
            e = math.hypot(d.base_hpc_arcsec[0] - tb[0], d.base_hpc_arcsec[1] - tb[1])
            if e <= max_sep_arcsec:
                pairs.append((e, i, k))
    pairs.sort()
    used_t: set[int] = set()
    used_d: set[int] = set()
    got: dict[int, tuple[int, float]] = {}
    for e, i, k in pairs:
        if i in used_t or k in used_d:
            continue
        used_t.add(i)
        used_d.add(k)
        got[i] = (k, e)
    matches = [
        Match(
            truth=j, detection=detections[got[i][0]] if i in got else None, base_error_arcsec=got[i][1] if i in got else math.nan
        )
        for i, j in enumerate(truth_jets)
    ]
    unmatched = [d for k, d in enumerate(detections) if k not in used_d]
    return matches, unmatched


def localisation_errors(matches: Sequence[Match]) -> dict[str, Any]:
    """Median and 90th-percentile errors of the matched detections.

    Base error (arcsec), direction error (degrees, wrapped to 0..180), relative speed error
    ``|v_det / v_true - 1|`` (detections with a speed), and the length ratio ``L_det / L_true``
    (true length: the longest the jet got within the window).
    """
    hit = [m for m in matches if m.detection is not None]

    def q(v: list[float]) -> dict[str, float | int]:
        a = np.asarray([x for x in v if math.isfinite(x)], dtype=float)
        if a.size == 0:
            return {"n": 0, "median": math.nan, "p90": math.nan}
        return {"n": int(a.size), "median": float(np.median(a)), "p90": float(np.percentile(a, 90))}

    base = [m.base_error_arcsec for m in hit]
    dirs = []
    speed = []
    length = []
    for m in hit:
        d = m.detection
        assert d is not None
        dirs.append(abs((d.direction_deg - m.truth["direction_deg"] + 180.0) % 360.0 - 180.0))
        if d.speed_km_s is not None and m.truth.get("speed_km_s"):
            speed.append(abs(d.speed_km_s / m.truth["speed_km_s"] - 1.0))
        if m.truth.get("length_arcsec"):
            length.append(d.length_arcsec / m.truth["length_arcsec"])
    return {
        "matched": len(hit),
        "of": len(matches),
        "base_error_arcsec": q(base),
        "direction_error_deg": q(dirs),
        "speed_rel_error": q(speed),
        "length_ratio": q(length),
    }


def false_alarms_per_hour(n_false: int, hours: float) -> dict[str, float]:
    """Rate of false alarms with a 95 % interval (Poisson, Garwood's exact limits)."""
    if hours <= 0:
        msg = f"hours must be > 0 (got {hours})"
        raise UsageError(msg)
    lo = 0.5 * chi2.ppf(0.025, 2 * n_false) if n_false > 0 else 0.0
    hi = 0.5 * chi2.ppf(0.975, 2 * (n_false + 1))
    return {
        "false_alarms": int(n_false),
        "hours": float(hours),
        "per_hour": n_false / hours,
        "per_hour_95_lo": lo / hours,
        "per_hour_95_hi": hi / hours,
    }


# --------------------------------------------------------------------------------------------
# Loaders


def _frame_from_header(data: np.ndarray, h: fits.Header, *, factor: int, flags: tuple[str, ...]) -> PooledFrame:
    cd1, cd2 = float(h.get("CDELT1", 0.0)), float(h.get("CDELT2", 0.0))
    if not (cd1 > 0 and abs(cd1 - cd2) < 1e-3 * cd1):
        msg = f"square pixels with CDELT1 > 0 expected (got CDELT1={cd1}, CDELT2={cd2})"
        raise UsageError(msg)
    t_iso = str(h.get("DATE-OBS") or h.get("T_OBS") or "")
    if not t_iso:
        msg = "the frame has no DATE-OBS"
        raise UsageError(msg)
    t = unix_from_iso(t_iso)
    dsun = float(h.get("DSUN_OBS", 1.496e11))
    rsun = float(h.get("RSUN_OBS", 0.0)) or rsun_arcsec_for(dsun)
    eph = ephemeris(dt.datetime.fromtimestamp(t, dt.UTC))
    b0 = float(h["HGLT_OBS"]) if "HGLT_OBS" in h and "CRLT_OBS" in h else eph.b0_deg
    l0 = float(h["CRLN_OBS"]) if "CRLN_OBS" in h else eph.l0_deg
    # Centre of binned pixel [0, 0] = centre of original pixels 0..factor-1 (FITS 1-based CRPIX).
    c = (factor - 1) / 2 + 1.0
    x0 = float(h.get("CRVAL1", 0.0)) + cd1 * (c - float(h.get("CRPIX1", 1.0)))
    y0 = float(h.get("CRVAL2", 0.0)) + cd2 * (c - float(h.get("CRPIX2", 1.0)))
    return PooledFrame(
        data=data.astype(np.float32),
        t_unix=t,
        arcsec_per_px=cd1 * factor,
        x0_arcsec=x0,
        y0_arcsec=y0,
        rsun_arcsec=rsun,
        b0_deg=b0,
        l0_deg=l0,
        dsun_m=dsun,
        flags=flags,
    )


def _image_hdu(path: Path) -> tuple[np.ndarray, fits.Header]:
    with fits.open(path) as hdul:
        for hdu in hdul:
            if hdu.data is not None and getattr(hdu.data, "ndim", 0) == 2:
                return np.asarray(hdu.data, dtype=np.float32), hdu.header.copy()
    msg = f"{path}: no 2-D image in the file"
    raise UsageError(msg)


def load_aia_sequence(directory: Path | str) -> list[PooledFrame]:
    """Real AIA 304 A frames of one field (a folder of FITS files, 0.6"/px) in DN/s, pooled 3x3 to 1.8"/px.

    DN are divided by EXPTIME. The cutouts' CROTA2 (-0.13 deg for the 2022-04-02 set) is not
    undone: over 150 pooled pixels it moves positions by under 0.7".

    Raises
    ------
    UsageError
        For a folder without FITS files or frames of different shapes.
    """
    d = Path(directory)
    files = sorted(d.glob("*.fits"))
    if not files:
        msg = f"{d}: no FITS files"
        raise UsageError(msg)
    frames = []
    for p in files:
        data, h = _image_hdu(p)
        exptime = float(h.get("EXPTIME", 1.0)) or 1.0
        unit = str(h.get("BUNIT", h.get("PIXLUNIT", "DN"))).strip().lower()
        dn_s = data / exptime if unit in ("dn", "") else data
        frames.append(_frame_from_header(pool3(dn_s), h, factor=3, flags=()))
    if len({f.shape for f in frames}) != 1:
        msg = f"{d}: frames of different shapes"
        raise UsageError(msg)
    return sorted(frames, key=lambda f: f.t_unix)


def extend_sequence(frames: Sequence[PooledFrame], *, n_frames: int = 30, cadence_s: float = 24.0) -> list[PooledFrame]:
    """Stretch a short real sequence to ``n_frames`` by playing it forwards and backwards.

    Frame ``k`` is real frame ``0, 1, ..., n-1, n-2, ..., 1, 0, 1, ...`` (ping-pong), labelled
    ``cadence_s`` after the previous one. What this keeps: every frame is a real frame, and
    every frame-to-frame difference is a real one (of the original spacing: 12 s for the AIA set,
    so noise is real and solar evolution between frames is that of 12 s, not 24 s). What it does
    not: evolution slower than the original span (84 s for 8 frames) is absent and the motion
    reverses every ``n - 1`` frames. The data are not modified.
    """
    if len(frames) < 2:
        msg = f"extend_sequence needs at least 2 frames (got {len(frames)})"
        raise UsageError(msg)
    n = len(frames)
    period = 2 * (n - 1)
    out = []
    t0 = frames[0].t_unix
    for k in range(n_frames):
        i = k % period
        src = frames[i if i < n else period - i]
        out.append(
            PooledFrame(
                data=src.data,
                t_unix=t0 + k * cadence_s,
                arcsec_per_px=src.arcsec_per_px,
                x0_arcsec=src.x0_arcsec,
                y0_arcsec=src.y0_arcsec,
                rsun_arcsec=src.rsun_arcsec,
                b0_deg=src.b0_deg,
                l0_deg=src.l0_deg,
                dsun_m=src.dsun_m,
                valid=src.valid,
                flags=(*src.flags, "ping_pong"),
            )
        )
    return out


def load_sjh_animation(directory: Path | str, *, target_arcsec_per_px: float = 1.8) -> list[PooledFrame]:
    """A Solar Jet Hunter animation as frames (``frame_NN.fits``, rendered levels 0..255).

    Binned by the integer factor that brings the plate scale closest to ``target_arcsec_per_px``
    (never resampled) and put on a DN/s-like scale by :func:`robust_normalise` over the whole
    sequence. The burned-in grid lines of the rendering are static, so differences cancel them.
    """
    d = Path(directory)
    files = sorted(d.glob("frame_*.fits"))
    if len(files) < 3:
        msg = f"{d}: fewer than 3 frame_*.fits files"
        raise UsageError(msg)
    raw = [_image_hdu(p) for p in files]
    cd = float(raw[0][1].get("CDELT1", 0.0))
    if not cd > 0:
        msg = f"{d}: CDELT1 missing"
        raise UsageError(msg)
    factor = max(1, round(target_arcsec_per_px / cd))
    cube = np.stack([bin_mean(a, factor) for a, _ in raw])
    cube = robust_normalise(cube)
    return [_frame_from_header(cube[i], h, factor=factor, flags=("rendered",)) for i, (_, h) in enumerate(raw)]


def load_jp2_frame(path: Path | str) -> PooledFrame:
    """A Helioviewer full-disk JPEG 2000 (4096x4096, byte-scaled) pooled 3x3, on a DN/s-like scale.

    Read with Pillow's OpenJPEG codec; the geometry from the FITS keywords in its XML box. One
    frame: a background for geometry and rendering tests, not a sequence.
    """
    p = Path(path)
    raw = p.read_bytes()
    i, j = raw.find(b"<fits"), raw.find(b"</fits>")
    if i < 0 or j < 0:
        msg = f"{p}: no FITS header box in the JP2"
        raise UsageError(msg)
    xml = raw[i:j].decode("latin-1")

    def kw(name: str, default: str = "") -> str:
        m = re.search(rf"<{re.escape(name)}>(.*?)</{re.escape(name)}>", xml, re.S)
        return m.group(1).strip() if m else default

    with Image.open(p) as im:
        img = np.asarray(im, dtype=np.float32)
    # JPEG 2000 rows run top-down; FITS (and PooledFrame) rows bottom-up.
    img = img[::-1]
    h = fits.Header()
    for k in (
        "CDELT1",
        "CDELT2",
        "CRPIX1",
        "CRPIX2",
        "CRVAL1",
        "CRVAL2",
        "DSUN_OBS",
        "RSUN_OBS",
        "CRLN_OBS",
        "HGLT_OBS",
        "CRLT_OBS",
    ):
        v = kw(k)
        if v:
            h[k] = float(v)
    h["DATE-OBS"] = kw("DATE-OBS") or kw("DATE_OBS")
    pooled = robust_normalise(pool3(img)[None])[0]
    return _frame_from_header(pooled, h, factor=3, flags=("byte_scaled",))


def speed_km_s(length_arcsec: float, seconds: float, dsun_m: float = 1.496e11) -> float:
    """Plane-of-sky speed of a front that moved ``length_arcsec`` in ``seconds``."""
    return length_arcsec * km_per_arcsec(dsun_m) / seconds if seconds > 0 else math.nan
