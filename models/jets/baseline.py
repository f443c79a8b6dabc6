"""A physics baseline for coronal jets in AIA 304 A that needs no training.

A coronal jet is a collimated brightening that grows outward from a fixed base over
consecutive frames, for minutes (Solar Jet Hunter: 5-180 min, median 13; 30-440" high; 40-340
km/s). The baseline looks for exactly that, frame by frame:

1. **Normalise.** Each frame is divided by its own median over the disk (over all finite
   pixels where the field holds no disk), which removes exposure changes and slow sensitivity
   drifts, then square-rooted so that photon noise is about uniform over bright and dark areas.
2. **Base difference.** The frame minus the pixel-wise *minimum* of earlier frames at lags of
   24-288 s: a brightening stays in the difference as long as one reference predates it, so the
   whole jet shows while it grows, and a flickering bright point is compared with its faint state.
3. **Significance.** The difference is smoothed (Gaussian, 1 px) and divided by a local noise
   (median absolute deviation in 32 px blocks): thresholds are in units of the local noise, so
   they hold for calibrated DN/s, byte-scaled and rendered data alike, on and off the disk.
4. **Components.** Pixels above ``grow_sigma`` connected to a pixel above ``seed_sigma`` (hysteresis).
5. **Tracks.** A component that touches the previous footprint of a track continues it; others
   start tracks. Each pixel remembers the frame it first brightened in (an arrival-time map).
6. **Jet test** when a track ends: the base is where the track started (the earliest pixels, at
   the end opposite the later growth); the axis points from the base to the outer half of the
   footprint; a time-distance track of the front (the far end of each frame's footprint along
   the axis) gives the plane-of-sky speed (Theil-Sen slope over the rise) and the length. A jet
   must be long enough, elongated, have grown outward over at least two frames from a front
   that started short, last ``min_frames`` frames, rise at a plausible speed and, at the limb,
   not run along it (the spicule fringe does).

Bright points (compact), oscillating loops (they brighten along their whole length at once),
exposure changes (normalised away) and the spicule forest (short; tangential chains) fail the
test. Thresholds were set from physics and checked on separate synthetic tuning data, never on
the reported evaluation sets (docs/eval/jets-baseline.md).

:class:`BaselineTracker` is incremental (one ``update`` per new frame, state: a short buffer of
normalised frames and the open tracks); :meth:`BaselineDetector.detect` runs it over a window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from heliowatch.models.core.errors import UsageError
from heliowatch.models.jets.frames import PooledFrame, hpc_to_hgs, km_per_arcsec, position_angle

__all__ = ["BaselineDetector", "BaselineParams", "BaselineTracker", "JetDetection"]

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class BaselineParams:
    """Parameters of the baseline (defaults: physics, checked on synthetic tuning data only).

    Attributes
    ----------
    leak_sigma_per_min : float
        The reference is the running minimum of earlier frames, each raised by this many noise
        sigmas per minute since it was taken: a brightening stays in the difference for (its
        amplitude in sigmas) / 0.5 minutes, slow evolution does not accumulate.
    warmup_frames : int
        Frames that only build the reference.
    smooth_px : float
        Gaussian smoothing of the difference, pixels.
    noise_block_px : int
        Side of the blocks the local noise is measured in.
    seed_sigma, grow_sigma : float
        Hysteresis thresholds, in units of the local noise.
    min_area_px : int
        Smallest component kept.
    match_px : int
        A component continues a track when it lies within this many pixels of its last footprint.
    max_gap_frames : int
        Frames a track may go unseen before it is closed.
    max_track_s : float
        A track is closed (and judged) after this long.
    min_frames : int
        Frames a jet must be seen in.
    min_length_arcsec : float
        Shortest jet (Solar Jet Hunter's shortest is 15"; 5 % are under 32").
    min_growth_arcsec : float
        How far the front must advance.
    max_first_fraction : float
        The front when first seen may be at most this fraction of the final length (a loop
        appears at its full length at once).
    min_elongation : float
        Length over footprint width.
    min_axis_coverage : float
        Fraction of the axis from base to front the footprint must cover (a jet is continuous;
        a chain of separate brightenings is not).
    min_speed_km_s, max_speed_km_s : float
        Plausible plane-of-sky speeds (catalogue 5-95 %: 38-344 km/s, 99 %: 600 km/s).
    min_advances : int
        Frames in which the front must move outward (the catalogue's rises last 96 s or more, 99 % of them 312 s or more).
    max_curvature : float
        Bow of the ridge over the cross-section width: a straight spire is near 0, a loop arc well above 1.
    max_jump_fraction : float
        Largest share of the growth made in one frame (a jet's front advances steadily).
    min_peak_sigma : float
        Peak significance a track must reach (catalogue-like synthetic jets: 5 % below 22).
    limb_band : float
        Within this fraction of R_sun of the limb the tangential test applies.
    limb_tangential_deg : float
        A limb track whose axis is within this many degrees of the limb's tangent is the spicule fringe.
    limb_depth_px, limb_height_px : float
        The band inside and above the limb where the noise is measured in the band itself (the
        spicule fringe is 3-10 Mm high).
    score_threshold : float
        Tracks scoring at least this are reported.
    """

    leak_sigma_per_min: float = 0.5
    warmup_frames: int = 2
    smooth_px: float = 1.0
    noise_block_px: int = 64
    seed_sigma: float = 6.0
    grow_sigma: float = 3.0
    min_area_px: int = 8
    match_px: int = 3
    max_gap_frames: int = 2
    max_track_s: float = 3600.0
    min_frames: int = 4
    min_length_arcsec: float = 18.0
    min_growth_arcsec: float = 9.0
    max_first_fraction: float = 0.7
    min_elongation: float = 2.0
    min_axis_coverage: float = 0.8
    min_advances: int = 5
    max_curvature: float = 2.5
    max_jump_fraction: float = 0.35
    min_peak_sigma: float = 12.0
    min_speed_km_s: float = 20.0
    max_speed_km_s: float = 1000.0
    limb_band: float = 0.04
    limb_tangential_deg: float = 30.0
    limb_depth_px: float = 6.0
    limb_height_px: float = 18.0
    score_threshold: float = 0.5


@dataclass
class JetDetection:
    """A jet found by a detector.

    Attributes
    ----------
    base_px : (float, float)
        Base point (x, y) in the frame's pixels (0-based, FITS lower-left origin).
    base_hpc_arcsec : (float, float)
        Base point, helioprojective arcsec.
    direction_deg : float
        Position angle of the jet axis from the base: counter-clockwise from solar north
        (0 = north, 90 = east).
    length_arcsec : float
        Longest plane-of-sky extent of the front from the base.
    speed_km_s : float or None
        Plane-of-sky speed of the front (None when the rise was not resolved).
    start_t, peak_t, end_t : float
        Unix times: first frame seen, frame of the largest integrated brightening, last frame seen.
    score : float
        0..1, how well the track fits a jet (not a calibrated probability).
    detector : str
        ``"baseline"``, or ``"convlstm"`` for the network's tile detections.
    n_frames : int
        Frames the jet was seen in.
    hgs_lat, hgs_lon : float
        Stonyhurst position of the base (NaN beyond the limb).
    on_disk : bool
        The base is on the disk.
    box_hpc_arcsec : (x0, x1, y0, y1) or None
        For a network detection, the tile it was seen in (helioprojective arcsec): the network
        says that a jet is in the tile, the difference image only guesses where.
    """

    base_px: tuple[float, float]
    base_hpc_arcsec: tuple[float, float]
    direction_deg: float
    length_arcsec: float
    speed_km_s: float | None
    start_t: float
    peak_t: float
    end_t: float
    score: float
    detector: str = "baseline"
    n_frames: int = 0
    hgs_lat: float = math.nan
    hgs_lon: float = math.nan
    on_disk: bool = True
    box_hpc_arcsec: tuple[float, float, float, float] | None = None


@dataclass
class _Track:
    tid: int
    ordinal0: int
    times: list[float] = field(default_factory=list)
    ordinals: list[int] = field(default_factory=list)
    pix: list[np.ndarray] = field(default_factory=list)
    zs: list[np.ndarray] = field(default_factory=list)
    zsum: list[float] = field(default_factory=list)
    zpeak: float = 0.0
    seen: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    arrival: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    zbest: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    gap: int = 0

    def add(self, ordinal: int, t: float, idx: np.ndarray, z: np.ndarray) -> None:
        self.times.append(t)
        self.ordinals.append(ordinal)
        self.pix.append(idx)
        self.zs.append(z.astype(np.float32))
        self.zsum.append(float(z.sum()))
        self.zpeak = max(self.zpeak, float(z.max()))
        pos = np.searchsorted(self.seen, idx)
        pos_c = np.minimum(pos, max(self.seen.size - 1, 0))
        known = (self.seen.size > 0) & (self.seen[pos_c] == idx) if self.seen.size else np.zeros(idx.size, bool)
        if np.any(known):
            np.maximum.at(self.zbest, pos_c[known], z[known])
        new = ~known
        if np.any(new):
            seen = np.concatenate([self.seen, idx[new]])
            arr = np.concatenate([self.arrival, np.full(int(new.sum()), ordinal, np.int32)])
            zb = np.concatenate([self.zbest, z[new].astype(np.float32)])
            order = np.argsort(seen, kind="stable")
            self.seen, self.arrival, self.zbest = seen[order], arr[order], zb[order]
        self.gap = 0


def _group_median_mad(v: np.ndarray, bins: np.ndarray, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and median absolute deviation of ``v`` in each of ``nb`` groups (vectorised)."""

    def gmed(x: np.ndarray) -> np.ndarray:
        order = np.lexsort((x, bins))
        xs = x[order]
        counts = np.bincount(bins, minlength=nb)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        lo = starts + np.maximum(counts - 1, 0) // 2
        hi = starts + counts // 2
        hi = np.where(counts > 0, hi, lo)
        out = 0.5 * (xs[np.minimum(lo, xs.size - 1)] + xs[np.minimum(hi, xs.size - 1)])
        return np.where(counts > 0, out, 0.0)

    med = gmed(v)
    mad = gmed(np.abs(v - med[bins]))
    return med.astype(np.float32), mad.astype(np.float32)


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


def _theil_sen(t: np.ndarray, y: np.ndarray) -> float:
    i, j = np.triu_indices(t.size, 1)
    dt = t[j] - t[i]
    ok = dt > 0
    return float(np.median((y[j] - y[i])[ok] / dt[ok])) if np.any(ok) else math.nan


@dataclass
class _Geom:
    shape: tuple[int, int]
    x0: float
    y0: float
    scale: float
    rsun: float
    b0: float
    l0: float
    dsun: float

    @classmethod
    def of(cls, f: PooledFrame) -> _Geom:
        return cls(f.shape, f.x0_arcsec, f.y0_arcsec, f.arcsec_per_px, f.rsun_arcsec, f.b0_deg, f.l0_deg, f.dsun_m)

    def same(self, o: _Geom) -> bool:
        tol = 0.05 * self.scale
        return (
            self.shape == o.shape
            and abs(self.scale - o.scale) < 1e-3 * self.scale
            and abs(self.x0 - o.x0) < tol
            and abs(self.y0 - o.y0) < tol
        )

    def frame(self) -> PooledFrame:
        return PooledFrame(
            data=np.zeros((1, 1), np.float32),
            t_unix=0.0,
            arcsec_per_px=self.scale,
            x0_arcsec=self.x0,
            y0_arcsec=self.y0,
            rsun_arcsec=self.rsun,
            b0_deg=self.b0,
            l0_deg=self.l0,
            dsun_m=self.dsun,
        )


class BaselineTracker:
    """Incremental jet detection on a stream of frames of one field of view.

    ``update`` costs one pass of array operations over the new frame (well under a second for
    a 1365x1365 full disk on one core; see docs/eval/jets-baseline.md) plus a little per open
    track. A frame with another plate scale, shape or pointing closes the open tracks (their
    detections are returned) and starts afresh.

    Parameters
    ----------
    params : BaselineParams or None
    keep_judged : bool
        Keep every judged track in :attr:`judged` (diagnostics and tuning).
    """

    def __init__(self, params: BaselineParams | None = None, *, keep_judged: bool = False) -> None:
        self.params = params or BaselineParams()
        self.keep_judged = keep_judged
        #: The best score of any track judged so far (a window's score for ROC curves).
        self.best_score = 0.0
        self._bg: np.ndarray | None = None
        self._sig_raw = 0.0
        self._t_prev = -math.inf
        self._tracks: list[_Track] = []
        self._geom: _Geom | None = None
        self._next_id = 0
        self._ordinal = 0
        self._last_t = -math.inf
        self._r: np.ndarray | None = None
        self._limb: tuple[np.ndarray, np.ndarray, int] | None = None
        #: With ``keep_judged``: every track judged, ``(score, detection, features)`` (diagnostics;
        #: off by default so that a long-running stream does not accumulate them).
        self.judged: list[tuple[float, JetDetection, dict[str, float]]] = []

    # -- public --------------------------------------------------------------------------------
    def update(self, frame: PooledFrame) -> list[JetDetection]:
        """Feed the next frame; return the jets confirmed by it (tracks that ended with it).

        Raises
        ------
        UsageError
            For a frame older than the previous one.
        """
        if frame.t_unix <= self._last_t:
            msg = f"frames must come in time order (got t={frame.t_unix} after {self._last_t})"
            raise UsageError(msg)
        out: list[JetDetection] = []
        geom = _Geom.of(frame)
        if self._geom is not None and not self._geom.same(geom):
            out += self.flush()
        if self._geom is None:
            self._geom = geom
            self._r = frame.radius_map()
        self._last_t = frame.t_unix
        if not frame.valid:
            return out
        g = self._prepare(frame)
        ordinal = self._ordinal
        self._ordinal += 1
        if self._bg is None:
            self._bg, self._t_prev = g, frame.t_unix
            return out
        lam = self.params.leak_sigma_per_min * self._sig_raw * (frame.t_unix - self._t_prev) / 60.0
        ref = self._bg + np.float32(lam)
        self._bg = np.minimum(g, ref)
        self._t_prev = frame.t_unix
        d = g - ref
        q = np.percentile(d[::2, ::2], [20, 40])
        self._sig_raw = float(q[1] - q[0]) / 0.5883
        if ordinal < self.params.warmup_frames:
            return out
        z = self._significance(d)
        labels, comps = self._components(z)
        out += self._associate(labels, comps, z, ordinal, frame.t_unix)
        return out

    def flush(self) -> list[JetDetection]:
        """Close every open track (end of a window or of the stream) and return the jets among them."""
        out = []
        for tr in self._tracks:
            det = self._judge(tr)
            if det is not None:
                out.append(det)
        self._tracks = []
        self._bg = None
        self._sig_raw = 0.0
        self._t_prev = -math.inf
        self._geom = None
        self._r = None
        self._limb = None
        return out

    # -- steps ---------------------------------------------------------------------------------
    def _prepare(self, frame: PooledFrame) -> np.ndarray:
        d = frame.data
        fin = np.isfinite(d)
        r = self._r if self._r is not None else frame.radius_map()
        disk = fin & (r < 0.95)
        sample = d[disk][::4] if disk.sum() > 0.05 * d.size else d[fin][::4]
        sample = sample[sample > 0]
        scale = float(np.median(sample)) if sample.size > 16 else 1.0
        if not scale > 0:
            scale = 1.0
        g = np.sqrt(np.clip(np.where(fin, d, 0.0), 0, None) / np.float32(scale)).astype(np.float32)
        return g

    def _significance(self, d: np.ndarray) -> np.ndarray:
        p = self.params
        if p.smooth_px > 0:
            d = ndimage.gaussian_filter(d, p.smooth_px, truncate=3.0)
        # Local level and noise from the lower quantiles of blocks: a brightening is positive,
        # so q20 and q40 stay noise as long as it covers less than about half a block (blocks
        # are larger than the broad catalogue jets); for Gaussian noise q40 - q20 = 0.588 sigma.
        b = p.noise_block_px
        ny, nx = d.shape
        by, bx = max(ny // b, 1), max(nx // b, 1)
        hy, hx = ny // by, nx // bx
        blocks = d[: by * hy, : bx * hx].reshape(by, hy, bx, hx)[:, ::2, :, ::2]
        blocks = blocks.transpose(0, 2, 1, 3).reshape(by, bx, -1)
        q20, q40, q50 = np.percentile(blocks, [20, 40, 50], axis=2)
        sig = (q40 - q20) / 0.5883
        med = q40 + 0.2533 * sig
        # Real differences are skewed (low counts; a minimum as reference): the lower half
        # alone understates the upper tail, so the symmetric MAD bounds sigma from below.
        mad = np.median(np.abs(blocks - q50[:, :, None]), axis=2) * 1.4826
        sig = np.maximum(sig, mad)
        allq = np.percentile(d[::2, ::2], [20, 40])
        glob = float(allq[1] - allq[0]) / 0.5883
        sig = np.maximum(sig, max(0.7 * glob, 1e-6))
        if by > 1 or bx > 1:
            med_u = ndimage.zoom(med, (ny / by, nx / bx), order=1, mode="nearest", grid_mode=True)[:ny, :nx]
            mad_u = ndimage.zoom(sig, (ny / by, nx / bx), order=1, mode="nearest", grid_mode=True)[:ny, :nx]
        else:
            med_u = np.full(d.shape, med[0, 0], np.float32)
            mad_u = np.full(d.shape, sig[0, 0], np.float32)
        z = (d - med_u) / mad_u
        lb = self._limb_bins()
        if lb is not None:
            # The spicule fringe varies far more than the disk or the corona beside it: there
            # the noise is measured in the band itself, in rings a few pixels deep and sectors
            # ~40 px long, and the larger of the two noises is used.
            idx, bins, nb = lb
            v = d.ravel()[idx]
            gmed, gmad = _group_median_mad(v, bins, nb)
            # The fringe's fluctuations are heavy-tailed (sparse bright streaks): a median
            # absolute deviation understates them, an RMS clipped at 6 MAD does not, and a jet
            # (much brighter, a small part of a sector) barely moves it.
            dev = v - gmed[bins]
            clip = 6.0 * 1.4826 * np.maximum(gmad[bins], 1e-9)
            ms = np.bincount(bins, weights=np.minimum(dev * dev, clip * clip), minlength=nb) / np.maximum(
                np.bincount(bins, minlength=nb), 1
            )
            sig_band = np.maximum(np.sqrt(ms)[bins], mad_u.ravel()[idx])
            z.ravel()[idx] = (v - gmed[bins]) / sig_band
        return z.astype(np.float32)

    def _limb_bins(self) -> tuple[np.ndarray, np.ndarray, int] | None:
        if self._limb is not None:
            return self._limb if self._limb[0].size else None
        g, r = self._geom, self._r
        if g is None or r is None:
            return None
        rsun_px = g.rsun / g.scale
        h = (r - 1.0) * rsun_px
        band = (h >= -self.params.limb_depth_px) & (h < self.params.limb_height_px)
        idx = np.flatnonzero(band.ravel())
        if idx.size < 64:
            self._limb = (np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
            return None
        _ny, nx = g.shape
        ys, xs = np.divmod(idx, nx)
        tx, ty = g.x0 + xs * g.scale, g.y0 + ys * g.scale
        pa = np.arctan2(ty, tx)
        n_sec = max(int(2 * math.pi * rsun_px / 40.0), 4)
        sec = ((pa + math.pi) / (2 * math.pi) * n_sec).astype(np.int64) % n_sec
        ring = np.clip(((h.ravel()[idx] + self.params.limb_depth_px) // 6).astype(np.int64), 0, None)
        key = ring * n_sec + sec
        uniq, inv = np.unique(key, return_inverse=True)
        self._limb = (idx, inv.astype(np.int64), int(uniq.size))
        return self._limb

    def _components(self, z: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        p = self.params
        lo = z > p.grow_sigma
        labels, n = ndimage.label(lo, structure=_EIGHT)
        if n == 0:
            return labels, []
        flat = labels.ravel()
        nz = np.flatnonzero(flat)
        lab = flat[nz]
        zv = z.ravel()[nz]
        area = np.bincount(lab, minlength=n + 1)
        zmax = np.zeros(n + 1, np.float32)
        np.maximum.at(zmax, lab, zv)
        keep = (area >= p.min_area_px) & (zmax >= p.seed_sigma)
        keep[0] = False
        sel = keep[lab]
        nz, lab, zv = nz[sel], lab[sel], zv[sel]
        order = np.argsort(lab, kind="stable")
        nz, lab, zv = nz[order], lab[order], zv[order]
        cuts = np.flatnonzero(np.diff(lab)) + 1
        comps = list(zip(np.split(nz, cuts), np.split(zv, cuts), strict=True)) if nz.size else []
        # Relabel: component i has label i + 1 in a compact map (0 = not kept).
        remap = np.zeros(n + 1, np.int32)
        kept_labels = np.unique(lab)
        remap[kept_labels] = np.arange(1, kept_labels.size + 1, dtype=np.int32)
        return remap[labels], comps

    def _associate(
        self, labels: np.ndarray, comps: list[tuple[np.ndarray, np.ndarray]], z: np.ndarray, ordinal: int, t: float
    ) -> list[JetDetection]:
        p = self.params
        ny, nx = labels.shape
        claimed = np.zeros(len(comps) + 1, bool)
        claimed[0] = True
        out: list[JetDetection] = []
        still: list[_Track] = []
        for tr in self._tracks:
            last = tr.pix[-1]
            ys, xs = np.divmod(last, nx)
            m = p.match_px
            y0, y1 = max(int(ys.min()) - m, 0), min(int(ys.max()) + m + 1, ny)
            x0, x1 = max(int(xs.min()) - m, 0), min(int(xs.max()) + m + 1, nx)
            box = np.zeros((y1 - y0, x1 - x0), bool)
            box[ys - y0, xs - x0] = True
            box = ndimage.binary_dilation(box, structure=_EIGHT, iterations=m)
            hit = np.unique(labels[y0:y1, x0:x1][box])
            hit = hit[~claimed[hit]]
            if hit.size:
                claimed[hit] = True
                idx = np.concatenate([comps[h - 1][0] for h in hit])
                zz = np.concatenate([comps[h - 1][1] for h in hit])
                tr.add(ordinal, t, idx, zz)
            else:
                tr.gap += 1
            if tr.gap > p.max_gap_frames or (tr.times and t - tr.times[0] > p.max_track_s):
                det = self._judge(tr)
                if det is not None:
                    out.append(det)
            else:
                still.append(tr)
        for i, (idx, zz) in enumerate(comps, start=1):
            if not claimed[i]:
                tr = _Track(tid=self._next_id, ordinal0=ordinal)
                self._next_id += 1
                tr.add(ordinal, t, idx, zz)
                still.append(tr)
        self._tracks = still
        return out

    # -- the jet test ----------------------------------------------------------------------------
    def _judge(self, tr: _Track) -> JetDetection | None:
        det, score, feats = self._measure(tr)
        if det is None:
            return None
        self.best_score = max(self.best_score, score)
        if self.keep_judged:
            self.judged.append((score, det, feats))
        return det if score >= self.params.score_threshold else None

    def _measure(self, tr: _Track) -> tuple[JetDetection | None, float, dict[str, float]]:
        p = self.params
        g = self._geom
        if g is None or len(tr.times) < 2:
            return None, 0.0, {}
        _ny, nx = g.shape
        ys, xs = np.divmod(tr.seen, nx)
        xs_f, ys_f = xs.astype(np.float64), ys.astype(np.float64)
        w = np.clip(tr.zbest.astype(np.float64), 1e-3, None)
        first = tr.arrival == tr.arrival.min()
        later = ~first
        c_first = np.array([np.average(xs_f[first], weights=w[first]), np.average(ys_f[first], weights=w[first])])
        if later.sum() >= 3:
            c_late = np.array([np.average(xs_f[later], weights=w[later]), np.average(ys_f[later], weights=w[later])])
        else:
            c_late = c_first.copy()
        u = c_late - c_first
        nu = float(np.hypot(*u))
        if nu < 0.5:
            # No growth to point the way: the principal axis of the footprint.
            cov = np.cov(np.vstack([xs_f, ys_f]), aweights=w) if xs_f.size > 2 else np.eye(2)
            vals, vecs = np.linalg.eigh(cov)
            u = vecs[:, int(np.argmax(vals))]
        else:
            u = u / nu
        proj = (xs_f[first] - c_first[0]) * u[0] + (ys_f[first] - c_first[1]) * u[1]
        low = proj <= np.percentile(proj, 25)
        base = np.array(
            [np.average(xs_f[first][low], weights=w[first][low]), np.average(ys_f[first][low], weights=w[first][low])]
        )
        # Axis: from the base to the outer half of everything the track lit up.
        dist = np.hypot(xs_f - base[0], ys_f - base[1])
        dmax = float(dist.max()) if dist.size else 0.0
        outer = dist >= 0.5 * dmax
        if dmax >= 1.0 and outer.sum() >= 2:
            tip = np.array([np.average(xs_f[outer], weights=w[outer]), np.average(ys_f[outer], weights=w[outer])])
            ax = tip - base
            ax /= max(float(np.hypot(*ax)), 1e-9)
        else:
            ax = u
        along = (xs_f - base[0]) * ax[0] + (ys_f - base[1]) * ax[1]
        perp = -(xs_f - base[0]) * ax[1] + (ys_f - base[1]) * ax[0]
        # Time-distance track of the front along the axis.
        fronts = []
        for idx in tr.pix:
            fy, fx = np.divmod(idx, nx)
            s = (fx - base[0]) * ax[0] + (fy - base[1]) * ax[1]
            q = -(fx - base[0]) * ax[1] + (fy - base[1]) * ax[0]
            spine = np.abs(q) <= max(3.0, 0.5 * dmax)
            fronts.append(float(np.percentile(s[spine], 95)) if np.any(spine) else 0.0)
        f = np.maximum(np.asarray(fronts), 0.0)
        t = np.asarray(tr.times)
        kmax = int(np.argmax(f))
        length_px = float(f[kmax])
        growth_px = float(f[kmax] - f[0])
        steps = np.diff(np.maximum.accumulate(f))
        n_adv = int(np.sum(steps > 1.0))
        first_frac = float(f[0] / length_px) if length_px > 0 else 1.0
        # A front that advances steadily, not one that jumps (a loop lighting up next to a bright point).
        jump = float(steps[:kmax].max()) / growth_px if kmax >= 1 and growth_px > 0 else 1.0
        speed = None
        if kmax >= 1:
            slope = _theil_sen(t[: kmax + 1], f[: kmax + 1])
            if math.isfinite(slope) and slope > 0:
                speed = slope * g.scale * self._km_per_arcsec()
        # Width: FWHM of the significance-weighted cross-section of the spire (a thresholded
        # footprint would make bright jets look wide).
        spire = (along > 0.2 * length_px) & (along < 0.9 * length_px)
        sel = spire if spire.sum() >= 3 else np.ones(perp.size, bool)
        width_px = 2.3548 * math.sqrt(float(np.average(perp[sel] ** 2, weights=w[sel]))) + 1.0
        elong = length_px / width_px if width_px > 0 else 0.0
        scale = g.scale
        length_as = length_px * scale
        n = len(tr.times)
        # Collimated and continuous: the footprint lit up by the time of the longest front must
        # cover the axis from the base to the front (a chain of separate blobs does not).
        # (on the footprint of the frames of the longest front, not on everything the track lit).
        last = np.concatenate(tr.pix[max(kmax - 1, 0) : kmax + 1])
        ly, lx = np.divmod(last, nx)
        lw = np.clip(np.concatenate(tr.zs[max(kmax - 1, 0) : kmax + 1]).astype(np.float64), 1e-3, None)
        la = (lx - base[0]) * ax[0] + (ly - base[1]) * ax[1]
        lp = -(lx - base[0]) * ax[1] + (ly - base[1]) * ax[0]
        on_axis = (np.abs(lp) <= max(3.0, 0.25 * length_px)) & (la >= 0) & (la <= length_px)
        nbin = max(int(length_px / 1.5), 1)
        hitbins = np.unique(np.clip((la[on_axis] / max(length_px, 1e-6) * nbin).astype(np.int64), 0, nbin - 1))
        coverage = hitbins.size / nbin
        # Straightness: how far the ridge (mean cross-axis offset in 3 px bins) bows, over the
        # cross-section width about the ridge. A spire is straight; a loop arc bows by far more
        # than its thickness.
        curv = 0.0
        inside = (la >= 0) & (la <= length_px)
        if inside.sum() >= 6 and length_px >= 6:
            kb = (la[inside] // 3).astype(np.int64)
            pp, ww = lp[inside], lw[inside]
            nb = int(kb.max()) + 1
            sw = np.bincount(kb, weights=ww, minlength=nb)
            m1 = np.bincount(kb, weights=ww * pp, minlength=nb) / np.maximum(sw, 1e-9)
            m2 = np.bincount(kb, weights=ww * pp * pp, minlength=nb) / np.maximum(sw, 1e-9)
            okb = sw > 0
            ridge = math.sqrt(float(np.average((m1[okb] - np.average(m1[okb], weights=sw[okb])) ** 2, weights=sw[okb])))
            local = math.sqrt(float(np.average(np.clip(m2[okb] - m1[okb] ** 2, 0, None), weights=sw[okb])))
            curv = ridge / max(local, 1.0)
        # Each criterion is a soft step that is 0.5 at its threshold; the score is the weakest.
        v_log = math.log(speed) if speed is not None and speed > 0 else -math.inf
        score = min(
            _sig((length_as - p.min_length_arcsec) / (0.2 * p.min_length_arcsec)),
            _sig((growth_px * scale - p.min_growth_arcsec) / (0.2 * p.min_growth_arcsec)),
            _sig((p.max_first_fraction - first_frac) / 0.06),
            _sig((elong - p.min_elongation) / 0.25),
            _sig((n - p.min_frames + 0.5) / 0.4),
            _sig((n_adv - p.min_advances + 0.5) / 0.25),
            _sig((p.max_curvature - curv) / 0.15),
            _sig((p.max_jump_fraction - jump) / 0.05),
            _sig((tr.zpeak - p.min_peak_sigma) / 1.5),
            _sig((coverage - p.min_axis_coverage) / 0.04),
            _sig((v_log - math.log(p.min_speed_km_s)) / 0.15),
            _sig((math.log(p.max_speed_km_s) - v_log) / 0.15),
        )
        bx, by = float(base[0]), float(base[1])
        fr = g.frame()
        tx, ty = fr.pixel_to_hpc(bx, by)
        txf, tyf = float(tx), float(ty)
        rr = math.hypot(txf, tyf) / g.rsun
        direction = float(position_angle(ax[0], ax[1]))
        if abs(rr - 1.0) < p.limb_band:
            radial = float(position_angle(txf, tyf))
            off = abs((direction - radial + 180.0) % 360.0 - 180.0)
            if abs(off - 90.0) < p.limb_tangential_deg:
                score *= 0.2
        lat, lon = hpc_to_hgs(txf, tyf, fr)
        kpeak = int(np.argmax(tr.zsum))
        det = JetDetection(
            base_px=(bx, by),
            base_hpc_arcsec=(txf, tyf),
            direction_deg=direction,
            length_arcsec=length_as,
            speed_km_s=speed,
            start_t=float(t[0]),
            peak_t=float(t[kpeak]),
            end_t=float(t[-1]),
            score=float(min(max(score, 0.0), 1.0)),
            detector="baseline",
            n_frames=n,
            hgs_lat=float(lat),
            hgs_lon=float(lon),
            on_disk=bool(rr < 1.0),
        )
        feats = {
            "length_arcsec": length_as,
            "growth_arcsec": growth_px * scale,
            "first_fraction": first_frac,
            "elongation": elong,
            "n_frames": float(n),
            "n_advances": float(n_adv),
            "speed_km_s": speed if speed is not None else math.nan,
            "r_over_rsun": rr,
            "zpeak": tr.zpeak,
            "axis_coverage": coverage,
            "curvature": curv,
            "jump_fraction": jump,
        }
        return det, det.score, feats

    def _km_per_arcsec(self) -> float:
        g = self._geom
        return km_per_arcsec(g.dsun if g is not None else 1.496e11)


class BaselineDetector:
    """Detect jets in a window of frames (e.g. 30 frames at 24 s) with the physics baseline.

    Parameters
    ----------
    params : BaselineParams or None
    """

    name = "baseline"

    def __init__(self, params: BaselineParams | None = None) -> None:
        self.params = params or BaselineParams()

    def detect(self, frames: Sequence[PooledFrame]) -> list[JetDetection]:
        """The jets in ``frames`` (one field of view, in time order), best score first.

        Raises
        ------
        UsageError
            For fewer than 3 frames or frames out of time order.
        """
        return self.detect_scored(frames)[0]

    def detect_scored(self, frames: Sequence[PooledFrame]) -> tuple[list[JetDetection], float]:
        """The jets in ``frames`` and the window's score (the best score of any track, 0 without one).

        The window score ranks windows for ROC curves and threshold tuning; the detections are
        the tracks at or above ``params.score_threshold``.
        """
        if len(frames) < 3:
            msg = f"the baseline needs at least 3 frames (got {len(frames)})"
            raise UsageError(msg)
        tr = BaselineTracker(self.params)
        dets: list[JetDetection] = []
        for f in frames:
            dets += tr.update(f)
        dets += tr.flush()
        return sorted(dets, key=lambda d: -d.score), float(tr.best_score)
