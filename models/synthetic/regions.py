"""Active regions of a requested Mt. Wilson class, as sets of radial-field flux elements.

A region is built in its own local frame: ``x`` westward and ``y`` northward, in
heliographic degrees from the region's centre. Each element is a Gaussian of the radial
field, ``B(r) = B0 exp(-r^2 / 2 s^2)`` carrying ``2 pi s^2 B0`` of flux. Sunspots are an
umbral core (up to ~3 kG) plus a penumbral Gaussian; plage is a cloud of weak elements.

The classes follow the Mt. Wilson definitions (Hale et al. 1919; Kunzel 1960):

- ``alpha``: one dominant spot; its opposite flux is diffuse plage.
- ``beta``: a bipole: leading and following spots of opposite polarity, tilted by Joy's law
  (leader closer to the equator), leading polarity by Hale's law for the hemisphere and cycle.
- ``gamma``: several spots with polarities so intermixed that no line divides them.
- ``beta-gamma``: a bipole with an intruding spot of the wrong polarity in one group.
- ``*-delta``: the above plus opposite-polarity umbrae within one penumbra (< 2 deg apart).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from heliowatch.models.measures import RSUN_REF_M
from heliowatch.models.synthetic.ephemeris import hale_leading_sign

__all__ = ["MTWILSON_CLASSES", "SYNTH_CLASSES", "Element", "Region", "make_region", "render"]

MTWILSON_CLASSES = ("alpha", "beta", "gamma", "beta-gamma", "delta", "beta-delta", "beta-gamma-delta", "gamma-delta")
#: Classes the generator can make ("delta" alone is not a Mt. Wilson class NOAA issues).
SYNTH_CLASSES = ("alpha", "beta", "gamma", "beta-gamma", "beta-delta", "beta-gamma-delta", "gamma-delta")

_CM_PER_DEG = RSUN_REF_M * 100 * math.pi / 180


@dataclass(frozen=True)
class Element:
    """One Gaussian flux element: centre (x, y) and width in degrees, peak radial field in G."""

    x: float
    y: float
    sigma: float
    b0: float

    @property
    def flux_mx(self) -> float:
        """Signed flux of the element, Mx."""
        return 2 * math.pi * (self.sigma * _CM_PER_DEG) ** 2 * self.b0


@dataclass
class Region:
    """A synthetic active region and its truth."""

    mtwilson: str
    lat: float
    lon: float
    elements: list[Element] = field(default_factory=list)
    leading_sign: int = 1
    tilt_deg: float = 0.0

    @property
    def extent_deg(self) -> float:
        """Radius (deg) beyond which the region's field is negligible (< ~1 G)."""
        return max(math.hypot(e.x, e.y) + 4 * e.sigma for e in self.elements)

    def signed_flux(self) -> tuple[float, float]:
        """Analytic (positive, negative) flux of the elements, Mx."""
        p = sum(e.flux_mx for e in self.elements if e.b0 > 0)
        n = -sum(e.flux_mx for e in self.elements if e.b0 < 0)
        return p, n


def _spot(x: float, y: float, sign: int, rng: np.random.Generator, *, big: float = 1.0) -> list[Element]:
    """An irregular sunspot: a few jittered umbral cores plus a fragmented penumbra."""
    su = rng.uniform(0.3, 0.5) * big
    bu = sign * rng.uniform(2200, 3000)
    out = [Element(x, y, su, bu * 0.7)]
    for _ in range(int(rng.integers(2, 4))):
        out.append(Element(x + rng.normal(0, 0.25 * su), y + rng.normal(0, 0.25 * su), su * rng.uniform(0.4, 0.7), bu * 0.3))
    n_pen = int(rng.integers(10, 18))
    for k in range(n_pen):
        ang = 2 * math.pi * k / n_pen + rng.normal(0, 0.15)
        r = su * rng.uniform(1.3, 2.2)
        out.append(
            Element(x + r * math.cos(ang), y + r * math.sin(ang), su * rng.uniform(0.35, 0.6), bu * rng.uniform(0.25, 0.45))
        )
    return out


def _plage(cx: float, cy: float, sign: int, flux_mx: float, spread: float, rng: np.random.Generator) -> list[Element]:
    """Small kG flux-tube clusters (1-2 Mm, 200-900 G) of one polarity carrying ``flux_mx``."""
    out: list[Element] = []
    total = 0.0
    while total < flux_mx:
        # Plage gathers on network lanes: draw cluster centres, then tubes around them.
        kx, ky = cx + rng.normal(0, spread), cy + rng.normal(0, spread * 0.7)
        for _ in range(int(rng.integers(3, 9))):
            e = Element(kx + rng.normal(0, 0.25), ky + rng.normal(0, 0.25), rng.uniform(0.05, 0.12), sign * rng.uniform(200, 900))
            out.append(e)
            total += abs(e.flux_mx)
    return out


def _axis(lat: float, sep: float, tilt: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Leading and following positions of a bipole of separation ``sep`` and Joy tilt."""
    t = math.radians(tilt)
    dx, dy = 0.5 * sep * math.cos(t), 0.5 * sep * math.sin(t)
    # Joy: the leader is closer to the equator.
    towards_eq = -1 if lat > 0 else 1
    return (dx, towards_eq * dy), (-dx, -towards_eq * dy)


def _balance(reg: Region, rng: np.random.Generator, spread: float) -> None:
    """Add plage of the deficient polarity, near that polarity's flux, to balance the region."""
    p, n = reg.signed_flux()
    if abs(p - n) < 0.05 * (p + n):
        return
    sign = -1 if p > n else 1
    same = [e for e in reg.elements if np.sign(e.b0) == sign] or reg.elements
    w = np.array([abs(e.flux_mx) for e in same])
    cx = float(np.average([e.x for e in same], weights=w))
    cy = float(np.average([e.y for e in same], weights=w))
    reg.elements += _plage(cx, cy, sign, abs(p - n), spread, rng)


def make_region(mtwilson: str, lat: float, lon: float, t: dt.datetime, rng: np.random.Generator, *, size: float = 1.0) -> Region:
    """Build a region of class ``mtwilson`` centred at Stonyhurst (``lat``, ``lon``).

    Parameters
    ----------
    mtwilson : str
        One of :data:`SYNTH_CLASSES`.
    lat, lon : float
        Stonyhurst heliographic position, degrees.
    t : datetime
        Observation time (picks the solar cycle for Hale's law).
    rng : numpy.random.Generator
        Source of randomness (seeded by the caller).
    size : float
        Scale of the region (1 is a typical spot group ~10 deg across).

    Raises
    ------
    ValueError
        For an unknown class or a non-positive size.
    """
    if mtwilson not in SYNTH_CLASSES:
        msg = f"unknown Mt. Wilson class {mtwilson!r}; choose from {', '.join(SYNTH_CLASSES)}"
        raise ValueError(msg)
    if size <= 0:
        msg = f"region size must be > 0 (got {size})"
        raise ValueError(msg)
    lead = hale_leading_sign(lat, t)
    tilt = 0.5 * abs(lat) + rng.normal(0, 3)  # Joy's law with scatter
    reg = Region(mtwilson, lat, lon, leading_sign=lead, tilt_deg=tilt)
    base = mtwilson.replace("-delta", "")
    sep = rng.uniform(5, 9) * size
    (lx, ly), (fx, fy) = _axis(lat, sep, tilt)
    el = reg.elements
    if base == "alpha":
        el += _spot(0.0, 0.0, lead, rng, big=size)
        p, n = reg.signed_flux()
        el += _plage(-2.5 * size, 0.0, -lead, 0.9 * max(p, n), 1.4 * size, rng)
    elif base == "beta":
        el += _spot(lx, ly, lead, rng, big=size)
        el += _spot(fx, fy, -lead, rng, big=0.85 * size)
    elif base == "beta-gamma":
        el += _spot(lx, ly, lead, rng, big=size)
        el += _spot(fx, fy, -lead, rng, big=0.85 * size)
        # A following-polarity spot west of the leader: no single line separates the polarities.
        el += _spot(lx + 3.0 * size, ly + rng.choice([-1, 1]) * 1.5 * size, -lead, rng, big=0.6 * size)
        el += _spot(fx - 3.0 * size, fy + rng.choice([-1, 1]) * 1.5 * size, lead, rng, big=0.6 * size)
    elif base == "gamma":
        # Spots on a jittered 3x2 grid with polarities in a checkerboard: thoroughly mixed.
        for i, gx in enumerate((-3.5, 0.0, 3.5)):
            for j, gy in enumerate((-1.8, 1.8)):
                sign = lead if (i + j) % 2 == 0 else -lead
                el += _spot(gx * size + rng.normal(0, 0.3), gy * size + rng.normal(0, 0.3), sign, rng, big=0.7 * size)
    if mtwilson.endswith("-delta"):
        # Opposite umbrae 0.5-1.0 deg apart inside one penumbra, next to the leading spot.
        ang = rng.uniform(0, 2 * math.pi)
        d = rng.uniform(0.5, 1.0)
        cx, cy = (lx, ly) if base != "gamma" else (0.0, 0.0)
        px, py = cx + 0.5 * d * math.cos(ang), cy + 0.5 * d * math.sin(ang)
        nx, ny = cx - 0.5 * d * math.cos(ang), cy - 0.5 * d * math.sin(ang)
        el += [
            Element(px, py, rng.uniform(0.3, 0.45), lead * rng.uniform(2400, 3000)),
            Element(nx, ny, rng.uniform(0.3, 0.45), -lead * rng.uniform(2400, 3000)),
        ]
    _balance(reg, rng, 1.2 * size)
    # Faint plage all around, balanced, for realism.
    p, n = reg.signed_flux()
    reg.elements += _plage(0.0, 0.0, 1, 0.1 * p, 3.0 * size, rng) + _plage(0.0, 0.0, -1, 0.1 * p, 3.0 * size, rng)
    return reg


def render(reg: Region, x: np.ndarray, y: np.ndarray, *, res_deg: float = 0.02) -> np.ndarray:
    """Radial field (G) of a region at local offsets ``x``, ``y`` (degrees).

    Elements are deposited on a fine local grid (``res_deg``), grouped by width into
    log-spaced bins (< 4 % width error), each bin Gaussian-filtered once, and the grid is
    interpolated at the requested offsets: hundreds of plage elements cost one filter per
    bin instead of one pass over the image per element.
    """
    ext = reg.extent_deg
    n = math.ceil(2 * ext / res_deg) + 1
    grid = np.zeros((n, n))
    bins = np.geomspace(0.03, 4.0, 64)
    by_bin: dict[int, list[Element]] = {}
    for e in reg.elements:
        by_bin.setdefault(int(np.argmin(np.abs(np.log(bins / e.sigma)))), []).append(e)
    for b, els in by_bin.items():
        sig_px = bins[b] / res_deg
        layer = np.zeros((n, n))
        for e in els:
            gx, gy = (e.x + ext) / res_deg, (e.y + ext) / res_deg
            ix, iy = math.floor(gx), math.floor(gy)
            fx, fy = gx - ix, gy - iy
            amp = e.b0 * 2 * math.pi * (e.sigma / res_deg) ** 2
            for dy, wy in ((0, 1 - fy), (1, fy)):
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    if 0 <= iy + dy < n and 0 <= ix + dx < n:
                        layer[iy + dy, ix + dx] += amp * wx * wy
        grid += ndimage.gaussian_filter(layer, sig_px, mode="constant", truncate=4.0)
    coords = np.stack([(np.asarray(y) + ext) / res_deg, (np.asarray(x) + ext) / res_deg])
    return ndimage.map_coordinates(grid, coords.reshape(2, -1), order=1, mode="constant", cval=0.0).reshape(np.shape(x))


def local_offsets(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic tangent-plane offsets (degrees) of points from a region centre.

    ``x`` is westward and ``y`` northward; the local frame is the region's own, so the
    region keeps its shape wherever it is placed on the sphere (foreshortening comes from
    the observer's projection, not from here).
    """
    la, lo = np.radians(lat), np.radians(lon - lon0)
    la0 = math.radians(lat0)
    x = np.cos(la) * np.sin(lo)
    y = np.sin(la) * math.cos(la0) - np.cos(la) * math.sin(la0) * np.cos(lo)
    return np.degrees(np.arcsin(np.clip(x, -1, 1))), np.degrees(np.arcsin(np.clip(y, -1, 1)))
