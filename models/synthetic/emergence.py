"""Synthetic pre-emergence patch sequences (Dhuri et al. 2020 setting).

Postel-projected 85x85 patches at 1.4 Mm/px tracked over time. The background is an
evolving quiet-Sun network (elements that drift, appear and decay) with noise. In an
emerging patch a small bipole appears at the centre: weak mixed-polarity precursors grow in
the hours before, then two polarities emerge, grow in flux and separate. Control patches
have the background only (:func:`synth_emergence`: the 12-frame gallery/CLI sequence).

:class:`PatchSimulator` and :func:`random_event` make what the emergence product is trained on:
720 s frames of many tracked patches at once, a calibrated evolving quiet Sun with ephemeral
regions, and HEAR-like emerging regions (logistic flux growth, emergence time at 10 % of the
peak flux, optional precursor); see the section notes below.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits
from scipy import ndimage

from heliowatch.models.emergence.patches import postel_offsets

__all__ = [
    "CARRINGTON_SYNODIC_DEG_DAY",
    "MM_PER_PX",
    "PATCH",
    "PROJECTED_NOISE_G",
    "EmergenceEvent",
    "PatchSimulator",
    "disk_mu",
    "event_elements",
    "random_event",
    "synth_emergence",
]

MM_PER_PX = 1.4
PATCH = 85
_DEG_PER_MM = 180 / (math.pi * 696.0)


def _blobs(shape: tuple[int, int], pts: np.ndarray, amps: np.ndarray, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    out = np.zeros(shape)
    for (x, y), a in zip(pts, amps, strict=True):
        out += a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma * sigma))
    return out


def synth_emergence(
    t0: dt.datetime,
    *,
    emerging: bool,
    seed: int = 0,
    n_frames: int = 12,
    cadence_s: float = 1800.0,
    emerge_frame: int | None = None,
    peak_flux_mx: float = 2e21,
    noise_g: float = 5.0,
) -> tuple[np.ndarray, list[fits.Header], dict[str, Any]]:
    """Generate a tracked patch sequence.

    Parameters
    ----------
    emerging : bool
        A bipole emerges (True) or the patch is a control (False).
    n_frames, cadence_s : int, float
        Length and cadence of the sequence.
    emerge_frame : int or None
        Frame of emergence onset; by default two thirds into the sequence.
    peak_flux_mx : float
        Unsigned flux the bipole reaches (both polarities).

    Returns
    -------
    cube : ndarray (n_frames, 85, 85), float32, Gauss (LOS ~ radial at the tracked centre)
    headers : list of astropy.io.fits.Header
    truth : dict
    """
    if n_frames < 2:
        msg = f"a sequence needs at least 2 frames (got {n_frames})"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    ke = (2 * n_frames) // 3 if emerge_frame is None else emerge_frame
    if emerging and not 0 < ke < n_frames:
        msg = f"emerge_frame must be within 1..{n_frames - 1} (got {ke})"
        raise ValueError(msg)
    n_net = 60
    pts = rng.uniform(0, PATCH, (n_net, 2))
    amps = rng.choice([-1, 1], n_net) * rng.uniform(30, 90, n_net)
    px_cm2 = (MM_PER_PX * 1e8) ** 2
    sigma_bp = 2.5
    frames = []
    centre = np.array([PATCH / 2, PATCH / 2]) + rng.normal(0, 3, 2)
    axis = rng.uniform(-0.4, 0.4)  # E-W bipole, a little tilted
    for k in range(n_frames):
        pts = np.mod(pts + rng.normal(0, 0.8, pts.shape), PATCH)  # supergranular random walk
        decay = rng.random(n_net) < 0.05
        pts[decay] = rng.uniform(0, PATCH, (int(decay.sum()), 2))
        amps[decay] = rng.choice([-1, 1], int(decay.sum())) * rng.uniform(30, 90, int(decay.sum()))
        img = _blobs((PATCH, PATCH), pts, amps, 1.0)
        if emerging:
            dt_h = (k - ke) * cadence_s / 3600
            if -4 <= dt_h < 0:
                # Precursors: small mixed-polarity elements gathering at the site.
                m = int(2 + 3 * (4 + dt_h))
                pp = centre + rng.normal(0, 2.5, (m, 2))
                img += _blobs((PATCH, PATCH), pp, rng.choice([-1, 1], m) * rng.uniform(20, 60, m) * (1 + (4 + dt_h) / 4), 1.0)
            if dt_h >= 0:
                grow = 1 - math.exp(-(dt_h + 0.5) / 3.0)
                flux = 0.5 * peak_flux_mx * grow  # per polarity
                b_peak = flux / (2 * math.pi * sigma_bp**2 * px_cm2)
                half = 0.5 * (2.0 + 2.5 * dt_h) / MM_PER_PX  # separation grows ~2.5 Mm/h
                off = half * np.array([math.cos(axis), math.sin(axis)])
                img += _blobs((PATCH, PATCH), np.stack([centre + off, centre - off]), np.array([b_peak, -b_peak]), sigma_bp)
        img += rng.normal(0, noise_g, img.shape)
        frames.append(img.astype(np.float32))
    cube = np.stack(frames)
    t0u = t0 if t0.tzinfo else t0.replace(tzinfo=dt.UTC)
    headers = []
    for k in range(n_frames):
        tk = t0u + dt.timedelta(seconds=k * cadence_s)
        h = fits.Header()
        h["TELESCOP"], h["INSTRUME"] = "SDO/HMI", "HMI_FRONT2"
        h["CONTENT"] = "MAGNETOGRAM"
        h["BUNIT"] = "Gauss"
        h["DATE-OBS"] = tk.replace(tzinfo=None).isoformat(timespec="seconds")
        h["T_REC"] = tk.strftime("%Y-%m-%dT%H:%M:%SZ")
        h["CTYPE1"], h["CTYPE2"] = "HGLN-ARC", "HGLT-ARC"  # Postel (azimuthal equidistant) about the patch centre
        h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
        h["CDELT1"] = h["CDELT2"] = MM_PER_PX * _DEG_PER_MM
        h["CRPIX1"] = h["CRPIX2"] = (PATCH + 1) / 2
        h["CRVAL1"], h["CRVAL2"] = 0.0, 0.0
        h["HGLN_OBS"], h["HGLT_OBS"] = 0.0, 0.0
        h["DSUN_OBS"] = 1.495978707e11
        h["RSUN_REF"] = 696000000.0
        h["MMPERPIX"] = MM_PER_PX
        headers.append(h)
    truth = {
        "emerging": emerging,
        "emerge_frame": ke if emerging else None,
        "emerge_time_utc": (t0u + dt.timedelta(seconds=ke * cadence_s)).strftime("%Y-%m-%dT%H:%M:%SZ") if emerging else None,
        "centre_px": centre.tolist() if emerging else None,
        "peak_flux_mx": peak_flux_mx if emerging else 0.0,
        "cadence_s": cadence_s,
        "mm_per_px": MM_PER_PX,
        "generator": {"name": "heliowatch.synth.emergence", "seed": seed},
    }
    return cube, headers, truth


# --------------------------------------------------------------------------------------------
# Tracked-patch time series at HMI's 720 s cadence (the emergence product's training data).
#
# ``synth_emergence`` above is the simple 12-frame gallery/CLI sequence; what follows simulates
# what the product sees frame by frame: an evolving quiet-Sun network (power-law element
# fluxes, supergranular advection to cell boundaries, diffusion, finite lifetimes), ephemeral
# regions emerging anywhere in the patch (the confounders), and in emerging patches an active
# region whose flux grows as observed (Schunker et al. 2016's HEAR convention: the emergence
# time t_E is when the flux reaches 10 % of its maximum), preceded in some cases by small-scale
# mixed-polarity precursor flux at the site. The field is radial; ``los_frames`` projects it
# (B_los = B_r mu for the patch's position on the disk, which drifts at the Carrington rate)
# and adds the noise of a single projected HMI frame.
# --------------------------------------------------------------------------------------------

#: Noise of one 720 s HMI LOS frame after projection to 1.4 Mm/px (2x block mean + bilinear),
#: measured on the real 2019-06-21 quiet-Sun disk (median over 108 patches, 3.1 G; 3.0-3.3 G
#: from mu = 1 to 0.5).
PROJECTED_NOISE_G = 3.1
#: Synodic Carrington rotation rate, deg/day (a Carrington-tracked patch drifts west at this rate).
CARRINGTON_SYNODIC_DEG_DAY = 360.0 / 27.2753
_PX_CM2 = (MM_PER_PX * 1e8) ** 2


@dataclass(frozen=True)
class EmergenceEvent:
    """One emerging active region in a tracked patch (times in hours on the series clock).

    Attributes
    ----------
    t_emerge_h : float
        Emergence time: the region's flux reaches 10 % of ``peak_flux_mx``.
    peak_flux_mx : float
        Total unsigned flux the region tends to (both polarities).
    rise_h : float
        Width ``w`` of the logistic flux growth ``peak * (s(t) - s0) / (1 - s0)``,
        ``s = 1 / (1 + exp(-(t - t_half) / w))``, starting at ``t_half - 4 w`` (``s0 = s(t_half - 4 w)``):
        the flux grows slowly at first, then fast, then saturates (10 % to 90 % of the peak in
        ``4.4 w``; emerging regions take ~0.5-1.5 days, e.g. Schunker et al. 2016).
    centre_px : tuple of float
        (x, y) of the emergence site in patch pixels.
    tilt_deg : float
        Bipole axis from east-west (Joy's law: leader nearer the equator).
    leading_sign : int
        Polarity of the leading (western) pole (Hale's law).
    speed_km_s : float
        Initial separation speed of the poles.
    precursor_h : float
        How long before ``t_emerge_h`` small precursor flux starts to appear (0: none).
    precursor_frac : float
        Precursor flux at ``t_emerge_h`` as a fraction of ``peak_flux_mx``.
    seed : int
        Seed of the fragment layout.
    """

    t_emerge_h: float
    peak_flux_mx: float
    rise_h: float
    centre_px: tuple[float, float]
    tilt_deg: float
    leading_sign: int
    speed_km_s: float
    precursor_h: float
    precursor_frac: float
    seed: int

    @property
    def _s0(self) -> float:
        return 1.0 / (1.0 + math.exp(4.0))

    @property
    def t_half_h(self) -> float:
        """Middle of the logistic growth (t_E is its offset-corrected 10 % point)."""
        s_star = 0.1 + 0.9 * self._s0
        return self.t_emerge_h + self.rise_h * math.log((1 - s_star) / s_star)

    @property
    def t_onset_h(self) -> float:
        """Start of the region's flux growth (``t_half - 4 w``, ~2 w before t_E)."""
        return self.t_half_h - 4.0 * self.rise_h

    def region_flux(self, t_h: float) -> float:
        """Unsigned flux of the region proper at ``t_h`` (Mx)."""
        if t_h <= self.t_onset_h:
            return 0.0
        s = 1.0 / (1.0 + math.exp(-(t_h - self.t_half_h) / self.rise_h))
        return self.peak_flux_mx * (s - self._s0) / (1 - self._s0)


def random_event(
    rng: np.random.Generator,
    *,
    t_emerge_h: float,
    lat_deg: float = 15.0,
    cycle24: bool = True,
    size: int = PATCH,
    max_offset_px: float = 2.0,
) -> EmergenceEvent:
    """An emerging region with HEAR-like properties.

    Peak flux log-uniform in 1e21-1e22 Mx (Schunker et al. 2016), logistic growth width 2.5-8 h
    (10-90 % of the peak in 11-35 h; growth starts 5-16 h before t_E), pole
    separation speed 0.3-1.0 km/s, Joy's-law tilt; 75 % have a precursor starting 4-36 h
    before t_E carrying 0.5-4 % of the peak flux by t_E. The site is within ``max_offset_px`` of
    the patch centre (HEAR patches are centred on the emergence).
    """
    c = (size - 1) / 2
    off = rng.uniform(-max_offset_px, max_offset_px, 2) if max_offset_px > 0 else np.zeros(2)
    south = lat_deg < 0
    lead = (1 if south else -1) * (1 if cycle24 else -1)
    joy = 0.5 * abs(lat_deg) * (1 if not south else -1)  # leader equatorward: positive tilt in the north
    has_pre = rng.random() < 0.75
    return EmergenceEvent(
        t_emerge_h=float(t_emerge_h),
        peak_flux_mx=float(10 ** rng.uniform(21.0, 22.0)),
        rise_h=float(rng.uniform(2.5, 8.0)),
        centre_px=(float(c + off[0]), float(c + off[1])),
        tilt_deg=float(joy + rng.normal(0, 10)),
        leading_sign=lead,
        speed_km_s=float(rng.uniform(0.3, 1.0)),
        precursor_h=float(rng.uniform(4.0, 36.0)) if has_pre else 0.0,
        precursor_frac=float(rng.uniform(0.005, 0.04)) if has_pre else 0.0,
        seed=int(rng.integers(0, 2**31 - 1)),
    )


@dataclass
class _EventLayout:
    """Fixed random layout of an event's fragments (positions relative to the poles, weights)."""

    w_main: np.ndarray  # (2, n) flux weights per pole
    off_main: np.ndarray  # (2, n, 2) offsets, px
    w_mixed: np.ndarray  # (m,) weak opposite-polarity fragments between the poles
    off_mixed: np.ndarray  # (m, 2)
    s_mixed: np.ndarray  # (m,) signs
    w_pre: np.ndarray  # (k,)
    pos_pre: np.ndarray  # (k, 2) px from the site
    s_pre: np.ndarray  # (k,)
    t_pre: np.ndarray  # (k,) appearance times, h
    phase_pre: np.ndarray  # (k, 2)


def _layout(ev: EmergenceEvent) -> _EventLayout:
    rng = np.random.default_rng(ev.seed)
    n = int(rng.integers(5, 13))
    m = int(rng.integers(3, 8))
    k = int(rng.integers(6, 16))
    t_pre = ev.t_emerge_h - ev.precursor_h * (1 - np.sort(rng.uniform(0, 0.8, k)))
    return _EventLayout(
        w_main=rng.dirichlet(np.full(n, 1.5), 2),
        off_main=rng.normal(0, 1.0, (2, n, 2)),
        w_mixed=rng.dirichlet(np.ones(m)),
        off_mixed=rng.normal(0, 1.0, (m, 2)),
        s_mixed=rng.choice([-1.0, 1.0], m),
        w_pre=rng.dirichlet(np.ones(k)),
        pos_pre=rng.normal(0, 1.0, (k, 2)) * rng.uniform(3.0, 9.0),
        s_pre=rng.choice([-1.0, 1.0], k),
        t_pre=t_pre,
        phase_pre=rng.uniform(0, 2 * math.pi, (k, 2)),
    )


def event_elements(
    ev: EmergenceEvent, t_h: float, layout: _EventLayout | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flux elements of an emerging region at ``t_h``: x, y (patch px) and signed flux (Mx).

    The region proper is two poles of fragments whose separation grows from 2 Mm at the
    initial speed and saturates at a flux-dependent size, fragments coalescing as the flux
    grows (spread from ~6 Mm down to ~2.5 Mm), with 10 % of the flux in weak mixed-polarity
    fragments between the poles while it emerges. Precursor elements (mixed polarity, within
    ~10 Mm of the site) appear one by one from ``t_E - precursor_h`` and fade after t_E.
    """
    lay = layout or _layout(ev)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    fs: list[np.ndarray] = []
    cx, cy = ev.centre_px
    phi = ev.region_flux(t_h)
    if phi > 0:
        g = phi / ev.peak_flux_mx
        dt_h = t_h - ev.t_onset_h
        d_max = 25.0 * (ev.peak_flux_mx / 1e21) ** 0.4  # Mm: bigger regions spread further
        v = ev.speed_km_s * 3.6  # Mm/h
        sep = 2.0 + d_max * (1 - math.exp(-v * dt_h / d_max))
        a = math.radians(ev.tilt_deg)
        ux, uy = math.cos(a), math.sin(a)
        spread = (6.0 - 3.5 * g) / MM_PER_PX
        for pole, sign in ((0, ev.leading_sign), (1, -ev.leading_sign)):
            side = 0.5 if pole == 0 else -0.5
            px = cx + side * sep / MM_PER_PX * ux
            py = cy + side * sep / MM_PER_PX * uy
            xs.append(px + spread * lay.off_main[pole, :, 0])
            ys.append(py + spread * lay.off_main[pole, :, 1])
            fs.append(sign * 0.45 * phi * lay.w_main[pole])
        mixed = 0.1 * phi * math.exp(-dt_h / (2 * ev.rise_h))
        xs.append(cx + 0.3 * sep / MM_PER_PX * lay.off_mixed[:, 0])
        ys.append(cy + 0.3 * sep / MM_PER_PX * lay.off_mixed[:, 1])
        fs.append(lay.s_mixed * mixed * lay.w_mixed)
    if ev.precursor_h > 0:
        total = ev.precursor_frac * ev.peak_flux_mx
        ramp = np.clip((t_h - lay.t_pre) / np.maximum(ev.t_emerge_h - lay.t_pre, 1e-3), 0, None) ** 1.5
        ramp = np.minimum(ramp, 1.0) * (math.exp(-(t_h - ev.t_emerge_h) / 6.0) if t_h > ev.t_emerge_h else 1.0)
        on = ramp > 0
        if on.any():
            jig = 0.6 * np.sin(0.7 * t_h + lay.phase_pre[on])
            xs.append(cx + lay.pos_pre[on, 0] + jig[:, 0])
            ys.append(cy + lay.pos_pre[on, 1] + jig[:, 1])
            fs.append(lay.s_pre[on] * total * lay.w_pre[on] * ramp[on])
    if not xs:
        z = np.zeros(0)
        return z, z.copy(), z.copy()
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(fs)


def _deposit(n: int, size: int, series: np.ndarray, x: np.ndarray, y: np.ndarray, amp: np.ndarray, *, wrap: bool) -> np.ndarray:
    """Bilinear deposit of point amounts into an (n, size, size) stack (flat bincount: fast)."""
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    out = np.zeros(n * size * size)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        if wrap:
            xi, yi = xi % size, yi % size
            ok = np.ones(len(xi), bool)
        else:
            ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
        idx = (series[ok] * size + yi[ok]) * size + xi[ok]
        out += np.bincount(idx, weights=(amp * w)[ok], minlength=n * size * size)
    return out.reshape(n, size, size)


class PatchSimulator:
    """Batched radial-field evolution of ``n`` tracked patches at a fixed cadence.

    Parameters
    ----------
    n : int
        Number of patches simulated together.
    rng : numpy.random.Generator
        Randomness of the quiet Sun (the events carry their own seeds).
    events : list of EmergenceEvent or None
        One per patch (None: a control patch).
    density : ndarray (n,) or float
        Network flux density relative to the calibrated quiet Sun (1.0).
    network : bool
        Simulate the quiet-Sun network and ephemeral regions (False: the events alone, for
        semi-real data whose background is real).
    size, cadence_s : int, float
        Patch side and frame cadence.

    Notes
    -----
    Calibration (single frame, projected HMI noise added, 1.4 Mm/px, median over patches): the
    real quiet-Sun patches of 2019-06-21 (2016-07-07) have std 9.2 (12.2) G, mean |B| 4.9 (5.4) G,
    max |B| 190 (265) G and 0.57e20 (0.61e20) Mx within 14 px of the centre; the default network
    gives 11.5 G, 4.9 G, 216 G and 0.54e20 Mx (``tests/models/test_emergence_models.py`` keeps
    it within 25 % of the 2019 values). Network elements: power-law fluxes (index 1.85, Parnell
    et al. 2009) between 3e17 and 2.5e19 Mx, lifetimes ~10 h, advected to supergranule
    boundaries at 0.3 km/s (cells ~30 Mm, lifetime ~1 day) and diffusing at 250 km^2/s;
    ephemeral regions emerge at ~12 per patch per day with 5e18-1e20 Mx (power-law index 2),
    separate at ~1 km/s over 1-3 h and then join the network. Three days of spin-up bring the
    network to its steady state before the first frame.
    """

    _N_NET = 500
    _N_CELLS = 16
    _NET_FLUX = (3e17, 2.5e19)  # Mx, network element flux range (power-law index 1.85)
    _ER_FLUX = (5e18, 1e20)  # Mx, ephemeral-region flux range (power-law index 2)

    def __init__(
        self,
        n: int,
        rng: np.random.Generator,
        *,
        events: list[EmergenceEvent | None] | None = None,
        density: np.ndarray | float = 1.0,
        network: bool = True,
        size: int = PATCH,
        cadence_s: float = 720.0,
        er_rate_per_day: float = 12.0,
    ) -> None:
        self.n, self.size, self.cadence_s, self.rng = n, size, cadence_s, rng
        self.network = network
        self.events = events if events is not None else [None] * n
        self.layouts = [_layout(e) if e is not None else None for e in self.events]
        self.er_rate = er_rate_per_day
        dens = np.broadcast_to(np.asarray(density, dtype=np.float64), (n,))
        m = self._N_NET
        self.alive = rng.random((n, m)) < np.clip(dens, 0, 2)[:, None] / 2  # density scales the element count
        self.pos = rng.uniform(0, size, (n, m, 2))
        self.flux = self._draw_flux((n, m), np.repeat(rng.uniform(0.4, 0.6, (n, 1)), m, axis=1))
        self.cells = rng.uniform(0, size, (n, self._N_CELLS, 2))
        self.er: list[np.ndarray] = []  # rows: series, x, y, flux, angle, t_birth, t_grow, sep_max
        self.t_h = 0.0
        self._near: np.ndarray | None = None
        self._steps = 0
        if network:
            for _ in range(36):  # 3 days of spin-up at 2 h steps: the network gathers on the cell boundaries and
                self._evolve(7200.0, spin_up=True)  # reaches its steady state with the ephemeral regions' flux
                self.t_h += 2.0
            self.t_h = 0.0
            self.er = []

    def _draw_flux(self, shape: tuple[int, ...], p_plus: np.ndarray | float) -> np.ndarray:
        a = 1.85
        lo, hi = self._NET_FLUX
        u = self.rng.random(shape)
        e = 1 - a
        mag = (lo**e + u * (hi**e - lo**e)) ** (1 / e)
        sign = np.where(self.rng.random(shape) < p_plus, 1.0, -1.0)
        return mag * sign

    def _evolve(self, dt_s: float, *, spin_up: bool = False) -> None:
        n, m, s, rng = self.n, self._N_NET, self.size, self.rng
        px_km = MM_PER_PX * 1000
        # Advection from the nearest supergranule centre towards the cell boundary (periodic patch).
        # The nearest cell changes slowly: reassigned every 6 steps (the costly all-pairs part).
        if self._near is None or self._steps % 6 == 0 or spin_up:
            d = self.pos[:, :, None, :] - self.cells[:, None, :, :]
            d -= s * np.round(d / s)
            self._near = np.argmin(np.einsum("nmkc,nmkc->nmk", d, d), axis=2)
        self._steps += 1
        centre = np.take_along_axis(self.cells, self._near[:, :, None], axis=1)
        dv = self.pos - centre
        dv -= s * np.round(dv / s)
        dn = np.maximum(np.linalg.norm(dv, axis=-1, keepdims=True), 1e-6)
        step = 0.3 * dt_s / px_km * np.minimum(dn / (10.0 / MM_PER_PX), 1.0)  # slows near the boundary
        self.pos += step * dv / dn
        self.pos += rng.normal(0, math.sqrt(2 * 250.0 * dt_s) / px_km, self.pos.shape)
        self.pos %= s
        die = rng.random((n, m)) < dt_s / (10 * 3600.0)
        nd = int(die.sum())
        if nd:
            self.pos[die] = rng.uniform(0, s, (nd, 2))
            self.flux[die] = self._draw_flux((nd,), 0.5)
        cell_die = rng.random((n, self._N_CELLS)) < dt_s / (24 * 3600.0)
        if cell_die.any():
            self.cells[cell_die] = rng.uniform(0, s, (int(cell_die.sum()), 2))
        # Ephemeral regions: born at a Poisson rate, grown, then handed to the network.
        k = rng.poisson(self.er_rate * dt_s / 86400.0, n)
        if k.sum():
            ser = np.repeat(np.arange(n), k)
            q = len(ser)
            u = rng.random(q)
            lo, hi = self._ER_FLUX
            phi = lo * hi / (hi - u * (hi - lo))  # power law index 2
            self.er.append(
                np.column_stack(
                    [
                        ser,
                        rng.uniform(0, s, q),
                        rng.uniform(0, s, q),
                        phi,
                        rng.uniform(0, 2 * math.pi, q),
                        np.full(q, self.t_h),
                        rng.uniform(1.0, 3.0, q),
                        rng.uniform(5.0, 15.0, q) / MM_PER_PX,
                    ]
                )
            )
        if self.er:
            er = np.concatenate(self.er)
            done = self.t_h - er[:, 5] >= er[:, 6]
            for row in er[done]:  # grown: its two poles become network elements of this patch
                i = int(row[0])
                slot = np.flatnonzero(~self.alive[i])
                if len(slot) < 2:
                    slot = rng.choice(m, 2, replace=False)
                for j, sgn in zip(slot[:2], (1.0, -1.0), strict=True):
                    self.alive[i, j] = True
                    self.pos[i, j] = np.array([row[1], row[2]]) + sgn * 0.5 * row[7] * np.array(
                        [math.cos(row[4]), math.sin(row[4])]
                    )
                    self.flux[i, j] = sgn * 0.5 * row[3]
            self.pos %= s
            self.er = [er[~done]] if (~done).any() else []

    def frame(self) -> np.ndarray:
        """Advance one cadence step and return the radial field, (n, size, size) float32 Gauss (no noise)."""
        n, s = self.n, self.size
        out = np.zeros((n, s, s))
        if self.network:
            self._evolve(self.cadence_s)
            ser = np.repeat(np.arange(n), self._N_NET)[self.alive.ravel()]
            p = self.pos[self.alive]
            f = self.flux[self.alive]
            if self.er:
                er = np.concatenate(self.er)
                g = np.clip((self.t_h - er[:, 5]) / er[:, 6], 0, 1)
                half = 0.5 * (2.0 / MM_PER_PX + g * er[:, 7])
                dx, dy = half * np.cos(er[:, 4]), half * np.sin(er[:, 4])
                ser = np.concatenate([ser, er[:, 0].astype(np.int64), er[:, 0].astype(np.int64)])
                p = np.concatenate(
                    [p, np.column_stack([er[:, 1] + dx, er[:, 2] + dy]) % s, np.column_stack([er[:, 1] - dx, er[:, 2] - dy]) % s]
                )
                f = np.concatenate([f, 0.5 * g * er[:, 3], -0.5 * g * er[:, 3]])
            dep = _deposit(n, s, ser, p[:, 0], p[:, 1], f / _PX_CM2, wrap=True)
            out += ndimage.gaussian_filter(dep, (0, 0.8, 0.8), mode="wrap")
        sers, xs, ys, fs = [], [], [], []
        for i, (ev, lay) in enumerate(zip(self.events, self.layouts, strict=True)):
            if ev is None:
                continue
            x, y, f = event_elements(ev, self.t_h, lay)
            sers.append(np.full(len(x), i))
            xs.append(x)
            ys.append(y)
            fs.append(f)
        if sers:
            dep = _deposit(
                n, s, np.concatenate(sers), np.concatenate(xs), np.concatenate(ys), np.concatenate(fs) / _PX_CM2, wrap=False
            )
            out += ndimage.gaussian_filter(dep, (0, 1.1, 1.1), mode="constant")
        self.t_h += self.cadence_s / 3600.0
        return out.astype(np.float32)


def disk_mu(lat_deg: float, cmd_deg: float, *, b0_deg: float = 0.0, size: int = PATCH) -> np.ndarray:
    """Per-pixel mu of a Postel patch centred at (``lat_deg``, central-meridian distance ``cmd_deg``).

    Orthographic view from far away (the 0.5 % finite-distance correction is irrelevant here).
    """
    lat, dlon = postel_offsets(lat_deg, size)
    la, lo, b0 = np.radians(lat), np.radians(cmd_deg + dlon), math.radians(b0_deg)
    return np.clip(math.sin(b0) * np.sin(la) + math.cos(b0) * np.cos(la) * np.cos(lo), 0, 1).astype(np.float32)
