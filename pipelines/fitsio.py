"""Reading untrusted FITS files from the JSOC safely.

Everything that comes over the network is checked before use: the header's declared sizes
against a pixel budget and against the bytes on disk (a truncated download is caught
before astropy tries to read it), the FITS checksums where the file carries them, and a
full read of the data (a corrupt RICE tile fails there). Real JSOC headers carry quirks,
e.g. ``R_VALUE = 'nan'`` cards astropy refuses to parse; they are read as missing values.

A hostile header never reaches astropy's decompressor or the science code unchecked: the
structural cards (``BITPIX``, ``ZNAXISn``, ``ZTILEn``, ``ZVALn``, ``ZBLANK``, ``BSCALE``, ...)
are checked as typed, in-range, unduplicated values, and the decompressed size (every axis
times the bytes per pixel) against the budget, before any data is read; the geometry and
time keywords the products use (:data:`GEOMETRY_KEYWORDS`) are checked where present with
:func:`header_float`. Whatever still goes wrong inside astropy is a ``corrupt`` reject.

Times are converted in :mod:`heliowatch.models.core.times`.
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from heliowatch.models.core.times import tai_to_utc
from heliowatch.pipelines.errors import DataRejected

__all__ = [
    "GEOMETRY_KEYWORDS",
    "MAX_HDUS",
    "MAX_PIXELS",
    "FitsFrame",
    "header_float",
    "header_value",
    "parse_quality",
    "read_fits",
    "sha256_file",
]

#: Default pixel budget: a 4096x4096 frame with headroom; bigger is refused unread.
MAX_PIXELS = 4096 * 4096 * 2

#: Bytes a decompressed pixel may take on average: a float32 image of MAX_PIXELS fits.
BYTES_PER_PIXEL_BUDGET = 4

#: JSOC files hold one or two HDUs; a file of thousands of tiny ones is refused.
MAX_HDUS = 16

_BITPIX_BYTES = {8: 1, 16: 2, 32: 4, 64: 8, -32: 4, -64: 8}
_INT_RANGE = {8: (0, 255), 16: (-(2**15), 2**15 - 1), 32: (-(2**31), 2**31 - 1), 64: (-(2**63), 2**63 - 1)}
_COMPRESSION_TYPES = {"NOCOMPRESS", "RICE_1", "RICE_ONE", "GZIP_1", "GZIP_2", "PLIO_1", "HCOMPRESS_1"}
_MISSING = object()

#: Keywords the products read for geometry and time, each checked where a file carries it:
#: ``(low, high, nonzero)`` for numbers (finite, in range), ``None`` for a time (T_REC-like).
GEOMETRY_KEYWORDS: dict[str, tuple[float, float, bool] | None] = {
    "CDELT1": (-3600.0, 3600.0, True),
    "CDELT2": (-3600.0, 3600.0, True),
    "CRPIX1": (-1e7, 1e7, False),
    "CRPIX2": (-1e7, 1e7, False),
    "CRVAL1": (-1e7, 1e7, False),
    "CRVAL2": (-1e7, 1e7, False),
    "CROTA2": (-360.0, 360.0, False),
    "DSUN_OBS": (1e6, 1e14, True),
    "RSUN_OBS": (1e-3, 1e6, True),
    "RSUN_REF": (1e6, 1e10, True),
    "CRLT_OBS": (-90.0, 90.0, False),
    "HGLT_OBS": (-90.0, 90.0, False),
    "CRLN_OBS": (-720.0, 720.0, False),
    "HGLN_OBS": (-720.0, 720.0, False),
    "T_REC": None,
    "T_OBS": None,
    "DATE-OBS": None,
}

# Two cards with one of these names leave it open which one the decompressor or the
# geometry uses (a small ZNAXIS1 for the size check, a huge one for cfitsio): refused.
_UNIQUE = {
    "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "TFIELDS", "THEAP", "ZIMAGE", "ZBITPIX",
    "ZNAXIS", "ZCMPTYPE", "ZTENSION", "ZQUANTIZ", "ZDITHER0", "ZBLANK", "BLANK", "BSCALE", "BZERO",
    "DATASUM", "CHECKSUM", "ZDATASUM", *GEOMETRY_KEYWORDS,
}  # fmt: skip
_UNIQUE_NUMBERED = re.compile(r"^(Z?NAXIS|ZTILE|ZNAME|ZVAL|TFORM|TTYPE|TSCAL|TZERO)\d+$")


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
            try:
                raw = header.cards[name].image[10:].split("/")[0].strip().strip("'").strip().lower()
            # A card that is not even printable ASCII (found by bench/fuzz_bench.py): absent.
            except (fits.VerifyError, ValueError):
                return default
            return math.nan if raw in ("nan", "-nan") else default
    if isinstance(value, str):
        text = value.strip().upper()
        if text == "NAN":
            return math.nan
        if text == "MISSING":
            return default
    return value


def header_float(
    header: fits.Header | Mapping[str, Any],
    name: str,
    default: Any = _MISSING,
    *,
    where: str = "",
    finite: bool = True,
    positive: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> float:
    """A header keyword as a checked float: the one way geometry keywords are read.

    Parameters
    ----------
    header : astropy.io.fits.Header or mapping
        The header (JSOC's ``'nan'`` cards read as NaN, ``MISSING`` as absent).
    name : str
        The keyword.
    default : float, optional
        Returned when the keyword is absent; without one, an absent keyword is refused.
    where : str
        How the message names the file.
    finite, positive : bool
        Refuse NaN and infinities; refuse values <= 0.
    low, high : float or None
        Refuse values outside ``[low, high]``.

    Returns
    -------
    float

    Raises
    ------
    DataRejected
        With reason ``corrupt`` and a one-line message naming the keyword and its value.
    """
    raw = header_value(header, name, _MISSING) if isinstance(header, fits.Header) else header.get(name, _MISSING)
    if isinstance(raw, str) and raw.strip().upper() == "MISSING":
        raw = _MISSING
    if raw is _MISSING or raw is None:
        if default is not _MISSING:
            return float(default)
        msg = f"{where + ': ' if where else ''}keyword {name} is missing"
        raise DataRejected(msg, "corrupt")
    value = _number(raw)
    problem = None
    if value is None:
        problem = "is not a number"
    elif finite and not math.isfinite(value):
        problem = "is not finite"
    elif positive and not value > 0:
        problem = "must be > 0"
    elif (low is not None and value < low) or (high is not None and value > high):
        problem = f"is outside {low:g}..{high:g}" if low is not None and high is not None else "is out of range"
    if problem is not None:
        msg = f"{where + ': ' if where else ''}keyword {name} = {_show(raw)} {problem}"
        raise DataRejected(msg, "corrupt")
    return float(value)  # type: ignore[arg-type]


def _number(raw: Any) -> float | None:
    """A header value as a float (numeric strings too), or None; bools are not numbers."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float | np.integer | np.floating):
        try:
            return float(raw)
        except OverflowError:  # a 400-digit integer card
            return math.inf if raw > 0 else -math.inf
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError:
            return None
    return None


def _one_line(e: BaseException) -> str:
    """An exception's text on one printable line, at most 200 characters (astropy's span several)."""
    text = " ".join("".join(c if c.isprintable() else " " for c in str(e)).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _show(raw: Any) -> str:
    """A hostile value, short and on one line, for a message."""
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


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


def _corrupt(name: str, what: str) -> DataRejected:
    return DataRejected(f"{name}: {what}", "corrupt")


def _card(header: fits.Header, key: str) -> Any:
    """A card's value as astropy parses it, ``_MISSING`` when absent or unparsable."""
    try:
        return header[key] if key in header else _MISSING
    except Exception:
        return _MISSING


def _int_card(header: fits.Header, key: str, name: str, low: int, high: int, *, required: bool = True) -> int | None:
    """An integer structural card within ``[low, high]``; a missing optional one is None."""
    v = _card(header, key)
    if v is _MISSING and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or not low <= int(v) <= high:
        shown = "missing" if v is _MISSING else f"{_show(v)}, not an integer in {low}..{high}"
        raise _corrupt(name, f"{key} is {shown}")
    return int(v)


def _check_unique(header: fits.Header, name: str) -> None:
    counts = Counter(c.keyword for c in header.cards)
    for key, n in counts.items():
        if n > 1 and (key in _UNIQUE or _UNIQUE_NUMBERED.match(key)):
            raise _corrupt(name, f"keyword {key} appears {n} times (ambiguous header)")


def _check_scaling(header: fits.Header, name: str, int_bitpix: int | None) -> None:
    """BSCALE/BZERO finite (BSCALE non-zero); BLANK/ZBLANK integers the pixel type can hold."""
    for key in ("BSCALE", "BZERO"):
        v = _card(header, key)
        if v is not _MISSING and (_number(v) is None or not math.isfinite(_number(v) or 0.0) or (key == "BSCALE" and v == 0)):
            raise _corrupt(name, f"{key} = {_show(v)} is not a finite scale")
    for key in ("BLANK", "ZBLANK"):
        if key not in header:
            continue
        # A float image's ZBLANK marks quantised int32 values.
        lo, hi = _INT_RANGE.get(int_bitpix or 32, _INT_RANGE[32])
        _int_card(header, key, name, lo, hi)


def _check_structure(header: fits.Header, name: str, *, max_pixels: int) -> None:
    """Check one raw (still compressed) HDU's structural cards before astropy acts on them.

    For a tile-compressed image: ``ZBITPIX``, every ``ZNAXISn``, ``ZTILEn`` (1..ZNAXISn),
    ``ZCMPTYPE``, the ``ZNAMEn``/``ZVALn`` parameters and ``ZBLANK``; then the decompressed
    size, all axes times the bytes per pixel, against the budget. A 400x1024x1024 GZIP cube
    of 1.66 MB is refused here, unread.
    """
    _check_unique(header, name)
    bitpix = _int_card(header, "BITPIX", name, -64, 64)
    if bitpix not in _BITPIX_BYTES:
        raise _corrupt(name, f"BITPIX = {bitpix} is not a FITS pixel type")
    _int_card(header, "NAXIS", name, 0, 999)
    if _card(header, "ZIMAGE") is not True:
        _check_scaling(header, name, bitpix if bitpix > 0 else None)
        return
    zbitpix = _int_card(header, "ZBITPIX", name, -64, 64)
    if zbitpix not in _BITPIX_BYTES:
        raise _corrupt(name, f"ZBITPIX = {zbitpix} is not a FITS pixel type")
    znaxis = _int_card(header, "ZNAXIS", name, 1, 999) or 0
    axes = [_int_card(header, f"ZNAXIS{i}", name, 1, 2**31 - 1) or 0 for i in range(1, znaxis + 1)]
    for i, n in enumerate(axes, start=1):
        _int_card(header, f"ZTILE{i}", name, 1, n, required=False)
    ctype = _card(header, "ZCMPTYPE")
    if not isinstance(ctype, str) or ctype.strip().upper() not in _COMPRESSION_TYPES:
        raise _corrupt(name, f"ZCMPTYPE = {_show(ctype)} is not a FITS tile compression")
    for i in range(1, 100):
        key = f"ZNAME{i}"
        if key not in header:
            break
        param = str(_card(header, key)).strip().upper()
        val = _card(header, f"ZVAL{i}")
        number = _number(val) if val is not _MISSING else None
        if number is None or not math.isfinite(number) or abs(number) > 2**31:
            raise _corrupt(name, f"ZVAL{i} ({param}) = {_show(val)} is not a finite compression parameter")
        if param == "BYTEPIX" and number not in (1, 2, 4, 8):
            raise _corrupt(name, f"ZVAL{i} (BYTEPIX) = {_show(val)} is not 1, 2, 4 or 8")
        if param == "BLOCKSIZE" and not 1 <= number <= 1024:
            raise _corrupt(name, f"ZVAL{i} (BLOCKSIZE) = {_show(val)} is out of range")
    _check_scaling(header, name, zbitpix if zbitpix > 0 else None)
    pixels = math.prod(axes)
    nbytes = pixels * _BITPIX_BYTES[zbitpix]
    if pixels > max_pixels or nbytes > max_pixels * BYTES_PER_PIXEL_BUDGET:
        dims = "x".join(map(str, axes))
        msg = f"{name}: the compressed image declares {dims} pixels ({nbytes / 2**20:.0f} MiB decompressed), over the budget"
        raise DataRejected(msg, "size")


def _check_geometry(header: fits.Header, name: str) -> None:
    """The geometry and time keywords a file carries are numbers in range and times (``GEOMETRY_KEYWORDS``)."""
    for key, bounds in GEOMETRY_KEYWORDS.items():
        if key not in header:
            continue
        if bounds is None:
            _check_time(header, key, name)
            continue
        low, high, nonzero = bounds
        v = header_float(header, key, math.nan, where=name, low=low, high=high)
        if nonzero and v == 0:
            raise _corrupt(name, f"keyword {key} = 0 (must not be zero)")


def _check_time(header: fits.Header, key: str, name: str) -> None:
    raw = header_value(header, key, _MISSING)
    if raw is _MISSING:
        return
    text = raw.strip() if isinstance(raw, str) else ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            utc = tai_to_utc(text) if text else ""
    except Exception:
        utc = ""
    if not utc or not 1970 <= int(utc[:4] if utc[:4].isdigit() else 0) <= 2100:
        raise _corrupt(name, f"keyword {key} = {_show(raw)} is not a time")


def _has_datasum(header: fits.Header, name: str, index: int) -> bool:
    """Whether the HDU carries a ``DATASUM``; one that is not a 32-bit number is corrupt
    (astropy would raise ``OverflowError`` on ``DATASUM = 1E400``)."""
    if "DATASUM" not in header:
        return False
    v = _card(header, "DATASUM")
    text = v.strip() if isinstance(v, str) else ""
    if not (text.isdigit() and int(text) < 2**32):
        msg = f"{name}: DATASUM = {_show(v)} in HDU {index} is not a 32-bit checksum"
        raise DataRejected(msg, "corrupt")
    return True


def _verify_raw(p: Path, file_size: int, *, verify_checksum: bool, max_pixels: int) -> None:
    """Check the raw (still compressed) HDUs: structure, declared sizes against the file, then ``DATASUM``.

    Only the data sum is checked: astropy recomputes the header ``CHECKSUM`` after
    "fixing" JSOC's non-standard cards (``R_VALUE = 'nan'``), so a real, intact JSOC file
    fails the header checksum; header damage is caught when the header is parsed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with (
                fits.open(p, memmap=False, disable_image_compression=True, lazy_load_hdus=True) as hdul,
                np.errstate(all="ignore"),
            ):
                for i, h in enumerate(hdul):
                    if i >= MAX_HDUS:
                        msg = f"{p.name}: more than {MAX_HDUS} HDUs"
                        raise DataRejected(msg, "corrupt")
                    _check_structure(h.header, p.name, max_pixels=max_pixels)
                    info = h.fileinfo()
                    if info and int(info["datLoc"]) + _declared_bytes(h.header) > file_size:
                        msg = f"{p.name}: file ends before the data declared in HDU {i}"
                        raise DataRejected(msg, "truncated")
                    datasum = _card(h.header, "DATASUM")
                    if "DATASUM" in h.header and not (
                        isinstance(datasum, str) and datasum.strip().isdigit() and int(datasum) < 2**32
                    ):
                        msg = f"{p.name}: DATASUM = {_show(datasum)} in HDU {i} is not a 32-bit checksum"
                        raise DataRejected(msg, "corrupt")
                    if verify_checksum and "DATASUM" in h.header and h.verify_datasum() == 0:
                        msg = f"{p.name}: DATASUM mismatch in HDU {i} (corrupted data)"
                        raise DataRejected(msg, "checksum")
        except DataRejected:
            raise
        # A hostile header makes astropy raise almost anything (OverflowError for DATASUM = 1E400,
        # CfitsioException, AttributeError for a deleted XTENSION, ...): every one is a corrupt file.
        except Exception as e:
            msg = f"{p.name}: not a readable FITS file ({type(e).__name__}: {_one_line(e)})"
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
    _verify_raw(p, file_size, verify_checksum=verify_checksum, max_pixels=max_pixels)
    with warnings.catch_warnings():
        # Overflows while scaling a hostile BSCALE are the file's problem, not lines on stderr.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        warnings.simplefilter("error", AstropyUserWarning)
        try:
            with fits.open(p, memmap=False, lazy_load_hdus=True) as hdul, np.errstate(all="ignore"):
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
                _check_geometry(hdr, p.name)
                data = np.asarray(hdu.data)
                header = hdr.copy()
        except DataRejected:
            raise
        # As above: whatever astropy raises on a hostile file (its compression module raises
        # its own exception types) is a corrupt file, never a crash.
        except Exception as e:
            msg = f"{p.name}: not a readable FITS file ({type(e).__name__}: {_one_line(e)})"
            raise DataRejected(msg, "corrupt") from e
    if data.ndim != 2:
        msg = f"{p.name}: expected a 2-D image, got {data.ndim}-D"
        raise DataRejected(msg, "corrupt")
    return FitsFrame(data=data, header=header, path=p)
