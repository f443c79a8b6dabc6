"""Per-region cutouts of a full-disk magnetogram: a FITS file and a PNG for each detection.

The FITS cutout is the file's own pixels inside the detection box plus a margin, never
resampled, with the frame's header carried over and its WCS shifted to the cutout (``CRPIX``
moved by the cutout's origin, as ``sunpy.map.GenericMap.submap`` does), so it opens as a
proper ``sunpy.map.Map``. The region's identity and class go in ``HW_*`` keywords. The PNG
shows the cutout north up with a colour bar in Gauss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

__all__ = ["write_cutouts"]

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


def write_cutouts(frame: Any, regions: list[Any], out_dir: Path, *, stem: str, png: bool = True) -> list[dict[str, str]]:
    """Write ``<stem>-<label>.fits`` (and ``.png``) for each region of a preprocessed frame
    (:func:`~heliowatch.pipelines.regions.preprocess`, whose ``source`` holds the file's pixels);
    returns their paths, in order.

    ``label`` is ``track<N>`` when the region is tracked, else ``id<N>``.
    """
    from heliowatch.pipelines.quicklook import north_up  # noqa: PLC0415

    src = frame.source
    data = np.asarray(src.data)
    out_dir.mkdir(parents=True, exist_ok=True)
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
        hdr["HW_CLASS"] = (r.mtwilson, "Mt. Wilson class (heliowatch)")
        hdr["HW_PCLS"] = (
            float(r.class_probs.get(r.mtwilson, float("nan"))) if r.class_probs else float("nan"),
            "class probability",
        )
        hdr["HW_CONF"] = (float(r.confidence), "detection confidence")
        hdr["HW_LAT"] = (float(r.hgs_lat), "[deg] flux-weighted Stonyhurst latitude")
        hdr["HW_LON"] = (float(r.hgs_lon), "[deg] flux-weighted Stonyhurst longitude")
        hdr["HW_FLUX"] = (float(r.usflux_mx), "[Mx] unsigned flux")
        hdr["HW_X0"], hdr["HW_Y0"] = (x0, "cutout origin in the full frame (0-based x)"), (y0, "0-based y")
        f_out = out_dir / f"{stem}-{label}.fits"
        tmp = f_out.with_name(f_out.name + ".part")
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(cut, header=hdr, compression_type="RICE_1")]).writeto(
            tmp, checksum=True, overwrite=True
        )
        tmp.replace(f_out)
        entry = {"fits": str(f_out)}
        if png:
            entry["png"] = str(
                _png(north_up(cut, float(src.keyword("CROTA2", 0.0) or 0.0)), r, out_dir / f"{stem}-{label}.png", src)
            )
        written.append(entry)
    return written


def _png(cut: np.ndarray, r: Any, out: Path, src: Any) -> Path:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from heliowatch.pipelines.quicklook import greek  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(5, 4.2), dpi=100)
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
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(out)
    return out
