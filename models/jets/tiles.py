"""Overlapping 166x166 tiles of a pooled AIA 304 A frame, and the tiles the jet network reads.

The jet network sees 166x166 pooled pixels (500x500 at 0.6"/px pooled 3x3, 1.8"/px), the
field of view of Charlet et al.'s cutouts. The whole pooled disk (1365x1365) is covered by
tiles overlapping by half (stride 83 by default): every point then lies in the central half
of some tile, where the training jets sit, so a jet is never seen only at a tile's edge. The
grid reaches out to 1.2 R_sun so jets at the limb and above it are seen too; tiles with no
pixel within that reach are skipped. An input smaller than a tile (a 120"-300" cutout) is
one tile, centred and zero-padded: never resized, as the model policy requires.

Geometry: ``centre_px`` is the (x, y) pixel of the disk centre, 0-based, with the frame north
up and rows increasing northwards (FITS order), so helioprojective Tx, Ty grow with x and y.

Normalisation (what :func:`cut` returns, the jet models' input): each tile in DN/s divided by
the median of its in-image finite pixels (floored at :data:`NORM_FLOOR_DN_S`) and clipped to
+-:data:`NORM_CLIP`. The median of a tile is the quiet chromospheric network, which a jet
(a few percent of the pixels) hardly moves; dividing by it cancels exposure, calibration and
the 304 channel's years-long sensitivity loss. The floor keeps mostly off-limb tiles (a few
DN/s) from amplifying noise; the clip keeps saturated flare kernels in range.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from heliowatch.models.core.errors import UsageError

__all__ = [
    "NORM_CLIP",
    "NORM_FLOOR_DN_S",
    "REACH_RSUN",
    "STRIDE",
    "TILE",
    "FrameGeometry",
    "Tile",
    "TileGrid",
    "cut",
    "tile_medians",
]

#: Tile side in pooled pixels (1.8"/px).
TILE = 166
#: Default stride: half overlap.
STRIDE = 83
#: How far beyond the disk the grid reaches, in solar radii (the limb and just above it).
REACH_RSUN = 1.2
#: Floor of a tile's median in DN/s (off-limb 304 is a few DN/s; the quiet disk ~30-100).
NORM_FLOOR_DN_S = 2.0
#: Normalised values are clipped to +- this (a jet is ~3-15x its surroundings).
NORM_CLIP = 50.0


class FrameGeometry(Protocol):
    """What a grid needs of a frame (:class:`heliowatch.models.jets.frames.PooledFrame` has it)."""

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        ...

    arcsec_per_px: float
    x0_arcsec: float
    y0_arcsec: float
    rsun_arcsec: float


@dataclass(frozen=True)
class Tile:
    """One tile of a grid.

    Attributes
    ----------
    index : int
        Position in the grid (the row of :func:`cut`'s output and of the feature cache).
    y0, x0 : int
        The tile's origin in image pixels (negative where it is padded).
    src, dst : tuple of slice
        ``tile[dst] = image[src]``: the in-image part and where it lands in the tile.
    centre_px : tuple of float
        (x, y) of the tile centre in image pixels.
    centre_hpc : tuple of float
        (Tx, Ty) of the tile centre in helioprojective arcsec.
    r_min, r_max : float
        Distance from disk centre of the tile's nearest and farthest in-image pixel, in R_sun.
    kind : str
        ``disk`` (entirely inside the limb), ``limb`` (crosses it) or ``off-limb``.
    padded : bool
        Part of the tile lies outside the image (zero-padded).
    """

    index: int
    y0: int
    x0: int
    src: tuple[slice, slice]
    dst: tuple[slice, slice]
    centre_px: tuple[float, float]
    centre_hpc: tuple[float, float]
    r_min: float
    r_max: float
    kind: str
    padded: bool


def _axis_origins(length: int, centre: float, reach_px: float, size: int, stride: int) -> list[int]:
    """Tile origins along one axis covering ``[centre - reach, centre + reach]`` within the image."""
    if length <= size:
        return [-((size - length) // 2)]  # one tile, the image centred in it
    lo = max(0, math.floor(centre - reach_px))
    hi = min(length, math.ceil(centre + reach_px) + 1)
    if hi <= lo:
        return []
    if hi - lo <= size:
        return [min(max(round((lo + hi - size) / 2), 0), length - size)]
    origins = list(range(lo, hi - size, stride))
    origins.append(hi - size)  # the last tile ends exactly at the reach: consecutive origins <= stride apart
    return origins


def _kind(r_min: float, r_max: float) -> str:
    if r_max <= 1.0:
        return "disk"
    if r_min >= 1.0:
        return "off-limb"
    return "limb"


@dataclass(frozen=True)
class TileGrid:
    """Overlapping tiles of one pooled frame geometry (build with :meth:`build`, :meth:`single` or :meth:`from_header`).

    Keep one grid while the geometry holds: the feature cache indexes tiles by position, so a
    new grid (another image size, disk centre or radius) needs a fresh cache; :attr:`key` says
    when two grids are the same.
    """

    shape: tuple[int, int]
    arcsec_per_px: float
    centre_px: tuple[float, float]
    rsun_px: float
    stride: int
    size: int
    reach_rsun: float | None
    tiles: tuple[Tile, ...] = field(repr=False)

    @classmethod
    def build(
        cls,
        shape: tuple[int, int],
        arcsec_per_px: float,
        centre_px: tuple[float, float],
        rsun_px: float,
        *,
        stride: int = STRIDE,
        reach_rsun: float | None = REACH_RSUN,
        size: int = TILE,
    ) -> TileGrid:
        """The grid of a frame of ``shape`` (rows, columns) with the disk centre at ``centre_px`` (x, y).

        Parameters
        ----------
        shape : tuple of int
            Image shape (rows, columns) in pooled pixels.
        arcsec_per_px : float
            Plate scale (1.8 for the pooled frames the model was trained at).
        centre_px : tuple of float
            Disk centre (x, y), 0-based pixels; may lie outside the image (cutouts).
        rsun_px : float
            Solar radius in pixels.
        stride : int
            Tile step in pixels (83: half overlap; up to ``size`` for no overlap).
        reach_rsun : float or None
            Skip tiles with no pixel within this many radii (None: tile the whole image).
        size : int
            Tile side.

        Raises
        ------
        UsageError
            On a non-positive stride, scale or radius, or an empty image.
        """
        rows, cols = (int(v) for v in shape)
        if rows < 1 or cols < 1:
            msg = f"cannot tile an empty image of shape {shape}"
            raise UsageError(msg)
        if not 1 <= stride <= size:
            msg = f"tile stride must be 1..{size} pixels (got {stride})"
            raise UsageError(msg)
        if not (arcsec_per_px > 0 and rsun_px > 0):
            msg = f"plate scale and solar radius must be positive (got {arcsec_per_px} arcsec/px, {rsun_px} px)"
            raise UsageError(msg)
        cx, cy = float(centre_px[0]), float(centre_px[1])
        reach_px = math.inf if reach_rsun is None else reach_rsun * rsun_px
        small = rows <= size and cols <= size
        if small or not math.isfinite(reach_px):
            ys, xs = _axis_origins_all(rows, size, stride), _axis_origins_all(cols, size, stride)
        else:
            ys, xs = _axis_origins(rows, cy, reach_px, size, stride), _axis_origins(cols, cx, reach_px, size, stride)
        tiles: list[Tile] = []
        for y0 in ys:
            for x0 in xs:
                ya, yb, xa, xb = max(y0, 0), min(y0 + size, rows), max(x0, 0), min(x0 + size, cols)
                # Nearest and farthest in-image pixel centre of the tile from the disk centre.
                dx_n = max(xa - cx, 0.0, cx - (xb - 1))
                dy_n = max(ya - cy, 0.0, cy - (yb - 1))
                dx_f = max(abs(xa - cx), abs(xb - 1 - cx))
                dy_f = max(abs(ya - cy), abs(yb - 1 - cy))
                r_min, r_max = math.hypot(dx_n, dy_n) / rsun_px, math.hypot(dx_f, dy_f) / rsun_px
                if not small and r_min * rsun_px > reach_px:
                    continue  # nothing of the Sun's surroundings in this tile
                tx, ty = x0 + (size - 1) / 2, y0 + (size - 1) / 2
                tiles.append(
                    Tile(
                        index=len(tiles),
                        y0=y0,
                        x0=x0,
                        src=(slice(ya, yb), slice(xa, xb)),
                        dst=(slice(ya - y0, yb - y0), slice(xa - x0, xb - x0)),
                        centre_px=(tx, ty),
                        centre_hpc=((tx - cx) * arcsec_per_px, (ty - cy) * arcsec_per_px),
                        r_min=r_min,
                        r_max=r_max,
                        kind=_kind(r_min, r_max),
                        padded=(yb - ya) < size or (xb - xa) < size,
                    )
                )
        return cls((rows, cols), float(arcsec_per_px), (cx, cy), float(rsun_px), stride, size, reach_rsun, tuple(tiles))

    @classmethod
    def single(
        cls,
        shape: tuple[int, int],
        *,
        arcsec_per_px: float = 1.8,
        centre_px: tuple[float, float] | None = None,
        rsun_px: float | None = None,
    ) -> TileGrid:
        """One tile for a cutout no larger than a tile (training sequences, user cutouts).

        Without a geometry the disk centre is taken at the cutout centre and the radius as
        infinite: the tile is ``disk`` and its helioprojective centre is (0, 0), i.e. positions
        are relative to the cutout.

        Raises
        ------
        UsageError
            If the cutout is larger than a tile (use :meth:`build`).
        """
        rows, cols = (int(v) for v in shape)
        if rows > TILE or cols > TILE:
            msg = f"a {rows}x{cols} image is larger than one {TILE}x{TILE} tile: use TileGrid.build"
            raise UsageError(msg)
        c = centre_px if centre_px is not None else ((cols - 1) / 2, (rows - 1) / 2)
        return cls.build((rows, cols), arcsec_per_px, c, rsun_px if rsun_px is not None else math.inf)

    @classmethod
    def from_header(cls, header: Mapping[str, Any], shape: tuple[int, int], **kw: Any) -> TileGrid:
        """The grid of a north-up pooled frame from its FITS WCS keywords (CRPIX, CRVAL, CDELT, RSUN_OBS).

        Raises
        ------
        UsageError
            If a keyword is missing, the axes have different scales, or the frame is rotated
            (CROTA2 not ~0: rotate it north up first).
        """
        try:
            crpix = (float(header["CRPIX1"]), float(header["CRPIX2"]))
            crval = (float(header["CRVAL1"]), float(header["CRVAL2"]))
            cdelt = (float(header["CDELT1"]), float(header["CDELT2"]))
            rsun_arcsec = float(header["RSUN_OBS"])
        except (KeyError, TypeError, ValueError) as e:
            msg = f"304 frame header lacks a usable WCS keyword ({e})"
            raise UsageError(msg) from None
        if abs(float(header.get("CROTA2", 0.0) or 0.0)) > 0.5:
            msg = f"304 frame is rotated (CROTA2 = {header.get('CROTA2')}): rotate it north up before tiling"
            raise UsageError(msg)
        if not math.isclose(cdelt[0], cdelt[1], rel_tol=1e-3) or cdelt[0] <= 0:
            msg = f"304 frame pixels are not square and positive (CDELT1 {cdelt[0]}, CDELT2 {cdelt[1]})"
            raise UsageError(msg)
        # FITS pixels are 1-based; the disk centre is where the helioprojective coordinates are 0.
        centre = (crpix[0] - 1 - crval[0] / cdelt[0], crpix[1] - 1 - crval[1] / cdelt[1])
        rows, cols = (int(v) for v in shape)
        if rows <= TILE and cols <= TILE:
            return cls.single((rows, cols), arcsec_per_px=cdelt[0], centre_px=centre, rsun_px=rsun_arcsec / cdelt[0])
        return cls.build((rows, cols), cdelt[0], centre, rsun_arcsec / cdelt[0], **kw)

    @classmethod
    def for_frame(cls, frame: FrameGeometry, **kw: Any) -> TileGrid:
        """The grid of a :class:`heliowatch.models.jets.frames.PooledFrame` (or anything with its geometry).

        ``kw`` goes to :meth:`build` (stride, reach_rsun); a frame no larger than a tile is one tile.
        """
        rows, cols = frame.shape
        scale = float(frame.arcsec_per_px)
        centre = (-float(frame.x0_arcsec) / scale, -float(frame.y0_arcsec) / scale)
        rsun_px = float(frame.rsun_arcsec) / scale
        if rows <= TILE and cols <= TILE:
            return cls.single((rows, cols), arcsec_per_px=scale, centre_px=centre, rsun_px=rsun_px)
        return cls.build((rows, cols), scale, centre, rsun_px, **kw)

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self) -> Iterator[Tile]:
        return iter(self.tiles)

    @property
    def key(self) -> tuple[Any, ...]:
        """Equal for grids whose tiles are the same (a feature cache stays valid across them)."""
        return (self.shape, self.size, tuple((t.y0, t.x0) for t in self.tiles))

    @property
    def kinds(self) -> np.ndarray:
        """``disk`` / ``limb`` / ``off-limb`` per tile."""
        return np.array([t.kind for t in self.tiles], dtype=object)

    @property
    def centres_hpc(self) -> np.ndarray:
        """(n_tiles, 2) helioprojective (Tx, Ty) of the tile centres, arcsec."""
        return np.array([t.centre_hpc for t in self.tiles], dtype=np.float64).reshape(-1, 2)

    def coverage(self) -> np.ndarray:
        """How many tiles cover each image pixel (rows, columns)."""
        cov = np.zeros(self.shape, dtype=np.int32)
        for t in self.tiles:
            cov[t.src] += 1
        return cov


def _axis_origins_all(length: int, size: int, stride: int) -> list[int]:
    """Origins covering a whole axis (no reach limit)."""
    if length <= size:
        return [-((size - length) // 2)]
    return [*range(0, length - size, stride), length - size]


def _check(frame_data: np.ndarray, grid: TileGrid) -> np.ndarray:
    img = np.asarray(frame_data, dtype=np.float32)
    if img.shape != grid.shape:
        msg = f"304 frame of shape {img.shape} does not match its tile grid ({grid.shape})"
        raise UsageError(msg)
    return img


def _median(patch: np.ndarray) -> float:
    # Every other pixel in each direction: the median of 7k pixels is as robust as of 27k, 4x cheaper.
    sub = patch[::2, ::2]
    finite = np.isfinite(sub)
    if not finite.all():
        sub = sub[finite]
    return float(np.median(sub)) if sub.size else math.nan


def tile_medians(frame_data: np.ndarray, grid: TileGrid) -> np.ndarray:
    """The median (DN/s) of each tile's in-image finite pixels: the scale :func:`cut` divides by, before the floor."""
    img = _check(frame_data, grid)
    return np.array([_median(img[t.src]) for t in grid.tiles], dtype=np.float64)


def cut(frame_data: np.ndarray, grid: TileGrid, *, normalise: bool = True) -> np.ndarray:
    """The tiles of a pooled 304 A frame as the jet encoder's input.

    Parameters
    ----------
    frame_data : ndarray
        The pooled frame (rows, columns) in DN/s, north up, of the grid's shape; non-finite
        pixels (off the detector, missing blocks) become 0 and do not enter the median.
    grid : TileGrid
        The grid of this frame's geometry.
    normalise : bool
        Divide each tile by its median (floored at :data:`NORM_FLOOR_DN_S`) and clip to
        +-:data:`NORM_CLIP` (the models' input); False returns raw DN/s tiles.

    Returns
    -------
    ndarray, shape (n_tiles, 1, 166, 166), float32
        Zero outside the image (padding), never resized.

    Raises
    ------
    UsageError
        If the frame does not have the grid's shape.
    """
    img = _check(frame_data, grid)
    s = grid.size
    out = np.zeros((len(grid), 1, s, s), dtype=np.float32)
    for t in grid.tiles:
        patch = img[t.src]
        if normalise:
            med = _median(patch)
            scale = med if math.isfinite(med) and med > NORM_FLOOR_DN_S else NORM_FLOOR_DN_S
            patch = np.clip(patch * np.float32(1.0 / scale), -NORM_CLIP, NORM_CLIP)
        out[t.index, 0][t.dst] = patch
    np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return out
