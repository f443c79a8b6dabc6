"""Jet detection on a stream of pooled 304 A frames: both detectors, one set of events.

:class:`JetStream` is what the daemon's jet product and ``heliowatch jets`` run. Each frame
pushed goes, in time order, through:

1. **reordering**: frames may arrive out of time order (NRT AIA does); they wait
   ``reorder_hold_s`` of data time and are released oldest first; one older than a released
   frame is late and dropped (counted);
2. **geometry**: a frame whose pointing differs from the previous one's by less than half a
   pooled pixel keeps the previous geometry (lev-1 pointing jitters by a fraction of a pixel;
   a new grid would restart both detectors); a larger change, another size or plate scale
   resets them;
3. **network** (when an encoder and a head are given): every frame's tiles through the
   encoder once, features cached (:class:`~heliowatch.models.jets.cache.FeatureCache`), the
   head over each tile's window of 30 cached feature vectors 24 s apart. A tile's run of
   windows at or above the threshold is one network detection, located at the strongest
   brightening of the tile (the network says *whether*, the difference image *where*);
4. **baseline**: every frame on the 24 s grid through the
   :class:`~heliowatch.models.jets.baseline.BaselineTracker`;
5. **events**: detections of both detectors, all tiles and windows merged
   (:func:`~heliowatch.models.jets.events.linked`: near each other's jet, or a baseline base
   inside the tile a network detection came from); an event is closed (and returned, with
   cutouts of the frames around it for the movie strip) once nothing was seen of it for
   ``close_after_s`` and no network run or baseline track is still open near it.

A ring of the last ``ring_frames`` frames on the 24 s grid is kept for the cutouts (30 pooled
full disks, about 220 MB).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from heliowatch.models.jets.baseline import BaselineParams, BaselineTracker, JetDetection
from heliowatch.models.jets.cache import FeatureCache, WindowInfo
from heliowatch.models.jets.events import JetEvent, event_of, linked
from heliowatch.models.jets.frames import PooledFrame, hpc_to_hgs
from heliowatch.models.jets.tiles import TileGrid, cut

__all__ = ["EventCutout", "JetStream", "StepResult", "StreamParams"]

#: ``(n, 1, 166, 166) -> (n, F)`` and ``(n, T, F) -> (n,)`` or ``(n, 1)``.
Encoder = Callable[[np.ndarray], np.ndarray]
Head = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class StreamParams:
    """How the stream cuts windows and closes events.

    Attributes
    ----------
    spacing_s : float
        Time between the frames of a window (24 s: every second 12 s AIA frame).
    length : int
        Frames in a full window (30, as Charlet et al.).
    min_frames : int
        Fewest real frames for a window to get a probability (shorter sequences are flagged).
    max_gap : int
        Missing frames in a row filled (and flagged) before a window is cut.
    threshold : float
        Network probability at which a tile fires (from the model card).
    close_after_s : float
        Quiet time after which an event is closed and emitted.
    reorder_hold_s : float
        Data time a frame waits for older, late frames (0: none, frames are in order).
    ring_frames : int
        Frames kept for cutouts.
    stride : int
        Tile stride in pooled pixels (83: half overlap).
    cutout_px : int
        Side of the movie-strip cutouts, pooled pixels (166: 300").
    confirm_windows : int
        Consecutive windows a tile must fire in before its jet is announced (the alert goes out
        then, within a frame or two of the network seeing it; the record follows at closing).
    network_alone_min_p : float
        An event only the network saw needs at least this probability (the baseline's
        corroboration is worth more than the threshold: over a jet-free synthetic disk the
        network alone at its card threshold fires about a hundred times an hour).
    network_max_windows : int
        A tile firing for more windows than this in a row sees something static (a jet's frames
        leave the window): the run is dropped, not made an event.
    """

    spacing_s: float = 24.0
    length: int = 30
    min_frames: int = 10
    max_gap: int = 2
    threshold: float = 0.5
    close_after_s: float = 150.0
    reorder_hold_s: float = 0.0
    ring_frames: int = 30
    stride: int = 83
    cutout_px: int = 166
    confirm_windows: int = 2
    network_alone_min_p: float = 0.99
    network_max_windows: int = 40


@dataclass
class EventCutout:
    """Frames around a closed event, cut around its base (for the strip, the GIF, the overview).

    Attributes
    ----------
    frames : ndarray
        (k, h, w) float32 DN/s, oldest first, north up, FITS order (row 0 south).
    times : ndarray
        (k,) unix seconds.
    reference : ndarray or None
        (h, w) the last frame before the event (the base of the base-difference overview).
    extent_hpc : (x0, x1, y0, y1)
        Helioprojective extent of the cutout, arcsec (pixel edges).
    """

    frames: np.ndarray
    times: np.ndarray
    reference: np.ndarray | None
    extent_hpc: tuple[float, float, float, float]


@dataclass
class StepResult:
    """What one released frame produced.

    Attributes
    ----------
    t_unix : float
        The frame's time (NaN for :meth:`JetStream.finish`).
    window : WindowInfo or None
        The network's window ending at this frame (None without a network).
    probabilities : ndarray or None
        (n_tiles,) P(jet) per tile, or None when the window is not ready.
    events : list of (JetEvent, EventCutout or None)
        Events closed by this step (final geometry and times).
    announced : list of (JetEvent, EventCutout or None)
        Jets confirmed by this step and still going on (provisional; alert now).
    seconds : dict
        Time per stage (``encoder``, ``head``, ``baseline``, ``merge``).
    late : bool
        The frame was older than one already released (dropped).
    reset : str
        Why the detectors restarted at this frame ('' when they did not).
    """

    t_unix: float
    window: WindowInfo | None = None
    probabilities: np.ndarray | None = None
    events: list[tuple[JetEvent, EventCutout | None]] = field(default_factory=list)
    announced: list[tuple[JetEvent, EventCutout | None]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    late: bool = False
    reset: str = ""


@dataclass
class _Run:
    start_t: float
    last_t: float
    peak_t: float
    p_max: float
    loc: tuple[float, float]  # hpc of the strongest brightening at the peak
    box: tuple[float, float, float, float]  # the tile, hpc arcsec
    windows: int = 1
    z_max: float = 0.0  # the strongest brightening's significance over the run


class JetStream:
    """Both jet detectors on one stream of frames of one field of view (see the module notes).

    Parameters
    ----------
    params : StreamParams or None
    encoder, head : callables or None
        The network (both or neither); None runs the baseline alone.
    baseline : BaselineParams or None
        The baseline's parameters; ``use_baseline=False`` runs the network alone.
    use_baseline : bool
    """

    def __init__(
        self,
        params: StreamParams | None = None,
        *,
        encoder: Encoder | None = None,
        head: Head | None = None,
        baseline: BaselineParams | None = None,
        use_baseline: bool = True,
    ) -> None:
        self.params = params or StreamParams()
        if (encoder is None) != (head is None):
            msg = "the jet network needs both its encoder and its head"
            raise ValueError(msg)
        self.encoder, self.head = encoder, head
        self.baseline_params = baseline or BaselineParams()
        self.use_baseline = use_baseline
        self.detectors = [d for d, on in (("baseline", use_baseline), ("convlstm", encoder is not None)) if on]
        self.late = 0
        self.resets = 0
        #: The highest tile probability of any window so far (a sequence's network score).
        self.max_probability = 0.0
        self._held: list[tuple[float, int, PooledFrame, tuple[str, ...]]] = []
        self._seq = 0
        self._released_t = -math.inf
        self._spaced_t = -math.inf
        self._ref: PooledFrame | None = None
        self.grid: TileGrid | None = None
        self._cache: FeatureCache | None = None
        self._tracker = BaselineTracker(self.baseline_params)
        self._runs: dict[int, _Run] = {}
        self._pending: list[JetDetection] = []
        self._ring: deque[PooledFrame] = deque(maxlen=self.params.ring_frames)
        self._flags: deque[tuple[float, tuple[str, ...]]] = deque(maxlen=4 * self.params.length)
        self._now = -math.inf
        #: Announced jets: (first time, base, key) - so an event is announced once and keeps its key.
        self._announced: list[tuple[float, tuple[float, float, float, float], str]] = []

    @property
    def memory(self) -> dict[str, float]:
        """Bytes held: the feature cache and the ring of pooled frames (``cache``, ``ring``, ``ring_frames``)."""
        return {
            "cache": float(self._cache.nbytes if self._cache is not None else 0),
            "ring": float(sum(f.data.nbytes for f in self._ring)),
            "ring_frames": float(len(self._ring)),
        }

    @property
    def baseline_score(self) -> float:
        """The best score of any baseline track judged so far (a sequence's baseline score, for ROC curves)."""
        return float(self._tracker.best_score)

    def was_announced(self, key: str) -> bool:
        """Whether an event of this key was announced (its alert has gone out)."""
        return any(k == key for _, _, k in self._announced)

    # -- input -------------------------------------------------------------------------------
    def push(self, frame: PooledFrame, *, degraded: Sequence[str] = ()) -> list[StepResult]:
        """Add one frame; returns the results of the frames released by it (oldest first).

        ``degraded`` lists why the frame's calibration is incomplete (carried to its events).
        """
        if frame.t_unix <= self._released_t:
            self.late += 1
            return [StepResult(frame.t_unix, late=True)]
        if any(abs(t - frame.t_unix) < 0.5 for t, *_ in self._held):
            return []  # the same frame delivered twice
        heapq.heappush(self._held, (frame.t_unix, self._seq, frame, tuple(degraded)))
        self._seq += 1
        newest = max(t for t, *_ in self._held)
        out = []
        while self._held and self._held[0][0] <= newest - self.params.reorder_hold_s:
            _, _, f, deg = heapq.heappop(self._held)
            out.append(self._step(f, deg))
        return out

    def finish(self) -> list[StepResult]:
        """End of the stream: release held frames, close every track, run and event."""
        out = []
        while self._held:
            _, _, f, deg = heapq.heappop(self._held)
            out.append(self._step(f, deg))
        last = StepResult(math.nan)
        dets = self._tracker.flush() if self.use_baseline else []
        dets += [self._close_run(r) for r in self._runs.values()]
        self._runs.clear()
        self._pending += dets
        last.events = self._close_events(force=True)
        out.append(last)
        return out

    # -- one frame ---------------------------------------------------------------------------
    def _geometry(self, frame: PooledFrame) -> tuple[PooledFrame, str]:
        ref = self._ref
        if ref is None:
            self._ref = frame
            return frame, "start"
        half = 0.5 * ref.arcsec_per_px
        same = (
            frame.shape == ref.shape
            and math.isclose(frame.arcsec_per_px, ref.arcsec_per_px, rel_tol=1e-3)
            and abs(frame.x0_arcsec - ref.x0_arcsec) < half
            and abs(frame.y0_arcsec - ref.y0_arcsec) < half
        )
        if same:
            return dataclasses.replace(frame, x0_arcsec=ref.x0_arcsec, y0_arcsec=ref.y0_arcsec), ""
        self._ref = frame
        return (
            frame,
            f'geometry changed ({ref.shape} at {ref.arcsec_per_px:.2f}"/px -> {frame.shape} at {frame.arcsec_per_px:.2f}"/px)',
        )

    def _step(self, frame: PooledFrame, degraded: tuple[str, ...]) -> StepResult:
        self._released_t = frame.t_unix
        self._now = frame.t_unix
        frame, why = self._geometry(frame)
        res = StepResult(frame.t_unix, reset="" if why in ("", "start") else why)
        if res.reset:
            self.resets += 1
            closed = self._tracker.flush() if self.use_baseline else []
            closed += [self._close_run(r) for r in self._runs.values()]
            self._runs.clear()
            self._pending += closed
            # The old field of view's events end here, drawn from the frames they were seen in.
            res.events = self._close_events(force=True)
            self._ring.clear()
            self.grid = None
        if self.grid is None:
            self.grid = TileGrid.for_frame(frame, stride=self.params.stride)
            self._cache = None
        self._flags.append((frame.t_unix, degraded))
        on_grid = frame.t_unix - self._spaced_t >= self.params.spacing_s * 0.75
        if on_grid:
            self._spaced_t = frame.t_unix
        if self.encoder is not None and self.head is not None:
            self._network(frame, res)
        if self.use_baseline and on_grid:
            t0 = time.perf_counter()
            self._pending += self._tracker.update(frame)
            res.seconds["baseline"] = time.perf_counter() - t0
        if on_grid and frame.valid:
            self._ring.append(frame)
        t0 = time.perf_counter()
        res.announced = self._announce()
        res.events += self._close_events(force=False)
        res.seconds["merge"] = time.perf_counter() - t0
        return res

    def _network(self, frame: PooledFrame, res: StepResult) -> None:
        assert self.grid is not None
        assert self.encoder is not None
        assert self.head is not None
        p = self.params
        t0 = time.perf_counter()
        feats: np.ndarray | None = None
        if frame.valid:
            feats = np.asarray(self.encoder(cut(frame.data, self.grid)), dtype=np.float32).reshape(len(self.grid), -1)
        t1 = time.perf_counter()
        if self._cache is None:
            n_feat = feats.shape[1] if feats is not None else 64
            self._cache = FeatureCache(len(self.grid), n_feat, length=p.length, spacing_s=p.spacing_s, max_gap=p.max_gap)
        self._cache.push(frame.t_unix, feats, valid=frame.valid)
        window_feats, info = self._cache.window(p.min_frames)
        res.window = info
        probs: np.ndarray | None = None
        if info.ready:
            probs = np.asarray(self.head(window_feats), dtype=np.float64).reshape(-1)
            res.probabilities = probs
            self.max_probability = max(self.max_probability, float(probs.max()) if probs.size else 0.0)
        t2 = time.perf_counter()
        res.seconds["encoder"], res.seconds["head"] = t1 - t0, t2 - t1
        firing = set(np.flatnonzero(probs >= p.threshold).tolist()) if probs is not None else set()
        for i in list(self._runs):
            if i not in firing:
                ended = self._runs.pop(i)
                if ended.windows <= p.network_max_windows:
                    self._pending.append(self._close_run(ended))
        for i in sorted(firing):
            pi = float(probs[i]) if probs is not None else 0.0
            run = self._runs.get(i)
            if run is None:
                loc, z = self._brightening(frame, i)
                self._runs[i] = _Run(frame.t_unix, frame.t_unix, frame.t_unix, pi, loc, self._box(frame, i), z_max=z)
            else:
                run.last_t = frame.t_unix
                run.windows += 1
                loc, z = self._brightening(frame, i)
                run.z_max = max(run.z_max, z)
                if pi > run.p_max:
                    run.p_max, run.peak_t, run.loc = pi, frame.t_unix, loc

    def _brightening(self, frame: PooledFrame, tile: int) -> tuple[tuple[float, float], float]:
        """Helioprojective position of the strongest brightening in a tile since the window began, and its significance.

        The significance is the brightening over the robust spread of the tile's (smoothed)
        difference image: a tile the network fires on without any change in it (a static bright
        feature it mistakes for a jet) has none.
        """
        assert self.grid is not None
        t = self.grid.tiles[tile]
        now = np.asarray(frame.data[t.src], dtype=np.float32)
        old = next((f for f in self._ring if f.t_unix >= frame.t_unix - self.params.spacing_s * (self.params.length - 1)), None)
        diff = now - (np.asarray(old.data[t.src], dtype=np.float32) if old is not None else np.nanmedian(now))
        diff = ndimage.uniform_filter(np.nan_to_num(diff, nan=0.0), size=5)
        iy, ix = np.unravel_index(int(np.argmax(diff)), diff.shape)
        tx, ty = frame.pixel_to_hpc(t.src[1].start + ix, t.src[0].start + iy)
        mad = float(np.median(np.abs(diff - np.median(diff))))
        z = float(diff[iy, ix] - np.median(diff)) / max(1.4826 * mad, 1e-6)
        return (float(tx), float(ty)), z

    def _box(self, frame: PooledFrame, tile: int) -> tuple[float, float, float, float]:
        assert self.grid is not None
        t = self.grid.tiles[tile]
        x0, y0 = frame.pixel_to_hpc(t.src[1].start - 0.5, t.src[0].start - 0.5)
        x1, y1 = frame.pixel_to_hpc(t.src[1].stop - 0.5, t.src[0].stop - 0.5)
        return (float(x0), float(x1), float(y0), float(y1))

    def _close_run(self, run: _Run) -> JetDetection:
        ref = self._ref
        lat, lon = (math.nan, math.nan)
        if ref is not None:
            la, lo = hpc_to_hgs(run.loc[0], run.loc[1], ref)
            lat, lon = float(la), float(lo)
        return JetDetection(
            base_px=(math.nan, math.nan),
            base_hpc_arcsec=run.loc,
            direction_deg=0.0,
            length_arcsec=0.0,
            speed_km_s=None,
            start_t=run.start_t,
            peak_t=run.peak_t,
            end_t=run.last_t,
            score=run.p_max,
            detector="convlstm",
            hgs_lat=lat,
            hgs_lon=lon,
            on_disk=math.isfinite(lat),
            box_hpc_arcsec=run.box,
            n_frames=run.windows,
        )

    # -- events ------------------------------------------------------------------------------
    def _announcement(self, group: Sequence[JetDetection]) -> str | None:
        """The key of an announcement this group belongs to (same time, same area), or None."""
        t0, t1 = ev_window(group)
        for t, box, key in self._announced:
            if t0 - self.params.close_after_s <= t <= t1 + self.params.close_after_s and any(
                _in(d.base_hpc_arcsec, box) or (d.box_hpc_arcsec is not None and _overlap(d.box_hpc_arcsec, box)) for d in group
            ):
                return key
        return None

    def _announce(self) -> list[tuple[JetEvent, EventCutout | None]]:
        """Jets confirmed now: a baseline detection, or a tile firing in ``confirm_windows`` windows.

        Overlapping tiles firing together are one announcement (one jet seen by up to four
        tiles); the closed event keeps the announcement's key, so its alert is not repeated.
        """
        live = [
            self._close_run(r)
            for r in self._runs.values()
            if self.params.confirm_windows <= r.windows <= self.params.network_max_windows
            and r.p_max >= self.params.network_alone_min_p
        ]
        dets = [d for d in self._pending if d.detector == "baseline"] + live
        if not dets:
            return []
        l0 = self._ref.l0_deg if self._ref is not None else None
        out = []
        confirmed = {id(d) for d in dets}
        for g in _groups(dets + [d for d in self._pending if d.detector != "baseline"], tiles_overlap=True):
            if not any(id(d) in confirmed for d in g) or self._announcement(g) is not None:
                continue
            ev = event_of(g, l0_deg=l0)
            ev.degraded = bool(self._reasons(g))
            bx, by = ev.base_hpc_arcsec
            box = (bx - 100.0, bx + 100.0, by - 100.0, by + 100.0)
            for d in g:
                if d.box_hpc_arcsec is not None:
                    box = _union(box, d.box_hpc_arcsec)
            self._announced.append((ev_window(g)[0], box, ev.key))
            out.append((ev, self._cutout(ev, g)))
        horizon = self._now - 2 * self.params.length * self.params.spacing_s - self.params.close_after_s
        self._announced = [a for a in self._announced if a[0] >= horizon]
        return out

    def _credible(self, group: Sequence[JetDetection]) -> bool:
        """A baseline detection, or the network alone at ``network_alone_min_p`` in a transient run."""
        if any(d.detector == "baseline" for d in group):
            return True
        p = self.params
        return any(d.score >= p.network_alone_min_p and d.n_frames <= p.network_max_windows for d in group)

    def _reasons(self, group: Sequence[JetDetection]) -> list[str]:
        t0, t1 = ev_window(group)
        return sorted({r for t, rs in self._flags if t0 - 1 <= t <= t1 + 1 for r in rs})

    def _busy_near(self, base: tuple[float, float], radius: float = 100.0) -> bool:
        """Whether a network run is still open near ``base`` (the jet may go on)."""
        if not self._runs or self.grid is None:
            return False
        return any(
            math.hypot(r.loc[0] - base[0], r.loc[1] - base[1]) < radius
            or (r.box[0] <= base[0] <= r.box[1] and r.box[2] <= base[1] <= r.box[3])
            for r in self._runs.values()
        )

    def _close_events(self, *, force: bool) -> list[tuple[JetEvent, EventCutout | None]]:
        if not self._pending:
            return []
        l0 = self._ref.l0_deg if self._ref is not None else None
        groups = _groups(self._pending)
        out, keep = [], []
        for g in groups:
            quiet = self._now - max(d.end_t for d in g) > self.params.close_after_s
            if not force and (not quiet or any(self._busy_near(d.base_hpc_arcsec) for d in g)):
                keep += g
                continue
            if not self._credible(g):
                continue
            ev = event_of(g, l0_deg=l0)
            ev.degraded = bool(self._reasons(g))
            ev.key = self._announcement(g) or ev.key  # the key its alert went out under
            out.append((ev, self._cutout(ev, g)))
        self._pending = keep
        return out

    def _cutout(self, ev: JetEvent, group: list[JetDetection]) -> EventCutout | None:
        if not self._ring:
            return None
        t0, t1 = ev_window(group)
        frames = [f for f in self._ring if t0 - self.params.spacing_s <= f.t_unix <= t1 + self.params.spacing_s]
        before = [f for f in self._ring if f.t_unix < t0]
        ref_frame = before[-1] if before else None
        if not frames:
            frames = list(self._ring)[-1:]
        f0 = frames[0]
        x, y = f0.hpc_to_pixel(*ev.base_hpc_arcsec)
        h = self.params.cutout_px
        ny, nx = f0.shape
        ya = int(min(max(round(float(y)) - h // 2, 0), max(ny - h, 0)))
        xa = int(min(max(round(float(x)) - h // 2, 0), max(nx - h, 0)))
        sl = (slice(ya, ya + h), slice(xa, xa + h))
        cube = np.stack([np.asarray(f.data[sl], dtype=np.float32) for f in frames])
        s = f0.arcsec_per_px
        x_lo, y_lo = f0.pixel_to_hpc(xa - 0.5, ya - 0.5)
        ext = (float(x_lo), float(x_lo) + cube.shape[2] * s, float(y_lo), float(y_lo) + cube.shape[1] * s)
        ref = np.asarray(ref_frame.data[sl], dtype=np.float32) if ref_frame is not None else None
        return EventCutout(cube, np.array([f.t_unix for f in frames]), ref, ext)

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What survives a restart cheaply: detections not yet closed into events, counters."""
        return {
            "pending": [_det_json(d) for d in self._pending] + [_det_json(self._close_run(r)) for r in self._runs.values()],
            "announced": [[t, list(box), k] for t, box, k in self._announced],
            "late": self.late,
            "resets": self.resets,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` (the frame history itself is replayed by the caller)."""
        self._pending = [_det_from_json(d) for d in state.get("pending", [])]
        self._announced = [
            (float(t), (float(b[0]), float(b[1]), float(b[2]), float(b[3])), str(k)) for t, b, k in state.get("announced", [])
        ]
        self.late = int(state.get("late", 0))
        self.resets = int(state.get("resets", 0))


def ev_window(group: Sequence[JetDetection]) -> tuple[float, float]:
    """Start and end (unix) of a group of detections."""
    return min(d.start_t for d in group), max(d.end_t for d in group)


def _in(p: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    return box[0] <= p[0] <= box[1] and box[2] <= p[1] <= box[3]


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _union(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    return (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))


def _groups(dets: list[JetDetection], *, tiles_overlap: bool = False) -> list[list[JetDetection]]:
    """The detections linked into one event each (:func:`~heliowatch.models.jets.events.linked`).

    With ``tiles_overlap``, network detections at the same time in overlapping tiles are linked
    too (for announcements, which must not go out once per tile).
    """
    n = len(dets)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            a, b = dets[i], dets[j]
            near = linked(a, b) or (
                tiles_overlap
                and a.box_hpc_arcsec is not None
                and b.box_hpc_arcsec is not None
                and _overlap(a.box_hpc_arcsec, b.box_hpc_arcsec)
                and max(a.start_t, b.start_t) <= min(a.end_t, b.end_t) + 180.0
            )
            if near and find(i) != find(j):
                parent[find(j)] = find(i)
    out: dict[int, list[JetDetection]] = {}
    for i in range(n):
        out.setdefault(find(i), []).append(dets[i])
    return list(out.values())


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def _det_json(d: JetDetection) -> dict[str, Any]:
    return {k: _clean(v) for k, v in dataclasses.asdict(d).items()}


def _det_from_json(d: dict[str, Any]) -> JetDetection:
    def f(v: Any) -> float:
        return math.nan if v is None else float(v)

    return JetDetection(
        base_px=(f(d["base_px"][0]), f(d["base_px"][1])),
        base_hpc_arcsec=(f(d["base_hpc_arcsec"][0]), f(d["base_hpc_arcsec"][1])),
        direction_deg=f(d["direction_deg"]),
        length_arcsec=f(d["length_arcsec"]),
        speed_km_s=None if d.get("speed_km_s") is None else float(d["speed_km_s"]),
        start_t=f(d["start_t"]),
        peak_t=f(d["peak_t"]),
        end_t=f(d["end_t"]),
        score=f(d["score"]),
        detector=str(d["detector"]),
        n_frames=int(d.get("n_frames", 0)),
        hgs_lat=f(d.get("hgs_lat")),
        hgs_lon=f(d.get("hgs_lon")),
        on_disk=bool(d.get("on_disk", True)),
        box_hpc_arcsec=tuple(float(v) for v in d["box_hpc_arcsec"]) if d.get("box_hpc_arcsec") else None,  # type: ignore[arg-type]
    )
