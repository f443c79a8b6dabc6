"""Hostile FITS files for the reader's tests, its fuzzing and ``bench/fuzz_bench.py``.

Each defect is written the way a broken or hostile server could send it: by editing the
80-byte header cards of a real demo file in place (astropy refuses to write most of these
values itself), so the data unit and its checksums stay those of the original file. The
catalogue :data:`DEFECTS` holds one builder per defect named in issue 11.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits

from heliowatch.pipelines.standin.archive import demo_archive_path

__all__ = [
    "DEFECTS",
    "MAGNETOGRAM",
    "SHARP",
    "SHARP_BITMAP",
    "SHARP_BR",
    "UNUSABLE",
    "Edit",
    "compressed_cube",
    "edit_cards",
    "sharp_record",
]

_ARCHIVE = demo_archive_path()
#: A RICE-compressed full-disk demo magnetogram (its image cards live in HDU 1).
MAGNETOGRAM = _ARCHIVE / "magnetogram" / "hmi.M_720s_nrt.20110214_202434_TAI.3.magnetogram.fits"
#: A real SHARP record (HARP 377): the compressed LOS segment, its Br and its (uncompressed) bitmap.
SHARP = _ARCHIVE / "sharp" / "hmi.sharp_cea_720s.377.20110215_020000_TAI.magnetogram.fits"
SHARP_BR = SHARP.with_name(SHARP.name.replace(".magnetogram.", ".Br."))
SHARP_BITMAP = SHARP.with_name(SHARP.name.replace(".magnetogram.", ".bitmap."))

#: An edit of one header: ``(op, key, raw_value)`` with op ``set`` (replace the card, or add it),
#: ``dup`` (add a second card with the same key after the first), ``del`` (remove the card).
Edit = tuple[str, str, str]


def _card(key: str, raw: str) -> bytes:
    text = f"{key:<8}= {raw:>20}" if raw else f"{key:<8}"
    return text[:80].ljust(80).encode("ascii", "replace")


def edit_cards(src: Path, dest: Path, edits: Sequence[Edit], *, hdu: int = -1) -> Path:
    """Copy ``src`` to ``dest`` with raw card edits in one HDU's header (the last one by default).

    Values are raw FITS text (``"1E400"``, ``"'nan'"``, ``"7"``); the header is re-padded to
    whole 2880-byte blocks and the rest of the file is kept byte for byte.
    """
    raw = src.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(src, disable_image_compression=True, memmap=False) as hdul:
            info = hdul[hdu].fileinfo()
    start, end = int(info["hdrLoc"]), int(info["datLoc"])
    cards = [raw[i : i + 80] for i in range(start, end, 80)]
    cards = cards[: next(i for i, c in enumerate(cards) if c.rstrip() == b"END")]
    for op, key, value in edits:
        k = key.ljust(8).encode()
        at = next((i for i, c in enumerate(cards) if c[:8] == k), None)
        if op == "del":
            if at is not None:
                del cards[at]
        elif op == "dup":
            cards.insert(len(cards) if at is None else at + 1, _card(key, value))
        elif at is None:
            cards.append(_card(key, value))
        else:
            cards[at] = _card(key, value)
    head = b"".join(cards) + b"END".ljust(80)
    head += b" " * (-len(head) % 2880)
    dest.write_bytes(raw[:start] + head + raw[end:])
    return dest


def sharp_record(dest_dir: Path, edits: Sequence[Edit] = (), *, segment: str = "magnetogram") -> Path:
    """A SHARP record in ``dest_dir`` (its three segment files) with ``edits`` in one segment."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    for f in (SHARP, SHARP_BR, SHARP_BITMAP):
        shutil.copy(f, dest_dir / f.name)
    target = dest_dir / SHARP.name.replace(".magnetogram.", f".{segment}.")
    if edits:
        edit_cards(target, target, edits)
    return target


def compressed_cube(dest: Path, shape: tuple[int, ...] = (400, 1024, 1024)) -> Path:
    """A GZIP-compressed cube of zeros: 1.66 MB on disk for 400x1024x1024, 1.6 GB decompressed.

    Big-endian zeros from ``np.zeros`` are never touched before compression, so building the
    bomb needs no more than a few tens of MB (about 7 s for the default shape).
    """
    cube = np.zeros(shape, ">f4")
    tile = (1,) * (len(shape) - 2) + tuple(shape[-2:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdu = fits.CompImageHDU(cube, compression_type="GZIP_1", tile_shape=tile)
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(dest, overwrite=True)
    return dest


_built: dict[tuple[int, ...], Path] = {}


def _cube_bomb(dest: Path) -> Path:
    """The default bomb, built once per process and copied (building it takes seconds)."""
    shape = (400, 1024, 1024)
    first = _built.get(shape)
    if first is not None and first.exists():
        shutil.copy(first, dest)
        return dest
    _built[shape] = compressed_cube(dest, shape)
    return dest


def _int16_zblank(dest: Path) -> Path:
    data = (np.arange(64 * 64).reshape(64, 64) % 3000 - 1500).astype(np.int16)
    tmp = dest.with_suffix(".int16.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="RICE_1")]).writeto(tmp, overwrite=True)
    edit_cards(tmp, dest, [("set", "ZBLANK", "-2147483648")])
    tmp.unlink()
    return dest


def _mag(*edits: Edit) -> Callable[[Path], Path]:
    def build(dest: Path) -> Path:
        return edit_cards(MAGNETOGRAM, dest, edits)

    return build


#: One builder per defect of issue 11: ``builder(dest) -> path``, a magnetogram-like file.
DEFECTS: dict[str, Callable[[Path], Path]] = {
    "datasum-1e400": _mag(("set", "DATASUM", "'1E400'")),
    "datasum-1e400-number": _mag(("set", "DATASUM", "1E400")),
    "cdelt1-nan": _mag(("set", "CDELT1", "'nan'")),
    "cdelt1-text": _mag(("set", "CDELT1", "'two arcsec'")),
    "cdelt1-zero": _mag(("set", "CDELT1", "0.0")),
    "cdelt1-huge": _mag(("set", "CDELT1", "1E300")),
    "crlt-obs-text": _mag(("set", "CRLT_OBS", "'south'")),
    "crlt-obs-1e400": _mag(("set", "CRLT_OBS", "1E400")),
    "dsun-obs-nan": _mag(("set", "DSUN_OBS", "'nan'")),
    "crpix1-text": _mag(("set", "CRPIX1", "'centre'")),
    "crota2-huge": _mag(("set", "CROTA2", "1E300")),
    "t-rec-number": _mag(("set", "T_REC", "7")),
    "t-rec-garbage": _mag(("set", "T_REC", "'9999.99.99_99:99:99_TAI'")),
    "znaxis1-duplicated": _mag(("dup", "ZNAXIS1", "99999")),
    "znaxis1-negative": _mag(("set", "ZNAXIS1", "-5")),
    "znaxis2-text": _mag(("set", "ZNAXIS2", "'x'")),
    "zval2-out-of-range": _mag(("set", "ZVAL2", "99")),
    "zval2-1e400": _mag(("set", "ZVAL2", "1E400")),
    "ztile1-zero": _mag(("set", "ZTILE1", "0")),
    "ztile1-huge": _mag(("set", "ZTILE1", "2147483647")),
    "ztile1-negative": _mag(("set", "ZTILE1", "-1")),
    "zbitpix-bad": _mag(("set", "ZBITPIX", "7")),
    "zblank-1e400": _mag(("set", "ZBLANK", "1E400")),
    "xtension-deleted": _mag(("del", "XTENSION", "")),
    "xtension-other": _mag(("set", "XTENSION", "'NOTHING '")),
    "zcmptype-unknown": _mag(("set", "ZCMPTYPE", "'LZMA_9 '")),
    "int16-zblank": _int16_zblank,
    "cube-bomb": _cube_bomb,
}

#: Files the reader accepts (the cards are well-formed) that no product can use: the
#: commands still end with one line and exit 2.
UNUSABLE: dict[str, Callable[[Path], Path]] = {
    "bscale-1e300": _mag(("set", "BSCALE", "1E300")),  # every pixel overflows to infinity
    "disk-off-image": _mag(("set", "CRPIX1", "-50000.0")),  # no pixel on the solar disk
    # A control character in a card astropy cannot even print back (bench/fuzz_bench.py, 10,000 cases).
    "bunit-control-character": _mag(("set", "BUNIT", "'G\x04uss'")),
}
