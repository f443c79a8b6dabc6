"""Reading untrusted FITS files from the JSOC safely.

Everything that comes over the network is checked before use: the header's declared sizes
against a pixel budget and against the bytes on disk (a truncated download is caught
before astropy tries to read it), the FITS checksums where the file carries them, and a
full read of the data (a corrupt RICE tile fails there). Real JSOC headers carry quirks,
e.g. ``R_VALUE = 'nan'`` cards astropy refuses to parse; they are read as missing values.

Times are converted in :mod:`heliowatch.models.core.times`.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from heliowatch.pipelines.errors import DataRejected

__all__ = [
    "FitsFrame",
    "header_value",
    "parse_quality",
    "read_fits",
    "sha256_file",
]

#: Default pixel budget: a 4096x4096 frame with headroom; bigger is refused unread.
MAX_PIXELS = 4096 * 4096 * 2

_BITPIX_BYTES = {8: 1, 16: 2, 32: 4, 64: 8, -32: 4, -64: 8}


@dataclass
class FitsFrame:
    """The data and header of the first image HDU of a FITS file."""

    data: np.ndarray
    header: fits.Header
    path: Path

    def keyword(self, name: str, default: Any = None) -> Any:
        """A header value, with unparsable or missing cards returned as ``default``."""
        return header_value(self.header, name, default)


def header_value(header: fits.Header, name: str, default: Any = None) -> Any:
    """Return a header keyword's value, tolerating JSOC's unparsable cards.

    JSOC writes ``KEY = 'nan     '``-style cards for missing reals in some series; astropy
    raises ``VerifyError`` on access. Those, ``MISSING`` strings and absent keys give
    ``default``.
    """
    if name not in header:
        return default
    with warnings.catch_warnings():
        # JSOC's 'nan' cards: astropy warns while "fixing" them; we report them as missing.
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        try:
            value = header[name]
        except (fits.VerifyError, ValueError):
            card = header.cards[name]
            raw = card.image[10:].split("/")[0].strip().strip("'").strip().lower()
            return math.nan if raw in ("nan", "-nan") else default
    if isinstance(value, str):
        text = value.strip().upper()
        if text == "NAN":
            return math.nan
        if text == "MISSING":
            return default
    return value


def parse_quality(value: Any) -> int:
    """Parse a QUALITY word given as an int, a float or a hex string like ``0x00000400``.

    drms 0.9.0 turns hex strings into NaN under pandas 3 (stack-notes A1.6), so heliowatch
    always asks drms not to convert QUALITY and parses it here.

    Raises
    ------
    ValueError
        If the value is missing or not a number.
    """
    if value is None:
        msg = "QUALITY is missing"
        raise ValueError(msg)
    if isinstance(value, bool):
        msg = f"QUALITY is not a number: {value!r}"
        raise ValueError(msg)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            msg = "QUALITY is not finite"
            raise ValueError(msg)
        return int(value)
    s = str(value).strip()
    if s.upper() == "MISSING" or not s:
        msg = "QUALITY is missing"
        raise ValueError(msg)
    try:
        return int(s, 16) if s.lower().startswith("0x") else int(float(s))
    except ValueError as e:
        msg = f"QUALITY is not a number: {s!r}"
        raise ValueError(msg) from e


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _declared_bytes(header: fits.Header) -> int:
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    n = 1
    for i in range(1, naxis + 1):
        n *= int(header.get(f"NAXIS{i}", 0))
    return n * _BITPIX_BYTES.get(int(header.get("BITPIX", 8)), 1) + int(header.get("PCOUNT", 0))


def _verify_raw(p: Path, file_size: int, *, verify_checksum: bool) -> None:
    """Check the raw (still compressed) HDUs: declared sizes against the file, then ``DATASUM``.

    Only the data sum is checked: astropy recomputes the header ``CHECKSUM`` after
    "fixing" JSOC's non-standard cards (``R_VALUE = 'nan'``), so a real, intact JSOC file
    fails the header checksum; header damage is caught when the header is parsed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with fits.open(p, memmap=False, disable_image_compression=True, lazy_load_hdus=True) as hdul:
                for i, h in enumerate(hdul):
                    info = h.fileinfo()
                    if info and int(info["datLoc"]) + _declared_bytes(h.header) > file_size:
                        msg = f"{p.name}: file ends before the data declared in HDU {i}"
                        raise DataRejected(msg, "truncated")
                    if verify_checksum and "DATASUM" in h.header and h.verify_datasum() == 0:
                        msg = f"{p.name}: DATASUM mismatch in HDU {i} (corrupted data)"
                        raise DataRejected(msg, "checksum")
        except DataRejected:
            raise
        # A hostile header makes astropy raise almost anything (OverflowError for DATASUM = 1E400,
        # CfitsioException, AttributeError for a deleted XTENSION, ...): every one is a corrupt file.
        except Exception as e:
            msg = f"{p.name}: not a readable FITS file ({type(e).__name__}: {str(e)[:200]})"
            raise DataRejected(msg, "corrupt") from e


def _image_axes(hdr: fits.Header, name: str) -> list[int]:
    """The image's axis lengths (the compressed image's when tile-compressed), checked as integers."""
    key = "ZNAXIS" if "ZNAXIS" in hdr else "NAXIS"
    try:
        n = int(hdr[key])
        axes = [int(hdr[f"{key}{i}"]) for i in range(1, n + 1)]
    except (KeyError, TypeError, ValueError) as e:
        msg = f"{name}: {key} cards are missing or not integers"
        raise DataRejected(msg, "corrupt") from e
    return axes


def read_fits(path: Path | str, *, max_pixels: int = MAX_PIXELS, verify_checksum: bool = True) -> FitsFrame:
    """Read and verify the first image HDU of an untrusted FITS file.

    Parameters
    ----------
    path : path-like
        The file.
    max_pixels : int
        Refuse images whose header declares more pixels than this, before reading them.
    verify_checksum : bool
        Check ``CHECKSUM``/``DATASUM`` where the file carries them.

    Returns
    -------
    FitsFrame

    Raises
    ------
    DataRejected
        With ``reason`` one of ``truncated``, ``corrupt``, ``checksum``, ``size``.
    """
    p = Path(path)
    try:
        file_size = p.stat().st_size
    except OSError as e:
        msg = f"{p.name}: cannot read ({e.strerror})"
        raise DataRejected(msg, "corrupt") from e
    if file_size == 0 or file_size % 2880 != 0:
        msg = f"{p.name}: {file_size} bytes is not a whole number of FITS blocks"
        raise DataRejected(msg, "truncated")
    _verify_raw(p, file_size, verify_checksum=verify_checksum)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        warnings.simplefilter("error", AstropyUserWarning)
        try:
            with fits.open(p, memmap=False, lazy_load_hdus=True) as hdul:
                hdu = next((h for h in hdul if h.header.get("ZNAXIS", h.header.get("NAXIS", 0))), None)
                if hdu is None:
                    msg = f"{p.name}: no image HDU"
                    raise DataRejected(msg, "corrupt")
                hdr = hdu.header
                # Every axis, before any data is read: a 400x1024x1024 cube compressed to 2 MB is
                # 1.6 GB once decompressed, whatever the file's size says.
                axes = _image_axes(hdr, p.name)
                if len(axes) != 2:
                    msg = f"{p.name}: expected a 2-D image, the header declares {len(axes)} axes {axes}"
                    raise DataRejected(msg, "size")
                if min(axes) <= 0 or axes[0] * axes[1] > max_pixels:
                    msg = f"{p.name}: declared image size {axes[0]}x{axes[1]} is out of bounds"
                    raise DataRejected(msg, "size")
                data = np.asarray(hdu.data)
                header = hdr.copy()
        except DataRejected:
            raise
        # As above: whatever astropy raises on a hostile file (its compression module raises
        # its own exception types) is a corrupt file, never a crash.
        except Exception as e:
            msg = f"{p.name}: not a readable FITS file ({type(e).__name__}: {str(e)[:200]})"
            raise DataRejected(msg, "corrupt") from e
    if data.ndim != 2:
        msg = f"{p.name}: expected a 2-D image, got {data.ndim}-D"
        raise DataRejected(msg, "corrupt")
    return FitsFrame(data=data, header=header, path=p)
