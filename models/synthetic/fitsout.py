"""Writing synthetic products: JSOC-like FITS files and their ground truth beside them."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from heliowatch.models.core.image import ArrayImage

__all__ = ["roundtrip_image", "write_fits", "write_truth"]


def write_fits(path: Path, data: np.ndarray, header: fits.Header, *, compress: bool = True) -> Path:
    """Write ``data`` like a JSOC segment: RICE-compressed image HDU with DATASUM/CHECKSUM.

    Integer data (bitmaps) and cubes are written uncompressed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    header = header.copy()
    header["ORIGIN"] = ("heliowatch synthetic", "not an observation")
    if compress and data.ndim == 2 and data.dtype.kind == "f":
        hdul = fits.HDUList(
            [fits.PrimaryHDU(), fits.CompImageHDU(data.astype(np.float32), header=header, compression_type="RICE_1")]
        )
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(data, header=header)])
    tmp = path.with_name(path.name + ".part")
    hdul.writeto(tmp, checksum=True, overwrite=True)
    tmp.replace(path)
    return path


def roundtrip_image(data: np.ndarray, header: fits.Header) -> ArrayImage:
    """The image as the pipelines would see it after a JSOC-like write and read (RICE quantisation included)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_fits(Path(tmp) / "frame.fits", data, header)
        with fits.open(path) as hdul:
            hdu = next(h for h in hdul if h.header.get("NAXIS", 0) or h.header.get("ZNAXIS", 0))
            return ArrayImage(np.asarray(hdu.data), hdu.header.copy())


def write_truth(path: Path, truth: dict[str, Any]) -> Path:
    """Write the ground truth as JSON (``X.fits`` -> ``X.truth.json``)."""
    out = path.with_name(path.name.removesuffix(".fits") + ".truth.json") if path.suffix == ".fits" else path
    out.write_text(json.dumps({"synthetic": True, **truth}, indent=2, default=_default))
    return out


def _default(o: object) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
