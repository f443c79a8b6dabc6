"""Per-tile cache of jet-encoder features, so each new 304 frame costs one encoder pass.

The jet head reads T feature vectors 24 s apart (30 nominal). AIA takes 304 every 12 s, so the
cache keeps the features of every frame pushed and, for each step, picks the frames nearest to
the slots ``t_end, t_end - 24 s, ...`` back from the newest frame: consecutive windows use
the two interleaved 12 s phases and a new answer comes every frame. A window is ready for
:class:`heliowatch.models.runtime.Runtime` of ``jet-head`` as it comes.

Gaps: a slot with no valid frame within ``tolerance_s`` is filled by linear interpolation of
its neighbours' features (in time) and flagged; a run of more than ``max_gap`` missing slots
ends the window (its older part is not used), as does the cache's own start. Windows with
fewer than ``min_frames`` real frames are not ready. Frames arriving out of order are inserted
by time; a frame older than the oldest slot of the newest window is dropped (it can never be
used), as is anything older than that kept in memory. Memory: features only, e.g. the whole
disk (217 tiles x 64 float32) for 60 frames is 3.3 MB.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from heliowatch.models.core.errors import ModelError

__all__ = ["FeatureCache", "WindowInfo"]


@dataclass(frozen=True)
class WindowInfo:
    """What a window holds and how it was made.

    Attributes
    ----------
    ready : bool
        At least ``min_frames`` real frames: the head may run on it.
    slot_times : ndarray
        (T,) nominal times of the slots, unix seconds, oldest first.
    frame_times : ndarray
        (T,) time of the frame filling each slot; NaN where interpolated.
    mask : ndarray
        (T,) True where a real frame fills the slot.
    n_frames : int
        Real frames in the window.
    n_filled : int
        Slots filled by interpolation (gaps within ``max_gap``).
    short : bool
        Fewer slots than the nominal length (cache start, or cut by a long gap).
    reset : bool
        A gap longer than ``max_gap`` slots cut the window.
    reason : str
        Why the window is not ready ('' when it is).
    """

    ready: bool
    slot_times: np.ndarray
    frame_times: np.ndarray
    mask: np.ndarray
    n_frames: int
    n_filled: int
    short: bool
    reset: bool
    reason: str = ""

    @property
    def degraded(self) -> bool:
        """Shorter than nominal or with filled gaps: outputs made from it should say so."""
        return self.short or self.n_filled > 0

    @property
    def t_end(self) -> float:
        """Time of the newest slot (the frame the answer is for), NaN if empty."""
        return float(self.slot_times[-1]) if self.slot_times.size else math.nan


class FeatureCache:
    """Per-tile features of recent frames, by frame time.

    Parameters
    ----------
    n_tiles : int
        Tiles of the grid (rows of every feature array pushed).
    n_features : int
        Features per tile (64 for the shipped encoder).
    length : int
        Nominal window length in slots (30).
    spacing_s : float
        Time between slots (24 s: every second 12 s AIA frame).
    tolerance_s : float or None
        How far a frame may be from a slot's nominal time to fill it (default a quarter of the
        spacing, 6 s: AIA's jitter is ~1 s, the other 12 s phase is 12 s away).
    max_gap : int
        Longest run of consecutive missing slots filled by interpolation; a longer one ends
        the window.
    max_frames : int or None
        Hard cap on frames kept (oldest dropped first); default ``4 * length`` (a 12 s stream
        needs ``2 * length``).
    """

    def __init__(
        self,
        n_tiles: int,
        n_features: int,
        *,
        length: int = 30,
        spacing_s: float = 24.0,
        tolerance_s: float | None = None,
        max_gap: int = 2,
        max_frames: int | None = None,
    ) -> None:
        if n_tiles < 1 or n_features < 1 or length < 1 or spacing_s <= 0 or max_gap < 0:
            msg = (
                f"feature cache needs positive tiles, features, length and spacing and max_gap >= 0 "
                f"(got {n_tiles}, {n_features}, {length}, {spacing_s}, {max_gap})"
            )
            raise ModelError(msg)
        self.n_tiles = n_tiles
        self.n_features = n_features
        self.length = length
        self.spacing_s = float(spacing_s)
        self.tolerance_s = float(tolerance_s) if tolerance_s is not None else self.spacing_s / 4
        if not 0 < self.tolerance_s < self.spacing_s / 2:
            msg = f"tolerance_s must be in (0, spacing_s / 2) (got {self.tolerance_s} for spacing {self.spacing_s})"
            raise ModelError(msg)
        self.max_gap = max_gap
        self.max_frames = max_frames or 4 * length
        self._times: list[float] = []  # sorted
        self._feats: list[np.ndarray | None] = []  # None: the frame exists but was not valid
        self.dropped = 0

    # -- state ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._times)

    @property
    def span_s(self) -> float:
        """Time from the oldest slot of a full window to its newest, plus the tolerance."""
        return (self.length - 1) * self.spacing_s + self.tolerance_s

    @property
    def nbytes(self) -> int:
        """Memory held by the cached features."""
        return sum(f.nbytes for f in self._feats if f is not None)

    @property
    def newest(self) -> float:
        """Time of the newest frame pushed (NaN when empty)."""
        return self._times[-1] if self._times else math.nan

    def reset(self) -> None:
        """Forget every frame (a new tile grid, a restart of the stream)."""
        self._times.clear()
        self._feats.clear()

    # -- input ---------------------------------------------------------------------------
    def push(self, t_unix: float, features: np.ndarray | None, valid: bool = True) -> str:
        """Add one frame's features.

        Parameters
        ----------
        t_unix : float
            Frame time (T_OBS) in unix seconds.
        features : ndarray or None
            (n_tiles, n_features) encoder output; ignored (may be None) when not ``valid``.
        valid : bool
            False for a frame known to be unusable (bad QUALITY, failed read): its slot is a gap.

        Returns
        -------
        str
            ``added``, ``inserted`` (out of order, placed by time), ``replaced`` (same time
            pushed again), or ``dropped`` (older than any window can use).

        Raises
        ------
        ModelError
            If a valid frame's features have the wrong shape or are not finite.
        """
        t = float(t_unix)
        f: np.ndarray | None = None
        if valid:
            if features is None:
                msg = "a valid frame needs its features"
                raise ModelError(msg)
            f = np.asarray(features, dtype=np.float32)
            if f.shape != (self.n_tiles, self.n_features):
                msg = f"features of shape {f.shape} do not fit the cache ({self.n_tiles} tiles x {self.n_features})"
                raise ModelError(msg)
            if not np.isfinite(f).all():
                msg = "encoder features are not finite"
                raise ModelError(msg)
            f = f.copy()  # the caller may reuse its buffer
        if self._times and t < self._times[-1] - self.span_s:
            self.dropped += 1
            return "dropped"
        i = bisect.bisect_left(self._times, t)
        # The same frame pushed twice (a re-delivered record) replaces, never duplicates.
        for j in (i - 1, i):
            if 0 <= j < len(self._times) and abs(self._times[j] - t) < 0.5:
                self._times[j], self._feats[j] = t, f
                return "replaced"
        status = "added" if i == len(self._times) else "inserted"
        self._times.insert(i, t)
        self._feats.insert(i, f)
        self._prune()
        return status

    def _prune(self) -> None:
        horizon = self._times[-1] - self.span_s
        k = bisect.bisect_left(self._times, horizon)
        k = max(k, len(self._times) - self.max_frames)
        if k > 0:
            del self._times[:k]
            del self._feats[:k]

    # -- output --------------------------------------------------------------------------
    def _match(self, slot: float) -> int | None:
        """Index of the valid frame nearest to ``slot`` within the tolerance."""
        i = bisect.bisect_left(self._times, slot - self.tolerance_s)
        best, best_d = None, math.inf
        while i < len(self._times) and self._times[i] <= slot + self.tolerance_s:
            d = abs(self._times[i] - slot)
            if self._feats[i] is not None and d < best_d:
                best, best_d = i, d
            i += 1
        return best

    def window(self, min_frames: int = 10, *, end_t: float | None = None) -> tuple[np.ndarray, WindowInfo]:
        """The features of the window ending at the newest valid frame (or at ``end_t``).

        Parameters
        ----------
        min_frames : int
            Fewest real frames for the window to be ready (10: shorter windows are refused).
        end_t : float, optional
            End the window at the valid frame nearest this time instead of the newest.

        Returns
        -------
        features : ndarray, shape (n_tiles, T, n_features), float32
            Oldest slot first, gaps filled; T = 0 when there is no frame at all.
        info : WindowInfo
            Slots, mask and flags (``info.ready`` says whether to run the head).
        """
        empty = np.zeros(0)
        none = (
            np.zeros((self.n_tiles, 0, self.n_features), np.float32),
            WindowInfo(False, empty, empty, empty.astype(bool), 0, 0, True, False, "no frames"),
        )
        valid_idx = [i for i, f in enumerate(self._feats) if f is not None]
        if not valid_idx:
            return none
        if end_t is None:
            end = valid_idx[-1]
        else:
            end = min(valid_idx, key=lambda i: abs(self._times[i] - end_t))
        t_end = self._times[end]
        slots: list[int | None] = []
        reset = False
        run = 0
        for k in range(self.length):
            idx = end if k == 0 else self._match(t_end - k * self.spacing_s)
            if idx is None:
                run += 1
                if run > self.max_gap:
                    # A cut, not the cache's start, if real frames exist before the run of gaps.
                    reset = self._times[valid_idx[0]] < t_end - (k - run + 1) * self.spacing_s - self.tolerance_s
                    break
            else:
                run = 0
            slots.append(idx)
        while slots and slots[-1] is None:  # a window starts on a real frame
            slots.pop()
        slots.reverse()  # oldest first
        n = len(slots)
        slot_times = t_end - self.spacing_s * np.arange(n - 1, -1, -1, dtype=np.float64)
        mask = np.array([s is not None for s in slots], dtype=bool)
        frame_times = np.array([self._times[s] if s is not None else math.nan for s in slots], dtype=np.float64)
        feats = np.empty((self.n_tiles, n, self.n_features), dtype=np.float32)
        for k, s in enumerate(slots):
            if s is not None:
                f = self._feats[s]
                assert f is not None
                feats[:, k] = f
        _fill_gaps(feats, mask)
        n_real = int(mask.sum())
        reason = "" if n_real >= min_frames else f"{n_real} frames in the window, {min_frames} needed"
        info = WindowInfo(
            ready=not reason,
            slot_times=slot_times,
            frame_times=frame_times,
            mask=mask,
            n_frames=n_real,
            n_filled=n - n_real,
            short=n < self.length,
            reset=reset,
            reason=reason,
        )
        return feats, info


def _fill_gaps(feats: np.ndarray, mask: np.ndarray) -> None:
    """Linear interpolation in time of the masked slots from their nearest real neighbours (in place)."""
    real = np.flatnonzero(mask)
    for k in np.flatnonzero(~mask):
        j = int(np.searchsorted(real, k))
        a, b = real[j - 1], real[j]  # a window starts and ends on real frames, so both exist
        w = (k - a) / (b - a)
        feats[:, k] = (1 - w) * feats[:, a] + w * feats[:, b]
