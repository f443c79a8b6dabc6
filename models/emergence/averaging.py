"""Running temporal averages of tracked patches on a fixed time grid.

The seed's inputs are HEAR datacubes (Schunker et al. 2016): magnetograms averaged over 410 min
(~34 frames at 720 s), a new cube every 320 min, so consecutive windows overlap by 90 min. Here
window ``k`` covers ``[anchor + k * stride, anchor + k * stride + window)`` for every patch alike;
a small ``stride`` gives a sliding average (memory grows as ``window / stride`` open windows).

What can go wrong in a live stream, and what happens:

- **missing frames** (a frame not delivered, or a patch skipped in a frame because it reached
  the limb or had too few valid pixels): tolerated and counted per patch and window
  (``n_frames`` of ``n_expected`` cadence slots); a window with less than ``min_fraction`` of its
  slots is dropped with the reason;
- **a long gap** (more than ``max_gap_s`` since the previous frame, e.g. a data outage of
  hours): the open windows are closed (emitted if they already hold enough frames, else dropped)
  and averaging restarts; every window until a patch has a contiguous predecessor again is
  flagged ``restarted`` and carries no ``previous`` average (the unsigned-flux trend of the
  MTOT baseline needs one). The step reports ``restarted`` and the gap;
- **a frame off the cadence grid** (not a multiple of ``cadence_s`` from the first frame):
  averaged like the others and reported in the step's ``flags``;
- **a duplicate or out-of-order frame**: ignored, with the reason; nothing raises.

Times are seconds on any uniform scale (Unix seconds of the UTC T_REC are what the product
uses); :meth:`PatchAverager.add_patches` takes them from the frame's ``t_rec_utc``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import iso_utc, unix_from_iso
from heliowatch.models.emergence.patches import PatchSet

__all__ = ["AveragerStep", "AveragingConfig", "PatchAverager", "WindowAverage"]


@dataclass(frozen=True)
class AveragingConfig:
    """The averaging time grid.

    Attributes
    ----------
    window_s : float
        Length of an averaging window (seed: 410 min).
    stride_s : float
        Start-to-start spacing of windows (seed: 320 min; a few cadences for a sliding average).
    cadence_s : float
        Cadence of the input frames (HMI: 720 s).
    min_fraction : float
        Smallest fraction of a window's cadence slots a patch must have to be emitted.
    max_gap_s : float
        A longer gap between consecutive frames restarts the averaging.
    anchor_s : float
        Start time of window 0 (the grid is shared by all patches).
    off_cadence_tol_s : float
        A frame further than this from the cadence grid is flagged ``off_cadence``.
    """

    window_s: float = 410 * 60.0
    stride_s: float = 320 * 60.0
    cadence_s: float = 720.0
    min_fraction: float = 0.7
    max_gap_s: float = 3 * 3600.0
    anchor_s: float = 0.0
    off_cadence_tol_s: float = 60.0

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.stride_s <= 0 or self.cadence_s <= 0:
            got = f"{self.window_s}, {self.stride_s}, {self.cadence_s}"
            msg = f"averaging: window_s, stride_s and cadence_s must be > 0 (got {got})"
            raise UsageError(msg)
        if not 0 < self.min_fraction <= 1:
            msg = f"averaging: min_fraction must be in (0, 1] (got {self.min_fraction})"
            raise UsageError(msg)
        if self.max_gap_s < self.cadence_s:
            msg = f"averaging: max_gap_s ({self.max_gap_s}) must be at least the cadence ({self.cadence_s})"
            raise UsageError(msg)

    @property
    def nominal_frames(self) -> int:
        """Frames in a window on average (``window_s / cadence_s`` rounded: 34 for the seed)."""
        return round(self.window_s / self.cadence_s)


@dataclass
class WindowAverage:
    """The average of one patch over one window.

    Attributes
    ----------
    patch_id : str
        The patch (Carrington grid point).
    k : int
        Window index on the grid.
    t_start_s, t_end_s : float
        Window bounds (seconds, the averager's time scale).
    data : ndarray (size, size), float32
        Mean field (Gauss); NaN where no frame had data.
    n_frames, n_expected : int
        Frames averaged and cadence slots in the window.
    restarted : bool
        No contiguous previous window of this patch (start of data, or after a restart).
    after_gap : bool
        The first window of this patch after a gap restarted the averaging.
    previous : ndarray or None
        The patch's average over window ``k - 1`` (None when ``restarted``).
    lat, carrington_lon, hgs_lon, mu_centre : float
        Patch centre; Stonyhurst longitude and centre mu averaged over the window's frames.
    """

    patch_id: str
    k: int
    t_start_s: float
    t_end_s: float
    data: np.ndarray
    n_frames: int
    n_expected: int
    restarted: bool
    previous: np.ndarray | None
    lat: float
    carrington_lon: float
    hgs_lon: float
    mu_centre: float
    after_gap: bool = False

    @property
    def t_mid_s(self) -> float:
        """Middle of the window."""
        return 0.5 * (self.t_start_s + self.t_end_s)

    @property
    def t_mid_utc(self) -> str:
        """Middle of the window as UTC ISO 8601 (when the time scale is Unix seconds)."""
        return iso_utc(self.t_mid_s)

    @property
    def n_missing(self) -> int:
        """Cadence slots without a frame of this patch."""
        return max(0, self.n_expected - self.n_frames)


@dataclass
class AveragerStep:
    """What one call of :meth:`PatchAverager.add` did.

    Attributes
    ----------
    completed : list of WindowAverage
        Windows finished by this frame (their end passed) and kept.
    dropped : list of (patch_id, k, reason)
        Windows finished but not kept.
    restarted : bool
        This frame restarted the averaging after a gap of ``gap_s`` seconds.
    ignored : str or None
        Why the frame was not used (duplicate, out of order, bad time), else None.
    flags : list of str
        Other remarks (``off_cadence``).
    """

    completed: list[WindowAverage] = field(default_factory=list)
    dropped: list[tuple[str, int, str]] = field(default_factory=list)
    restarted: bool = False
    gap_s: float | None = None
    ignored: str | None = None
    flags: list[str] = field(default_factory=list)


@dataclass
class _Acc:
    total: np.ndarray
    count: np.ndarray
    n: int
    lat: float
    carrington_lon: float
    hgs_lon_sum: float
    mu_sum: float


@dataclass
class _Window:
    k: int
    start: float
    end: float
    restarted_after: float | None
    patches: dict[str, _Acc] = field(default_factory=dict)


class PatchAverager:
    """Accumulate tracked patches frame by frame into the windows of an :class:`AveragingConfig` grid."""

    def __init__(self, config: AveragingConfig | None = None) -> None:
        self.config = config or AveragingConfig()
        self._open: dict[int, _Window] = {}
        self._last_t: float | None = None
        self._phase: float | None = None
        self._last_kept: dict[str, tuple[int, np.ndarray]] = {}
        self._restart_t: float | None = None
        #: Running totals: frames used, ignored, restarts, windows kept and dropped.
        self.counters = {"frames": 0, "ignored": 0, "restarts": 0, "off_cadence": 0, "kept": 0, "dropped": 0}

    def _windows_of(self, t: float) -> range:
        c = self.config
        x = (t - c.anchor_s) / c.stride_s
        k_hi = math.floor(x + 1e-9)
        k_lo = math.floor((t - c.anchor_s - c.window_s) / c.stride_s + 1e-9) + 1
        return range(k_lo, k_hi + 1)

    def _expected(self, start: float, end: float) -> int:
        cad = self.config.cadence_s
        ph = self._phase if self._phase is not None else 0.0
        first = math.ceil((start - ph) / cad - 1e-9)
        last = math.ceil((end - ph) / cad - 1e-9) - 1
        return max(1, last - first + 1)

    def add_patches(self, patches: PatchSet, t_s: float | None = None) -> AveragerStep:
        """Add one frame's :class:`~heliowatch.models.emergence.patches.PatchSet` (time from its ``t_rec_utc``)."""
        if t_s is None:
            try:
                t_s = unix_from_iso(patches.t_rec_utc)
            except ValueError:
                return self._ignore(f"frame time {patches.t_rec_utc!r} is not a time")
        meta = (
            np.column_stack(
                [
                    patches.lat,
                    patches.carrington_lon,
                    patches.hgs_lon,
                    patches.mu[:, patches.mu.shape[1] // 2, patches.mu.shape[2] // 2],
                ]
            )
            if len(patches)
            else np.zeros((0, 4))
        )
        return self.add(t_s, patches.ids, patches.data, meta=meta)

    def add(self, t_s: float, ids: Sequence[str], data: np.ndarray, *, meta: np.ndarray | None = None) -> AveragerStep:
        """Add one frame.

        Parameters
        ----------
        t_s : float
            Frame time (seconds).
        ids : sequence of str
            Patch ids, one per ``data`` row.
        data : ndarray (N, size, size)
            The patches (NaN where no data).
        meta : ndarray (N, 4) or None
            Per patch: latitude, Carrington longitude, Stonyhurst longitude, centre mu.

        Returns
        -------
        AveragerStep
        """
        c = self.config
        if not isinstance(t_s, int | float) or not math.isfinite(t_s):
            return self._ignore(f"frame time {t_s!r} is not a finite number")
        arr = np.asarray(data)
        if arr.ndim != 3 or len(arr) != len(ids):
            return self._ignore(f"patch stack of shape {arr.shape} does not match {len(ids)} ids")
        step = AveragerStep()
        if self._last_t is not None:
            if t_s <= self._last_t:
                return self._ignore(
                    f"frame at {t_s:.0f} s is not after the previous one ({self._last_t:.0f} s): duplicate or out of order"
                )
            gap = t_s - self._last_t
            if gap > c.max_gap_s:
                self._close_all(step, f"open across a gap of {gap / 3600:.1f} h")
                step.restarted, step.gap_s = True, gap
                self.counters["restarts"] += 1
                self._phase = None
                self._last_kept.clear()
                self._restart_t = t_s
        if self._phase is None:
            self._phase = t_s % c.cadence_s
        else:
            off = (t_s - self._phase) % c.cadence_s
            if min(off, c.cadence_s - off) > c.off_cadence_tol_s:
                step.flags.append("off_cadence")
                self.counters["off_cadence"] += 1
        self._finish(step, t_s)
        for k in self._windows_of(t_s):
            w = self._open.get(k)
            if w is None:
                start = c.anchor_s + k * c.stride_s
                w = self._open[k] = _Window(k, start, start + c.window_s, self._restart_t)
            for i, pid in enumerate(ids):
                d = arr[i]
                fin = np.isfinite(d)
                acc = w.patches.get(pid)
                if acc is None:
                    lat, lon = (float(meta[i, 0]), float(meta[i, 1])) if meta is not None else (math.nan, math.nan)
                    acc = w.patches[pid] = _Acc(np.zeros(d.shape, np.float64), np.zeros(d.shape, np.int32), 0, lat, lon, 0.0, 0.0)
                acc.total += np.where(fin, d, 0.0)
                acc.count += fin
                acc.n += 1
                if meta is not None:
                    acc.hgs_lon_sum += float(meta[i, 2])
                    acc.mu_sum += float(meta[i, 3])
        self._last_t = t_s
        self.counters["frames"] += 1
        return step

    def flush(self) -> AveragerStep:
        """Close every open window (end of the data): kept if it holds enough frames."""
        step = AveragerStep()
        self._close_all(step, "incomplete at the end of the data")
        return step

    def _ignore(self, why: str) -> AveragerStep:
        self.counters["ignored"] += 1
        return AveragerStep(ignored=why)

    def _finish(self, step: AveragerStep, t_s: float) -> None:
        for k in sorted(k for k, w in self._open.items() if w.end <= t_s):
            self._emit(self._open.pop(k), step, "")

    def _close_all(self, step: AveragerStep, why: str) -> None:
        for k in sorted(self._open):
            self._emit(self._open.pop(k), step, why)

    def _emit(self, w: _Window, step: AveragerStep, why: str) -> None:
        c = self.config
        n_exp = self._expected(w.start, w.end)
        for pid in sorted(w.patches):
            acc = w.patches[pid]
            if acc.n < c.min_fraction * n_exp:
                reason = f"{acc.n} of {n_exp} frames (< {100 * c.min_fraction:.0f} %)" + (f"; {why}" if why else "")
                step.dropped.append((pid, w.k, reason))
                self.counters["dropped"] += 1
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(acc.count > 0, acc.total / np.maximum(acc.count, 1), np.nan).astype(np.float32)
            prev = self._last_kept.get(pid)
            contiguous = prev is not None and prev[0] == w.k - 1
            step.completed.append(
                WindowAverage(
                    patch_id=pid,
                    k=w.k,
                    t_start_s=w.start,
                    t_end_s=w.end,
                    data=mean,
                    n_frames=acc.n,
                    n_expected=n_exp,
                    restarted=not contiguous,
                    previous=prev[1] if contiguous and prev is not None else None,
                    lat=acc.lat,
                    carrington_lon=acc.carrington_lon,
                    hgs_lon=acc.hgs_lon_sum / acc.n,
                    mu_centre=acc.mu_sum / acc.n,
                    after_gap=not contiguous and w.restarted_after is not None,
                )
            )
            self._last_kept[pid] = (w.k, mean)
            self.counters["kept"] += 1
