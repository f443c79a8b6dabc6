"""Synthetic AIA 304 A sequences at 1.8"/px with coronal jets drawn from the Solar Jet Hunter catalogue.

What is drawn, and from where:

- **Jets**: height (maximum projected length), box width, duration, plane-of-sky speed and base
  position are one real catalogue row (:class:`heliowatch.models.jets.stats.JetStats`,
  bootstrap; speed borrowed from a similar row when the row has none). The catalogue's width
  is the width of the volunteers' box, which encloses the spire and its base: the spire is
  drawn with a Gaussian profile whose FWHM is half the box width (a box drawn around a Gaussian
  spans about +-1 FWHM). A jet grows from its base at the catalogue speed until it reaches the
  catalogue height, then fades, visible for the catalogue duration (lengthened when the rise
  alone takes longer). Its direction is radial from disk centre with a spread that grows
  towards disk centre (projection makes disk-centre jets point anywhere). Brightness is not in
  the catalogue: the spire is 0.3-2.5 times the local quiet-Sun level (log-uniform), the base
  (the jet bright point) 1.5 times the spire. Jets beyond the limb keep their catalogue base,
  which volunteers clicked above the limb.
- **Scene**: a chromospheric network drawn on the solar surface and projected (foreshortened
  towards the limb), mild limb brightening, a chromospheric limb shell and a faint off-limb
  corona, plage, prominences; slow evolution of the network over the window.
- **Distractors** that must not look like jets: flickering bright points, short-lived network
  brightenings, loops whose brightness oscillates, a spicule forest at the limb (radial
  streaks rising and falling in 1-5 min to 3-10 Mm), frames with a shorter exposure (noisier)
  and sometimes an uncorrected exposure step (the whole frame dimmer), photon and read noise.

Frames are :class:`heliowatch.models.jets.frames.PooledFrame` in DN/s per pooled pixel, with
a real position on the Sun, so helioprojective and Stonyhurst positions of the truth mean what
they say. Noise is that of the mean of 3x3 native pixels (Gaussian approximation of Poisson
statistics at 1 DN per detected photon, read noise 1.2 DN).

The older :func:`heliowatch.models.synthetic.aia.synth_aia_sequence` (used by the demo archive)
is unchanged; this module is what the jet evaluation uses.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import iso_from_unix
from heliowatch.models.jets.frames import PooledFrame, hpc_to_hgs, km_per_arcsec, position_angle, rsun_arcsec_for
from heliowatch.models.jets.stats import JetStats
from heliowatch.models.synthetic.ephemeris import ephemeris

__all__ = [
    "ARCSEC_PER_PX",
    "FullDiskScene",
    "JetSpec",
    "inject_jet",
    "random_jet_spec",
    "synth_full_disk",
    "synth_jet_cutout",
]

#: Plate scale of every frame made here: AIA's 0.6"/px pooled 3x3.
ARCSEC_PER_PX = 1.8
_QS = 50.0  # quiet-Sun mean, DN/s per pooled pixel
_EXPTIME = 2.9
_READ_DN = 1.2


@dataclass(frozen=True)
class JetSpec:
    """One synthetic jet, in observer's (plane-of-sky) terms.

    Attributes
    ----------
    base_hpc_arcsec : (float, float)
        Helioprojective x, y of the base.
    direction_deg : float
        Position angle of the axis from the base (0 = north, 90 = east).
    speed_km_s : float
        Plane-of-sky rise speed of the front.
    height_arcsec : float
        Maximum projected length.
    fwhm_arcsec : float
        Spire width (FWHM of its Gaussian cross-section).
    duration_s : float
        Visible lifetime.
    start_t : float
        Unix time the front starts to rise.
    contrast : float
        Spire brightness in units of the reference (quiet-Sun) level.
    sjh_id : str
        Catalogue row the parameters came from ("" when given by hand).
    speed_imputed : bool
        The row had no velocity; it was borrowed from a similar row.
    """

    base_hpc_arcsec: tuple[float, float]
    direction_deg: float
    speed_km_s: float
    height_arcsec: float
    fwhm_arcsec: float
    duration_s: float
    start_t: float
    contrast: float
    sjh_id: str = ""
    speed_imputed: bool = False

    def rise_s(self, dsun_m: float) -> float:
        """Seconds the front takes to reach the full height."""
        return self.height_arcsec * km_per_arcsec(dsun_m) / max(self.speed_km_s, 1e-3)

    def lifetime_s(self, dsun_m: float) -> float:
        """Visible lifetime: the catalogue duration, or the rise plus a minute when the rise is longer."""
        return max(self.duration_s, self.rise_s(dsun_m) + 60.0)


def _t_unix(t0: dt.datetime | float) -> tuple[float, dt.datetime]:
    if isinstance(t0, dt.datetime):
        d = t0 if t0.tzinfo else t0.replace(tzinfo=dt.UTC)
        return d.timestamp(), d
    d = dt.datetime.fromtimestamp(float(t0), dt.UTC)
    return float(t0), d


def _geometry(t0: dt.datetime) -> dict[str, float]:
    eph = ephemeris(t0)
    return {"rsun": rsun_arcsec_for(eph.dsun_m), "b0": eph.b0_deg, "l0": eph.l0_deg, "dsun": eph.dsun_m}


def _wrapped_normal(rng: np.random.Generator, mean: float, sigma: float) -> float:
    return float((mean + rng.normal(0.0, sigma)) % 360.0)


def random_jet_spec(
    rng: np.random.Generator,
    stats: JetStats | None,
    *,
    start_t: float,
    rsun_arcsec: float,
    base_hpc_arcsec: tuple[float, float] | None = None,
    limb: bool | None = None,
) -> JetSpec:
    """Draw a jet from the catalogue (bootstrap of a real row).

    Parameters
    ----------
    rng : numpy.random.Generator
    stats : JetStats or None
        The catalogue; None uses the 32 real rows embedded in :mod:`heliowatch.models.jets.stats`.
    start_t : float
        Unix time the jet starts to rise.
    rsun_arcsec : float
        Apparent radius on the date the jet is placed at (the catalogue base is rescaled to it).
    base_hpc_arcsec : (float, float) or None
        Put the base here instead of at the catalogue row's base (semi-real data, whose field
        of view rarely holds a catalogue base).
    limb : bool or None
        Passed to :meth:`JetStats.sample`.
    """
    st = stats if stats is not None else JetStats.builtin()
    row = st.sample(rng, limb=limb)
    if base_hpc_arcsec is None:
        r_old = math.hypot(row["base_x_arcsec"], row["base_y_arcsec"])
        scale = row["r_over_rsun"] * rsun_arcsec / r_old if r_old > 0 else 1.0
        bx, by = row["base_x_arcsec"] * scale, row["base_y_arcsec"] * scale
    else:
        bx, by = base_hpc_arcsec
    r = math.hypot(bx, by) / rsun_arcsec
    radial = float(position_angle(bx, by)) if r > 1e-3 else float(rng.uniform(0, 360))
    spread = 25.0 + 95.0 * min(max(1.0 - r, 0.0), 1.0)
    on_disk = r < 1.0
    contrast = float(math.exp(rng.uniform(math.log(0.3), math.log(2.5 if on_disk else 2.0))))
    return JetSpec(
        base_hpc_arcsec=(float(bx), float(by)),
        direction_deg=_wrapped_normal(rng, radial, spread),
        speed_km_s=float(row["speed_km_s"]),
        height_arcsec=float(row["height_arcsec"]),
        fwhm_arcsec=max(0.5 * float(row["width_arcsec"]), 2.0 * ARCSEC_PER_PX),
        duration_s=float(row["duration_s"]),
        start_t=float(start_t),
        contrast=contrast,
        sjh_id=str(row["sjh_id"]),
        speed_imputed=bool(row["speed_imputed"]),
    )


# --------------------------------------------------------------------------------------------
# Rendering helpers (all on the pooled grid).


def _axes(shape: tuple[int, int], x0: float, y0: float) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = shape
    tx = (x0 + np.arange(nx, dtype=np.float32) * np.float32(ARCSEC_PER_PX)).astype(np.float32)
    ty = (y0 + np.arange(ny, dtype=np.float32) * np.float32(ARCSEC_PER_PX)).astype(np.float32)
    return tx, ty


def _jet_patch(spec: JetSpec, frame: PooledFrame, t: float, ref_level: float) -> tuple[slice, slice, np.ndarray, float] | None:
    """The jet's added intensity on ``frame`` at time ``t``: (rows, cols, patch, current length in arcsec)."""
    el = t - spec.start_t
    life = spec.lifetime_s(frame.dsun_m)
    if el < 0 or el > life:
        return None
    v_as = spec.speed_km_s / km_per_arcsec(frame.dsun_m)  # arcsec/s
    rise = spec.rise_s(frame.dsun_m)
    length = min(v_as * el, spec.height_arcsec)
    # Bright while rising, then fading so that it is gone at the end of its lifetime.
    fade = 1.0 if el <= rise else math.exp(-3.0 * (el - rise) / max(life - rise, 1.0))
    px = frame.arcsec_per_px
    bx, by = frame.hpc_to_pixel(*spec.base_hpc_arcsec)
    bxf, byf = float(bx), float(by)
    pa = math.radians(spec.direction_deg)
    ux, uy = -math.sin(pa), math.cos(pa)  # PA counter-clockwise from north, east to the left
    sig = spec.fwhm_arcsec / 2.3548 / px
    lpx = max(length / px, 0.5)
    ex, ey = bxf + ux * lpx, byf + uy * lpx
    m = 3.5 * sig + 3
    ny, nx = frame.shape
    c0, c1 = int(max(math.floor(min(bxf, ex) - m), 0)), int(min(math.ceil(max(bxf, ex) + m) + 1, nx))
    r0, r1 = int(max(math.floor(min(byf, ey) - m), 0)), int(min(math.ceil(max(byf, ey) + m) + 1, ny))
    if c0 >= c1 or r0 >= r1:
        return None
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    dxp, dyp = xx - bxf, yy - byf
    s = dxp * ux + dyp * uy
    d = -dxp * uy + dyp * ux
    across = np.exp(-(d * d) / (2 * sig * sig))
    along = np.where(s <= lpx, 0.6 + 0.4 * np.exp(-np.clip(s, 0, None) / lpx), np.exp(-((s - lpx) ** 2) / 2.0) * 0.6)
    along = np.where(s < 0, np.exp(-(s * s) / (2 * sig * sig)), along)
    base = 1.5 * np.exp(-(s * s + d * d) / (2 * (1.2 * sig) ** 2))
    patch = (spec.contrast * ref_level * fade) * (across * along + base)
    return slice(r0, r1), slice(c0, c1), patch.astype(np.float32), length


def _jet_truth(
    spec: JetSpec, frame: PooledFrame, times: np.ndarray, lengths: list[float], frames_visible: list[int]
) -> dict[str, Any]:
    bx, by = frame.hpc_to_pixel(*spec.base_hpc_arcsec)
    lat, lon = hpc_to_hgs(spec.base_hpc_arcsec[0], spec.base_hpc_arcsec[1], frame)
    rise = spec.rise_s(frame.dsun_m)
    life = spec.lifetime_s(frame.dsun_m)
    r = math.hypot(*spec.base_hpc_arcsec) / frame.rsun_arcsec
    return {
        "base_px": (float(bx), float(by)),
        "base_hpc_arcsec": spec.base_hpc_arcsec,
        "direction_deg": spec.direction_deg,
        "speed_km_s": spec.speed_km_s,
        "length_arcsec": float(max(lengths)) if lengths else 0.0,
        "height_arcsec": spec.height_arcsec,
        "fwhm_arcsec": spec.fwhm_arcsec,
        "contrast": spec.contrast,
        "start_t": spec.start_t,
        "peak_t": spec.start_t + rise,
        "end_t": spec.start_t + life,
        "start_utc": iso_from_unix(spec.start_t),
        "on_disk": bool(r < 1.0),
        "r_over_rsun": r,
        "hgs_lat": lat,
        "hgs_lon": lon,
        "sjh_id": spec.sjh_id,
        "speed_imputed": spec.speed_imputed,
        "frames_visible": frames_visible,
        "in_window": bool(frames_visible) and float(times[0]) <= spec.start_t + rise,
    }


class _Sprites:
    """Static stamps whose amplitudes vary in time: a(t) = A (1 + m sin(w t + p)) + B exp(-((t - c) / s)^2 / 2)."""

    def __init__(self, n_pix: int) -> None:
        self.n_pix = n_pix
        self.idx: list[np.ndarray] = []
        self.val: list[np.ndarray] = []
        self.par: list[tuple[float, float, float, float, float, float, float]] = []
        self.kinds: list[dict[str, Any]] = []

    def add(
        self, idx: np.ndarray, val: np.ndarray, par: tuple[float, float, float, float, float, float, float], info: dict[str, Any]
    ) -> None:
        if idx.size:
            self.idx.append(idx.astype(np.int64))
            self.val.append(val.astype(np.float32))
            self.par.append(par)
            self.kinds.append(info)

    def freeze(self) -> None:
        n = len(self.idx)
        self._owner = (
            np.concatenate([np.full(i.size, k, np.int64) for k, i in enumerate(self.idx)]) if n else np.zeros(0, np.int64)
        )
        self._i = np.concatenate(self.idx) if n else np.zeros(0, np.int64)
        self._v = np.concatenate(self.val) if n else np.zeros(0, np.float32)
        self._p = np.array(self.par, dtype=np.float64).reshape(n, 7)

    def image(self, t: float) -> np.ndarray | None:
        if not len(self.idx):
            return None
        a_, m, w, p, b, c, s = self._p.T
        amp = a_ * (1 + m * np.sin(w * t + p)) + b * np.exp(-0.5 * ((t - c) / s) ** 2)
        return np.bincount(self._i, weights=self._v * amp[self._owner].astype(np.float32), minlength=self.n_pix).astype(
            np.float32
        )


def _stamp_gauss(shape: tuple[int, int], x: float, y: float, sig: float) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = shape
    h = math.ceil(3.5 * sig) + 1
    c0, c1, r0, r1 = max(int(x) - h, 0), min(int(x) + h + 1, nx), max(int(y) - h, 0), min(int(y) + h + 1, ny)
    if c0 >= c1 or r0 >= r1:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    yy, xx = np.mgrid[r0:r1, c0:c1]
    g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sig * sig))
    return (yy * nx + xx).ravel(), g.ravel().astype(np.float32)


def _stamp_loop(
    shape: tuple[int, int], cx: float, cy: float, r: float, ang: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = shape
    th = np.linspace(0, math.pi, max(int(4 * r), 40))
    px = cx + r * np.cos(th) * math.cos(ang) - 0.5 * r * np.sin(th) * math.sin(ang)
    py = cy + r * np.cos(th) * math.sin(ang) + 0.5 * r * np.sin(th) * math.cos(ang)
    c0, c1 = max(int(px.min()) - 4, 0), min(int(px.max()) + 5, nx)
    r0, r1 = max(int(py.min()) - 4, 0), min(int(py.max()) + 5, ny)
    if c0 >= c1 or r0 >= r1:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    img = np.zeros((r1 - r0, c1 - c0), np.float32)
    ix, iy = np.round(px - c0).astype(int), np.round(py - r0).astype(int)
    ok = (ix >= 0) & (ix < c1 - c0) & (iy >= 0) & (iy < r1 - r0)
    np.add.at(img, (iy[ok], ix[ok]), 1.0)
    img = ndimage.gaussian_filter(img, float(rng.uniform(0.7, 1.2)))
    img /= max(float(img.max()), 1e-9)
    yy, xx = np.mgrid[r0:r1, c0:c1]
    keep = img.ravel() > 0.02
    return (yy * nx + xx).ravel()[keep], img.ravel()[keep]


@dataclass
class _Exposure:
    exptime: np.ndarray
    scale: np.ndarray


def _exposures(n: int, rng: np.random.Generator, enabled: bool) -> tuple[_Exposure, list[dict[str, Any]]]:
    exptime = np.full(n, _EXPTIME)
    scale = np.ones(n)
    notes: list[dict[str, Any]] = []
    if enabled and n > 3 and rng.random() < 0.6:
        k = int(rng.integers(1, n - 2))
        m = int(rng.integers(1, 4))
        exptime[k : k + m] = rng.uniform(0.6, 1.5)
        step = rng.random() < 0.5
        if step:
            scale[k : k + m] = rng.uniform(0.55, 0.85)
        notes.append({"kind": "short_exposure", "frames": list(range(k, min(k + m, n))), "uncorrected_step": bool(step)})
    return _Exposure(exptime, scale), notes


class FullDiskScene:
    """A synthetic 304 A scene on a grid of pooled pixels (the whole disk, or a cutout of it).

    The static part is built once; :meth:`frame` renders frame ``k`` (distractors, jets,
    exposure, noise), so a long jet-free stream can be evaluated frame by frame without holding
    it in memory. :func:`synth_full_disk` and :func:`synth_jet_cutout` are the usual entry points.

    Parameters
    ----------
    t0 : datetime or float
        Time of frame 0 (UTC datetime or Unix seconds).
    shape : (int, int)
        ``(ny, nx)`` of the grid.
    centre_hpc_arcsec : (float, float)
        Helioprojective position of the grid's centre.
    seed : int
    n_frames, cadence_s : int, float
    distractors : bool
        Draw the distractors (bright points, loops, spicules, exposure changes).
    background : numpy.ndarray or None
        A real 2-D image (DN/s, this grid's shape) used instead of the synthetic network.
    """

    def __init__(
        self,
        t0: dt.datetime | float,
        *,
        shape: tuple[int, int],
        centre_hpc_arcsec: tuple[float, float] = (0.0, 0.0),
        seed: int = 0,
        n_frames: int = 30,
        cadence_s: float = 24.0,
        distractors: bool = True,
        background: np.ndarray | None = None,
        active_regions: int | None = None,
    ) -> None:
        if n_frames < 2:
            msg = f"a sequence needs at least 2 frames (got {n_frames})"
            raise UsageError(msg)
        if cadence_s <= 0:
            msg = f"cadence_s must be > 0 (got {cadence_s})"
            raise UsageError(msg)
        self.t0, d0 = _t_unix(t0)
        self.geo = _geometry(d0)
        self.shape = (int(shape[0]), int(shape[1]))
        self.n_frames, self.cadence_s = int(n_frames), float(cadence_s)
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        ny, nx = self.shape
        self.x0 = centre_hpc_arcsec[0] - (nx - 1) / 2 * ARCSEC_PER_PX
        self.y0 = centre_hpc_arcsec[1] - (ny - 1) / 2 * ARCSEC_PER_PX
        self.times = self.t0 + np.arange(self.n_frames) * self.cadence_s
        self.jets: list[JetSpec] = []
        self._ref_cache: dict[JetSpec, float] = {}
        self.distractor_notes: list[dict[str, Any]] = []
        self._build_static(background, distractors, active_regions)
        self.exposure, notes = _exposures(self.n_frames, self.rng, distractors)
        self.distractor_notes += notes
        self._noise_seed = int(self.rng.integers(0, 2**31))

    # -- geometry -----------------------------------------------------------------------------
    def blank(self, k: int) -> PooledFrame:
        """Frame ``k``'s geometry with an empty image (for coordinate conversions)."""
        return PooledFrame(
            data=np.zeros(self.shape, np.float32),  # calloc'd: costs nothing until written
            t_unix=float(self.times[k]),
            arcsec_per_px=ARCSEC_PER_PX,
            x0_arcsec=self.x0,
            y0_arcsec=self.y0,
            rsun_arcsec=self.geo["rsun"],
            b0_deg=self.geo["b0"],
            l0_deg=self.geo["l0"],
            dsun_m=self.geo["dsun"],
        )

    # -- static scene -------------------------------------------------------------------------
    def _build_static(self, background: np.ndarray | None, distractors: bool, active_regions: int | None) -> None:
        rng = self.rng
        ny, nx = self.shape
        tx, ty = _axes(self.shape, self.x0, self.y0)
        rsun = self.geo["rsun"]
        rpx = np.float32(rsun / ARCSEC_PER_PX)
        dx = tx[None, :] / np.float32(ARCSEC_PER_PX)
        dy = ty[:, None] / np.float32(ARCSEC_PER_PX)
        r = np.hypot(dx, dy)  # pixels from disk centre
        on = r < rpx
        self._r_px, self._rsun_px = r, float(rpx)
        mu = np.sqrt(np.clip(1 - (r / rpx) ** 2, 0, 1))
        if background is not None:
            bg = np.asarray(background, dtype=np.float32)
            if bg.shape != self.shape:
                msg = f"background shape {bg.shape} differs from the grid {self.shape}"
                raise UsageError(msg)
            static = np.nan_to_num(bg, nan=0.0).copy()
        else:
            static = (self._network(dx, dy, r, on, rpx) * (1 + 0.25 * (1 - mu)) * on).astype(np.float32)
            h = np.clip(r - rpx, 0, None)
            static += np.where(on, 0.0, 1.1 * _QS * np.exp(-h / 2.5) + 0.08 * _QS * np.exp(-h / 45.0)).astype(np.float32)
            n_ar = active_regions if active_regions is not None else 0
            for _ in range(n_ar):
                self._plage(static, rng, rpx)
        self.static = static.astype(np.float32)
        evolve = ndimage.gaussian_filter(rng.normal(0, 1, (max(ny // 4, 2), max(nx // 4, 2))).astype(np.float32), 2.5)
        evolve /= max(float(evolve.std()), 1e-9)
        self.evolve = ndimage.zoom(evolve, (ny / evolve.shape[0], nx / evolve.shape[1]), order=1)[:ny, :nx].astype(np.float32)
        self.sprites = _Sprites(ny * nx)
        self._spicules: dict[str, np.ndarray] | None = None
        if distractors:
            self._add_distractors(on, r, rpx, dx, dy)
        self.sprites.freeze()

    def _network(self, dx: np.ndarray, dy: np.ndarray, r: np.ndarray, on: np.ndarray, rpx: np.float32) -> np.ndarray:
        """Chromospheric network drawn on the surface, sampled at each pixel's foreshortened position."""
        rng = self.rng
        rr = np.clip(r / rpx, 0, 0.99995)
        s = np.arcsin(rr) * rpx  # great-circle distance from disk centre, pixels
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(r > 0, s / np.maximum(r, 1e-6), 1.0)
        sx, sy = dx * f, dy * f
        step = 2.0  # texture grid spacing (pixels): the cells are ~15-25 px
        if on.any():
            xmin, xmax = float(sx[on].min()) - 8, float(sx[on].max()) + 8
            ymin, ymax = float(sy[on].min()) - 8, float(sy[on].max()) + 8
        else:
            xmin = xmax = ymin = ymax = 0.0
        gx, gy = int((xmax - xmin) / step) + 3, int((ymax - ymin) / step) + 3
        cells = ndimage.gaussian_filter(rng.normal(0, 1, (gy, gx)).astype(np.float32), 3.0)
        cells /= max(float(cells.std()), 1e-9)
        c = ndimage.map_coordinates(cells, [((sy - ymin) / step).ravel(), ((sx - xmin) / step).ravel()], order=1, mode="nearest")
        c = c.reshape(r.shape)
        boundary = np.exp(-((c / 0.35) ** 2))
        grain = ndimage.gaussian_filter(rng.normal(0, 1, r.shape).astype(np.float32), 0.8)
        grain /= max(float(grain.std()), 1e-9)
        return (0.7 * _QS * (1 + 0.1 * grain) + 1.2 * _QS * boundary).astype(np.float32)

    def _plage(self, img: np.ndarray, rng: np.random.Generator, rpx: np.float32) -> None:
        ny, nx = img.shape
        lat = math.radians(rng.choice([-1, 1]) * rng.uniform(8, 30))
        lon = math.radians(rng.uniform(-75, 75))
        cx = rpx * math.cos(lat) * math.sin(lon) - self.x0 / ARCSEC_PER_PX
        cy = rpx * math.sin(lat) - self.y0 / ARCSEC_PER_PX
        sig = rng.uniform(12, 30)
        h = int(3 * sig)
        c0, c1, r0, r1 = max(int(cx) - h, 0), min(int(cx) + h, nx), max(int(cy) - h, 0), min(int(cy) + h, ny)
        if c0 >= c1 or r0 >= r1:
            return
        yy, xx = np.mgrid[r0:r1, c0:c1]
        env = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sig * sig))
        tex = ndimage.gaussian_filter(rng.normal(0, 1, env.shape), 2.0)
        tex = np.clip(1 + 0.8 * tex / max(float(tex.std()), 1e-9), 0.2, None)
        on = self._r_px[r0:r1, c0:c1] < rpx
        img[r0:r1, c0:c1] += (rng.uniform(1.5, 4.0) * _QS * env * tex * on).astype(np.float32)
        self.distractor_notes.append({"kind": "plage", "x": float(cx), "y": float(cy)})

    def _add_distractors(self, on: np.ndarray, r: np.ndarray, rpx: np.float32, dx: np.ndarray, dy: np.ndarray) -> None:
        rng = self.rng
        _ny, nx = self.shape
        sp = self.sprites
        n_on = int(on.sum())
        on_idx = np.flatnonzero(on.ravel())
        tw = 2 * math.pi
        # Flickering bright points (one per ~3000 on-disk pixels, as in a 166x166 quiet-Sun cutout: ~9).
        for _ in range(rng.poisson(n_on / 3000.0) if n_on else 0):
            i = int(rng.choice(on_idx))
            y, x = divmod(i, nx)
            idx, val = _stamp_gauss(self.shape, x + rng.uniform(-0.5, 0.5), y + rng.uniform(-0.5, 0.5), rng.uniform(0.7, 1.4))
            amp = rng.uniform(1.0, 3.0) * _QS
            sp.add(
                idx,
                val,
                (amp, 0.8, tw / rng.uniform(60, 300), rng.uniform(0, tw), 0.0, 0.0, 1.0),
                {"kind": "bright_point", "x": x, "y": y},
            )
        # Short-lived network brightenings (bursts of 30-120 s somewhere in the window).
        span = self.n_frames * self.cadence_s
        for _ in range(rng.poisson(n_on / 2500.0) if n_on else 0):
            i = int(rng.choice(on_idx))
            y, x = divmod(i, nx)
            idx, val = _stamp_gauss(self.shape, float(x), float(y), rng.uniform(0.8, 2.0))
            c = self.t0 + rng.uniform(0, span)
            sp.add(
                idx,
                val,
                (0.0, 0.0, 0.0, 0.0, rng.uniform(0.8, 2.5) * _QS, c, rng.uniform(15, 60)),
                {"kind": "network_burst", "x": x, "y": y},
            )
        # Loops whose brightness oscillates (periods 90-400 s).
        for _ in range(rng.poisson(max(n_on / 12000.0, 1.5)) if n_on else 0):
            i = int(rng.choice(on_idx))
            y, x = divmod(i, nx)
            rad = rng.uniform(8, 30)
            idx, val = _stamp_loop(self.shape, float(x), float(y), rad, rng.uniform(0, math.pi), rng)
            amp = rng.uniform(0.8, 2.0) * _QS
            sp.add(
                idx,
                val,
                (amp, 0.5, tw / rng.uniform(90, 400), rng.uniform(0, tw), 0.0, 0.0, 1.0),
                {"kind": "loop", "x": x, "y": y, "r": rad},
            )
        # Prominences at the limb: bright, slowly changing clouds.
        limb_band = np.flatnonzero(((r > rpx) & (r < rpx + 6)).ravel())
        for _ in range(rng.poisson(limb_band.size / 1500.0) if limb_band.size else 0):
            i = int(rng.choice(limb_band))
            y, x = divmod(i, nx)
            idx, val = _stamp_gauss(self.shape, float(x), float(y), rng.uniform(3, 8))
            amp = rng.uniform(0.4, 1.2) * _QS
            sp.add(
                idx,
                val,
                (amp, 0.1, tw / rng.uniform(600, 1800), rng.uniform(0, tw), 0.0, 0.0, 1.0),
                {"kind": "prominence", "x": x, "y": y},
            )
        # Spicule forest: in each position-angle bin of ~1.5 px a streak rises and falls (1-5 min, 3-10 Mm).
        band = (r >= rpx - 1) & (r < rpx + 16)
        if band.any():
            idx = np.flatnonzero(band.ravel())
            pa = np.arctan2(np.broadcast_to(dy, r.shape).ravel()[idx], np.broadcast_to(dx, r.shape).ravel()[idx])
            nbin = max(int(2 * math.pi * float(rpx) / 1.5), 8)
            b = ((pa + math.pi) / (2 * math.pi) * nbin).astype(np.int64) % nbin
            km_px = km_per_arcsec(self.geo["dsun"]) * ARCSEC_PER_PX
            self._spicules = {
                "idx": idx,
                "bin": b,
                "h": (r.ravel()[idx] - float(rpx)).astype(np.float32),
                "hmax": (rng.uniform(3000, 10000, nbin) / km_px).astype(np.float32),
                "period": rng.uniform(60, 300, nbin),
                "phase": rng.uniform(0, 1, nbin),
                "bright": rng.lognormal(0, 0.35, nbin).astype(np.float32) * np.float32(0.8 * _QS),
            }
            self.distractor_notes.append({"kind": "spicule_forest", "n_bins": nbin})

    # -- jets ---------------------------------------------------------------------------------
    def add_jet(self, spec: JetSpec) -> None:
        """Add a jet to every frame rendered from now on."""
        self.jets.append(spec)

    def ref_level(self, spec: JetSpec) -> float:
        """The level a jet's contrast multiplies: the local static intensity on the disk, the quiet Sun off it."""
        fr = self.blank(0)
        x, y = fr.hpc_to_pixel(*spec.base_hpc_arcsec)
        ny, nx = self.shape
        xi, yi = int(np.clip(round(float(x)), 0, nx - 1)), int(np.clip(round(float(y)), 0, ny - 1))
        if self._r_px[yi, xi] < self._rsun_px:
            win = self.static[max(yi - 8, 0) : yi + 9, max(xi - 8, 0) : xi + 9]
            return float(np.median(win)) if win.size else _QS
        disk = self.static[self._r_px < self._rsun_px]
        return float(np.median(disk)) if disk.size > 100 else _QS

    # -- frames -------------------------------------------------------------------------------
    def frame(self, k: int) -> PooledFrame:
        """Render frame ``k`` (deterministic for a given seed, in any order)."""
        if not 0 <= k < self.n_frames:
            msg = f"frame {k} outside 0..{self.n_frames - 1}"
            raise UsageError(msg)
        t = float(self.times[k])
        frac = k / max(self.n_frames - 1, 1) - 0.5
        img = self.static * (1 + 0.05 * frac * self.evolve)
        spr = self.sprites.image(t)
        if spr is not None:
            img += spr.reshape(self.shape)
        if self._spicules is not None:
            s = self._spicules
            ph = (t - self.t0) / s["period"] + s["phase"]
            hb = (s["hmax"] * np.abs(np.sin(math.pi * ph))).astype(np.float32)
            h = s["h"]
            inside = np.clip(hb[s["bin"]] - h + 0.5, 0, 1)
            val = s["bright"][s["bin"]] * np.exp(-np.clip(h, 0, None) / 5.0) * inside * (h >= 0)
            img.ravel()[s["idx"]] += val.astype(np.float32)
        geom = self.blank(k)
        for spec in self.jets:
            got = _jet_patch(spec, geom, t, self._jet_ref(spec))
            if got is not None:
                rs, cs, patch, _ = got
                img[rs, cs] += patch
        exptime = float(self.exposure.exptime[k])
        rng = np.random.default_rng([self._noise_seed, k])
        var = np.clip(img, 0, None) / (9.0 * exptime) + (_READ_DN / exptime) ** 2 / 9.0
        img = img + np.sqrt(var) * rng.standard_normal(img.shape, dtype=np.float32)
        img *= np.float32(self.exposure.scale[k])
        flags: tuple[str, ...] = ("short_exposure",) if exptime < _EXPTIME else ()
        geom.data = img.astype(np.float32)
        geom.flags = flags
        return geom

    def level1(self, k: int, *, fsn: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Frame ``k`` as a level-1-like AIA file: DN (not DN/s) and AIA's keywords.

        The plate scale stays the scene's (1.8"/px: a pooled cutout, so the demo archive stays
        small); the exposure is the frame's own (short exposures included), so calibration has
        to divide by ``EXPTIME`` as it does for real frames.
        """
        fr = self.frame(k)
        exptime = float(self.exposure.exptime[k])
        t = dt.datetime.fromtimestamp(fr.t_unix, dt.UTC)
        header: dict[str, Any] = {
            "TELESCOP": "SDO/AIA",
            "INSTRUME": "AIA_4",
            "WAVELNTH": 304,
            "WAVEUNIT": "angstrom",
            "T_REC": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "T_OBS": t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "DATE-OBS": t.replace(tzinfo=None).isoformat(timespec="milliseconds"),
            "EXPTIME": exptime,
            "FSN": fsn,
            "QUALITY": 0,
            "IMG_TYPE": "LIGHT",
            "BUNIT": "DN",
            "CTYPE1": "HPLN-TAN",
            "CTYPE2": "HPLT-TAN",
            "CUNIT1": "arcsec",
            "CUNIT2": "arcsec",
            "CDELT1": fr.arcsec_per_px,
            "CDELT2": fr.arcsec_per_px,
            # Pixel (0, 0) is at (x0, y0): the disk centre (CRVAL = 0) is at 1-based pixel 1 - x0 / scale.
            "CRPIX1": 1.0 - fr.x0_arcsec / fr.arcsec_per_px,
            "CRPIX2": 1.0 - fr.y0_arcsec / fr.arcsec_per_px,
            "CRVAL1": 0.0,
            "CRVAL2": 0.0,
            "CROTA2": 0.0,
            "DSUN_OBS": fr.dsun_m,
            "HGLN_OBS": 0.0,
            "HGLT_OBS": fr.b0_deg,
            "CRLT_OBS": fr.b0_deg,
            "CRLN_OBS": fr.l0_deg,
            "RSUN_OBS": fr.rsun_arcsec,
            "RSUN_REF": 696000000.0,
        }
        return (fr.data * np.float32(exptime)).astype(np.float32), header

    def _jet_ref(self, spec: JetSpec) -> float:
        if spec not in self._ref_cache:
            self._ref_cache[spec] = self.ref_level(spec)
        return self._ref_cache[spec]

    def truth(self) -> dict[str, Any]:
        """Ground truth of the scene: jets (with the frames they are visible in) and distractors."""
        jets = []
        for spec in self.jets:
            geom = self.blank(0)
            lengths, vis = [], []
            for k, t in enumerate(self.times):
                got = _jet_patch(spec, geom, float(t), 1.0)
                if got is not None:
                    lengths.append(got[3])
                    vis.append(k)
            jets.append(_jet_truth(spec, geom, self.times, lengths, vis) | {"spec": asdict(spec)})
        return {
            "jet": bool(jets),
            "jets": jets,
            "distractors": self.distractor_notes,
            "exposure": {"exptime_s": self.exposure.exptime.tolist(), "scale": self.exposure.scale.tolist()},
            "cadence_s": self.cadence_s,
            "n_frames": self.n_frames,
            "frame_times": self.times.tolist(),
            "shape": list(self.shape),
            "x0_arcsec": self.x0,
            "y0_arcsec": self.y0,
            "arcsec_per_px": ARCSEC_PER_PX,
            "rsun_arcsec": self.geo["rsun"],
            "generator": {"name": "heliowatch.synthetic.jets", "seed": self.seed},
        }


def synth_full_disk(
    t0: dt.datetime | float,
    *,
    n_jets: int,
    seed: int,
    n_frames: int,
    cadence_s: float = 24.0,
    size: int = 1365,
    stats: JetStats | None = None,
    distractors: bool = True,
) -> tuple[list[PooledFrame], dict[str, Any]]:
    """A pooled full-disk 304 A sequence (1.8"/px, disk centre in the middle) with ``n_jets`` catalogue jets.

    Parameters
    ----------
    t0 : datetime or float
        Time of the first frame (UTC).
    n_jets : int
        Jets drawn from ``stats`` at their catalogue positions (rescaled to this date's radius),
        starting between 5 % and 60 % of the window.
    seed : int
    n_frames : int
    cadence_s : float
    size : int
        Side in pixels at 1.8"/px (1365 holds the whole disk and limb; smaller crops around disk centre).
    stats : JetStats or None
        The catalogue (None: the 32 embedded real rows).
    distractors : bool

    Returns
    -------
    (frames, truth)
        ``truth["jets"]`` lists each jet's base (pixels and arcsec), direction, speed, length and times.
    """
    scene = full_disk_scene(
        t0, n_jets=n_jets, seed=seed, n_frames=n_frames, cadence_s=cadence_s, size=size, stats=stats, distractors=distractors
    )
    return [scene.frame(k) for k in range(scene.n_frames)], scene.truth()


def full_disk_scene(
    t0: dt.datetime | float,
    *,
    n_jets: int,
    seed: int,
    n_frames: int,
    cadence_s: float = 24.0,
    size: int = 1365,
    stats: JetStats | None = None,
    distractors: bool = True,
) -> FullDiskScene:
    """The scene behind :func:`synth_full_disk`, rendered lazily frame by frame (long evaluation streams)."""
    if size < 16:
        msg = f"size must be >= 16 (got {size})"
        raise UsageError(msg)
    if n_jets < 0:
        msg = f"n_jets must be >= 0 (got {n_jets})"
        raise UsageError(msg)
    scene = FullDiskScene(
        t0, shape=(size, size), seed=seed, n_frames=n_frames, cadence_s=cadence_s, distractors=distractors, active_regions=4
    )
    rng = np.random.default_rng([seed, 1])
    span = n_frames * cadence_s
    for _ in range(n_jets):
        spec = random_jet_spec(rng, stats, start_t=scene.t0 + rng.uniform(0.05, 0.6) * span, rsun_arcsec=scene.geo["rsun"])
        scene.add_jet(spec)
    return scene


def synth_jet_cutout(
    t0: dt.datetime | float,
    *,
    jet: bool,
    stats: JetStats | None,
    seed: int,
    n_frames: int = 30,
    cadence_s: float = 24.0,
    fov_px: int = 166,
    background: np.ndarray | None = None,
    distractors: bool = True,
) -> tuple[list[PooledFrame], dict[str, Any]]:
    """A 166x166 (1.8"/px) cutout sequence, with or without one catalogue jet, at a catalogue-like place.

    Jet and non-jet cutouts are centred the same way (near a catalogue base point: 60 % at the
    limb), so a detector cannot tell them apart by where they are.

    Parameters
    ----------
    t0 : datetime or float
        Time of the first frame (UTC).
    jet : bool
    stats : JetStats or None
        The catalogue (None: the 32 embedded real rows).
    seed : int
    n_frames, cadence_s : int, float
        30 frames at 24 s as in Charlet et al.
    fov_px : int
        Side of the cutout.
    background : numpy.ndarray or None
        A real 2-D image (DN/s, ``fov_px`` square) to use instead of the synthetic network; the
        distractors and noise are still drawn on top.
    distractors : bool

    Returns
    -------
    (frames, truth)
        ``truth["jet"]``; ``truth["jets"]`` holds the jet (base in pixels and arcsec, direction,
        speed, length, start/peak/end times) or nothing.
    """
    if fov_px < 16:
        msg = f"fov_px must be >= 16 (got {fov_px})"
        raise UsageError(msg)
    rng = np.random.default_rng([seed, 7])
    t_unix, d0 = _t_unix(t0)
    rsun = _geometry(d0)["rsun"]
    span = n_frames * cadence_s
    spec = random_jet_spec(rng, stats, start_t=t_unix + rng.uniform(0.05, 0.5) * span, rsun_arcsec=rsun)
    bx, by = spec.base_hpc_arcsec
    half = (fov_px - 1) / 2 * ARCSEC_PER_PX
    pa = math.radians(spec.direction_deg)
    reach = min(spec.height_arcsec, 0.8 * half)
    cx = bx - math.sin(pa) * 0.4 * reach + rng.uniform(-0.15, 0.15) * half
    cy = by + math.cos(pa) * 0.4 * reach + rng.uniform(-0.15, 0.15) * half
    # Keep the base well inside the field (at least 12 % of the side from an edge).
    lim = half * 0.76
    cx = min(max(cx, bx - lim), bx + lim)
    cy = min(max(cy, by - lim), by + lim)
    scene = FullDiskScene(
        t_unix,
        shape=(fov_px, fov_px),
        centre_hpc_arcsec=(cx, cy),
        seed=int(rng.integers(0, 2**31)),
        n_frames=n_frames,
        cadence_s=cadence_s,
        distractors=distractors,
        background=background,
        active_regions=1 if rng.random() < 0.3 else 0,
    )
    if jet:
        scene.add_jet(spec)
    truth = scene.truth()
    truth["centre_hpc_arcsec"] = (cx, cy)
    return [scene.frame(k) for k in range(scene.n_frames)], truth


def inject_jet(
    background_frames: list[PooledFrame], params: JetSpec | dict[str, Any], seed: int
) -> tuple[list[PooledFrame], dict[str, Any]]:
    """Add a synthetic jet to real frames, keeping their own frame-to-frame variation.

    The jet's intensity is ``contrast`` times the median of the background's first frame over
    the disk (over all finite pixels where the field has no disk), with the photon noise of
    its own counts added (exposure from the frame's flags: 2.9 s unless ``short_exposure``).

    Parameters
    ----------
    background_frames : list of PooledFrame
        Real (or any) frames in DN/s, all on one grid.
    params : JetSpec or dict
        The jet (a dict takes :class:`JetSpec`'s field names).
    seed : int
        Seeds the jet's photon noise.

    Returns
    -------
    (frames, truth)
        New frames (the inputs are not modified) and the jet's truth as in :func:`synth_jet_cutout`.
    """
    if not background_frames:
        msg = "inject_jet needs at least one background frame"
        raise UsageError(msg)
    spec = params if isinstance(params, JetSpec) else JetSpec(**params)
    f0 = background_frames[0]
    d0 = f0.data
    rr = f0.radius_map()
    disk = d0[(rr < 0.98) & np.isfinite(d0)]
    ref = float(np.median(disk)) if disk.size > 50 else float(np.nanmedian(d0))
    rng = np.random.default_rng([seed, 11])
    out: list[PooledFrame] = []
    lengths, vis = [], []
    for k, fr in enumerate(background_frames):
        data = fr.data.astype(np.float32, copy=True)
        got = _jet_patch(spec, fr, fr.t_unix, ref)
        if got is not None:
            rs, cs, patch, length = got
            exptime = 1.0 if "short_exposure" in fr.flags else _EXPTIME
            noise = np.sqrt(np.clip(patch, 0, None) / (9.0 * exptime)) * rng.standard_normal(patch.shape).astype(np.float32)
            data[rs, cs] += patch + noise
            lengths.append(length)
            vis.append(k)
        out.append(
            PooledFrame(
                data=data,
                t_unix=fr.t_unix,
                arcsec_per_px=fr.arcsec_per_px,
                x0_arcsec=fr.x0_arcsec,
                y0_arcsec=fr.y0_arcsec,
                rsun_arcsec=fr.rsun_arcsec,
                b0_deg=fr.b0_deg,
                l0_deg=fr.l0_deg,
                dsun_m=fr.dsun_m,
                valid=fr.valid,
                flags=fr.flags,
            )
        )
    times = np.array([f.t_unix for f in background_frames])
    truth = _jet_truth(spec, f0, times, lengths, vis) | {"spec": asdict(spec), "ref_level": ref}
    return out, {"jet": True, "jets": [truth]}
