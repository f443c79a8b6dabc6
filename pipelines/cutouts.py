"""Per-region cutouts of a full-disk magnetogram: a FITS file and a PNG for each detection.

The FITS cutout is the file's own pixels inside the detection box plus a margin, never
resampled, with the frame's header carried over and its WCS shifted to the cutout (``CRPIX``
moved by the cutout's origin, as ``sunpy.map.GenericMap.submap`` does), so it opens as a
proper ``sunpy.map.Map``. The region's identity and class go in ``HW_*`` keywords. The PNG
shows the cutout north up with a colour bar in Gauss.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits

from heliowatch.models.core.figures import new_figure, png_bytes
from heliowatch.pipelines.quicklook import greek, north_up

__all__ = ["Cutout", "cutouts"]


@dataclass(frozen=True)
class Cutout:
    """One region's cutout: its file stem, the FITS bytes and the PNG bytes (or None)."""

    stem: str
    fits: bytes
    png: bytes | None


_MARGIN = 0.15  # of the box side, on each side
_MIN_SIDE = 32  # pixels: tiny regions still get a usable picture


def _window(bbox: list[int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = bbox
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w = max(_MIN_SIDE, (x1 - x0) * (1 + 2 * _MARGIN)) / 2
    half_h = max(_MIN_SIDE, (y1 - y0) * (1 + 2 * _MARGIN)) / 2
    ny, nx = shape
    return (
        max(0, int(cx - half_w)),
        max(0, int(cy - half_h)),
        min(nx, int(np.ceil(cx + half_w))),
        min(ny, int(np.ceil(cy + half_h))),
    )


def cutouts(frame: Any, regions: list[Any], *, stem: str, png: bool = True) -> list[Cutout]:
    """The cutout ``<stem>-<label>`` (FITS and PNG) of each region of a prepared frame
    (:func:`~heliowatch.models.regions.frame.prepare_disk`, whose ``source`` holds the file's
    pixels), in order.

    ``label`` is ``track<N>`` when the region is tracked, else ``id<N>``.
    """
    src = frame.source
    data = np.asarray(src.data)
    written = []
    for r in regions:
        x0, y0, x1, y1 = _window(r.bbox_px, data.shape)
        cut = np.ascontiguousarray(data[y0:y1, x0:x1], dtype=np.float32)
        hdr = fits.Header()
        for card in src.header.cards:
            if card.keyword in ("", "COMMENT", "HISTORY") or card.keyword.startswith(("NAXIS", "Z", "CHECKSUM", "DATASUM")):
                continue
            if card.keyword in ("SIMPLE", "XTENSION", "BITPIX", "PCOUNT", "GCOUNT", "EXTEND", "TFIELDS"):
                continue
            hdr[card.keyword] = (card.value, card.comment)
        for ax, off in (("1", x0), ("2", y0)):
            if f"CRPIX{ax}" in hdr:
                hdr[f"CRPIX{ax}"] = float(hdr[f"CRPIX{ax}"]) - off
        label = f"track{r.track_id}" if r.track_id is not None else f"id{r.id}"
        hdr["HW_LABEL"] = (label, "heliowatch region label")
        hdr["HW_NOAA"] = (r.noaa_ar or 0, "NOAA region (0: none matched)")
        hdr["HW_CLASS"] = (r.mtwilson or "none", "Mt. Wilson class (heliowatch)")
        if r.mtwilson and r.mtwilson in r.class_probs:
            hdr["HW_PCLS"] = (float(r.class_probs[r.mtwilson]), "class probability")
        else:  # no class (no spot group, beyond the limb guard): say why; FITS has no NaN card
            hdr["HW_OUTC"] = (r.outcome, "why no Mt. Wilson class")
        hdr["HW_CONF"] = (float(r.confidence), "detection confidence")
        hdr["HW_LAT"] = (float(r.hgs_lat), "[deg] flux-weighted Stonyhurst latitude")
        hdr["HW_LON"] = (float(r.hgs_lon), "[deg] flux-weighted Stonyhurst longitude")
        hdr["HW_FLUX"] = (float(r.usflux_mx), "[Mx] unsigned flux")
        hdr["HW_X0"], hdr["HW_Y0"] = (x0, "cutout origin in the full frame (0-based x)"), (y0, "0-based y")
        buf = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(cut, header=hdr, compression_type="RICE_1")]).writeto(
            buf, checksum=True
        )
        picture = _png(north_up(cut, float(src.keyword("CROTA2", 0.0) or 0.0)), r, src) if png else None
        written.append(Cutout(stem=f"{stem}-{label}", fits=buf.getvalue(), png=picture))
    return written


def _png(cut: np.ndarray, r: Any, src: Any) -> bytes:
    fig = new_figure((5, 4.2), dpi=100)
    ax = fig.subplots()
    im = ax.imshow(cut, cmap="gray", vmin=-1500, vmax=1500, origin="lower", interpolation="nearest")
    name = f"AR {r.noaa_ar}" if r.noaa_ar else f"region {r.track_id or r.id}"
    p = r.class_probs.get(r.mtwilson) if r.class_probs else None
    ax.set_title(
        f"{name}  {greek(r.mtwilson)}" + (f" ({p:.0%})" if p is not None else "") + f"  {src.keyword('T_REC', '')}\n"
        f"HGS {r.hgs_lat:+.1f} {r.hgs_lon:+.1f}  {r.usflux_mx:.2e} Mx  (north up)",
        fontsize=8,
    )
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="B_LOS (G)")
    return png_bytes(fig, bbox_inches="tight")
