"""The surface-flux-growth emergence warning: a causal streaming rule over one HARP's SHARP keywords.

The rule
--------
At each new keyword sample ``t`` of a HARP (``USFLUX`` in Mx, optionally ``AREA_ACR``) the
monitor forms the **trailing median** of the unsigned flux over ``(t - smooth_h, t]`` and fires
the first time that smoothed flux

1. is at least ``floor_mx``, and
2. is at least ``factor`` times the **minimum** smoothed flux over the trailing window
   ``(t - window_h, t]`` (for a HARP younger than the window: since its first sample),

and, if ``min_area_msh`` is set, the current ``AREA_ACR`` is at least that. Only samples at or
before ``t`` are ever read, so the firing time found on a series equals the one found on the
same series cut just after it (the daemon calls the same rule on NRT keywords as they arrive).

Default parameters (chosen a priori from the literature, not fitted to any backtest)
-----------------------------------------------------------------------------------------
- ``floor_mx = 3e20``: ephemeral regions reach at most ~1e20 Mx, and within a day of appearing
  (Harvey & Martin 1973, Sol. Phys. 32, 389), so they would pass a growth test alone; the floor
  is three times that, a margin for the weak network and plage pixels a SHARP patch also sums.
  NOAA numbers a region once it has a sunspot (van Driel-Gesztelyi & Green 2015, LRSP 12, 1);
  spot-bearing regions carry ~1e21 Mx and more (de la Rosa 1983 puts the small/large active
  region boundary near 1e21 Mx), so the floor sits below them to leave room for lead time.
- ``factor = 2`` over ``window_h = 24``: emerging active regions grow at (0.5-5)e20 Mx/h near
  their peak rate (Abramenko et al. 2017, Sol. Phys. 292, 48; normalised rates ~2 %/h of the
  final flux), i.e. several-fold in their first day, while decaying spots lose of order 2-3e19
  Mx/h (Norton et al. 2017, ApJ 842, 3), ~10-15 % of a few-1e21 Mx region per day. A doubling
  within one day is therefore emergence, not decay or the slow centre-to-limb change of CEA flux
  over the 13 deg a region rotates in a day. One day also matches the SRS's daily cadence.
- ``smooth_h = 1``: a trailing median of the ~5 samples of one hour removes single-frame
  glitches (flare-time magnetogram transients, bad frames) without delaying real growth much.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from heliowatch.models.core.errors import ModelError

__all__ = ["Firing", "GrowthMonitor", "GrowthRule", "first_firing"]


@dataclass(frozen=True)
class GrowthRule:
    """Parameters of the flux-growth warning (see the module docstring for the a-priori choice).

    Parameters
    ----------
    floor_mx : float
        Smoothed unsigned flux (Mx) the HARP must have reached.
    factor : float
        Growth factor of the smoothed flux over the trailing window's minimum.
    window_h : float
        Length of the trailing window, hours.
    smooth_h : float
        Length of the trailing median, hours (0: the raw sample).
    min_area_msh : float or None
        Optional floor on ``AREA_ACR`` (micro-hemispheres) at the firing sample; None disables it.
    """

    floor_mx: float = 3e20
    factor: float = 2.0
    window_h: float = 24.0
    smooth_h: float = 1.0
    min_area_msh: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.floor_mx) and self.floor_mx > 0):
            msg = f"GrowthRule.floor_mx must be a positive number (got {self.floor_mx})"
            raise ModelError(msg)
        if not (math.isfinite(self.factor) and self.factor > 1):
            msg = f"GrowthRule.factor must be > 1 (got {self.factor})"
            raise ModelError(msg)
        if not (math.isfinite(self.window_h) and self.window_h > 0):
            msg = f"GrowthRule.window_h must be > 0 hours (got {self.window_h})"
            raise ModelError(msg)
        if not (math.isfinite(self.smooth_h) and 0 <= self.smooth_h < self.window_h):
            msg = f"GrowthRule.smooth_h must be in [0, window_h) (got {self.smooth_h})"
            raise ModelError(msg)
        if self.min_area_msh is not None and not (math.isfinite(self.min_area_msh) and self.min_area_msh >= 0):
            msg = f"GrowthRule.min_area_msh must be >= 0 or None (got {self.min_area_msh})"
            raise ModelError(msg)


@dataclass(frozen=True)
class Firing:
    """The first time the rule fired on a series.

    Attributes
    ----------
    index : int
        Index of the firing sample in the arrays given.
    time : float
        Its time, in the units given (the backtest uses Unix seconds, UTC).
    flux_mx : float
        Smoothed unsigned flux at that sample.
    baseline_mx : float
        Minimum smoothed flux of the trailing window the growth was measured against.
    """

    index: int
    time: float
    flux_mx: float
    baseline_mx: float


class GrowthMonitor:
    """Streaming state of the rule for one HARP: feed samples in time order with :meth:`update`.

    Parameters
    ----------
    rule : GrowthRule
        The parameters.
    time_unit_s : float
        Seconds per unit of the times passed in (1 for Unix seconds, 3600 for hours).

    Notes
    -----
    Memory is bounded by the samples of one window; each update costs O(samples in the
    smoothing window) plus amortised O(1) for the trailing minimum (a monotonic deque).
    """

    def __init__(self, rule: GrowthRule, *, time_unit_s: float = 1.0) -> None:
        self.rule = rule
        self._smooth = rule.smooth_h * 3600.0 / time_unit_s
        self._window = rule.window_h * 3600.0 / time_unit_s
        self._raw: deque[tuple[float, float]] = deque()  # (t, flux) of the smoothing window
        self._mins: deque[tuple[float, float]] = deque()  # (t, smoothed) increasing: trailing minimum
        self._last_t = -math.inf
        self.fired: Firing | None = None
        self._n = 0

    def update(self, t: float, flux_mx: float, area_msh: float | None = None) -> Firing | None:
        """Take the next sample; return the :class:`Firing` if the rule fires now, else None.

        Parameters
        ----------
        t : float
            Sample time (strictly after the previous sample's; see ``time_unit_s``).
        flux_mx : float
            ``USFLUX`` of the sample; a non-finite or negative value is skipped (counted, unused).
        area_msh : float, optional
            ``AREA_ACR`` of the sample (used only when the rule sets ``min_area_msh``).

        Returns
        -------
        Firing or None
            The firing on the sample where the rule first fires; None before and after it
            (a HARP is warned once: :attr:`fired` keeps the firing).

        Raises
        ------
        ModelError
            If ``t`` is not after the previous sample's time (the stream must be causal and ordered).
        """
        index = self._n
        self._n += 1
        if not t > self._last_t:
            msg = f"GrowthMonitor.update: times must increase (got {t} after {self._last_t})"
            raise ModelError(msg)
        self._last_t = t
        if not (math.isfinite(flux_mx) and flux_mx >= 0):
            return None
        self._raw.append((t, flux_mx))
        while len(self._raw) > 1 and self._raw[0][0] <= t - self._smooth:  # the current sample always counts
            self._raw.popleft()
        smoothed = _median([f for _, f in self._raw])
        while self._mins and self._mins[-1][1] >= smoothed:
            self._mins.pop()
        self._mins.append((t, smoothed))
        while self._mins[0][0] <= t - self._window:
            self._mins.popleft()
        baseline = self._mins[0][1]
        if self.fired is not None:
            return None
        r = self.rule
        if smoothed < r.floor_mx or smoothed < r.factor * baseline:
            return None
        if r.min_area_msh is not None and not (area_msh is not None and math.isfinite(area_msh) and area_msh >= r.min_area_msh):
            return None
        self.fired = Firing(index, t, smoothed, baseline)
        return self.fired


def _median(values: list[float]) -> float:
    # A few samples per call: sorting a short list beats numpy's per-call overhead by ~10x.
    v = sorted(values)
    m = len(v) // 2
    return v[m] if len(v) % 2 else 0.5 * (v[m - 1] + v[m])


def first_firing(
    times: np.ndarray,
    flux_mx: np.ndarray,
    rule: GrowthRule,
    *,
    area_msh: np.ndarray | None = None,
    time_unit_s: float = 1.0,
) -> Firing | None:
    """Run :class:`GrowthMonitor` over a whole series and return its first firing.

    Parameters
    ----------
    times : ndarray (n,)
        Increasing sample times (see ``time_unit_s``).
    flux_mx : ndarray (n,)
        ``USFLUX`` per sample, Mx.
    rule : GrowthRule
        The parameters.
    area_msh : ndarray (n,), optional
        ``AREA_ACR`` per sample (needed only when ``rule.min_area_msh`` is set).
    time_unit_s : float
        Seconds per unit of ``times``.

    Returns
    -------
    Firing or None
        The first firing, or None if the rule never fires on the series.

    Raises
    ------
    ModelError
        If the arrays differ in length or the times do not increase.
    """
    t = np.asarray(times, dtype=np.float64)
    f = np.asarray(flux_mx, dtype=np.float64)
    a = None if area_msh is None else np.asarray(area_msh, dtype=np.float64)
    if t.shape != f.shape or (a is not None and a.shape != t.shape) or t.ndim != 1:
        msg = f"first_firing: times, flux (and area) must be 1-D of one length (got {t.shape}, {f.shape})"
        raise ModelError(msg)
    mon = GrowthMonitor(rule, time_unit_s=time_unit_s)
    for i in range(t.size):
        hit = mon.update(float(t[i]), float(f[i]), None if a is None else float(a[i]))
        if hit is not None:
            return hit
    return None
