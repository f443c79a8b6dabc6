"""Reading untrusted FITS: real SHARP files, truncation, corruption, checksums, sizes, QUALITY, TAI."""

from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from heliowatch.models.core.times import tai_to_utc, utc_to_tai_string
from heliowatch.pipelines.errors import DataRejected
from heliowatch.pipelines.fitsio import header_value, parse_quality, read_fits
from heliowatch.pipelines.standin.archive import demo_archive_path
from tests.conftest import write_record

REAL = demo_archive_path() / "sharp" / "hmi.sharp_cea_720s.377.20110215_020000_TAI.magnetogram.fits"


def test_reads_real_sharp_patch_with_its_quirky_header() -> None:
    f = read_fits(REAL)
    assert f.data.shape == (377, 744)
    assert f.keyword("HARPNUM") == 377
    assert f.keyword("NOAA_AR") == 11158
    assert f.keyword("USFLUX") == pytest.approx(2.71476e22)
    # JSOC wrote R_VALUE = 'nan' for this record: a missing real, not a crash.
    assert math.isnan(f.keyword("R_VALUE"))
    assert f.keyword("NOSUCHKEY", "d") == "d"


def test_uncompressed_primary_hdu_is_read() -> None:
    f = read_fits(demo_archive_path() / "sharp" / "hmi.sharp_cea_720s.377.20110215_020000_TAI.bitmap.fits")
    assert f.data.shape == (377, 744)
    assert set(np.unique(f.data)) <= {0, 1, 2, 33, 34}


@pytest.mark.parametrize("cut", [1000, 2880, None])
def test_truncated_files_are_rejected(tmp_path: Path, cut: int | None) -> None:
    raw = REAL.read_bytes()
    bad = tmp_path / "t.fits"
    bad.write_bytes(raw[: cut if cut else (len(raw) // 2) // 2880 * 2880])
    with pytest.raises(DataRejected) as e:
        read_fits(bad)
    assert e.value.reason in ("truncated", "corrupt")


def test_garbled_header_is_rejected(tmp_path: Path) -> None:
    b = bytearray(REAL.read_bytes())
    b[400:560] = bytes((x * 7 + 13) % 256 for x in b[400:560])
    bad = tmp_path / "c.fits"
    bad.write_bytes(bytes(b))
    with pytest.raises(DataRejected):
        read_fits(bad)


def test_flipped_data_bytes_fail_the_datasum(tmp_path: Path) -> None:
    p = write_record(tmp_path, t_rec=dt.datetime(2024, 5, 10))
    b = bytearray(p.read_bytes())
    with fits.open(p) as h:
        start = h[1].fileinfo()["datLoc"]
    b[start + 10] ^= 0xFF
    p.write_bytes(bytes(b))
    with pytest.raises(DataRejected) as e:
        read_fits(p)
    assert e.value.reason == "checksum"


def test_declared_size_beyond_budget_is_refused_unread(tmp_path: Path) -> None:
    p = write_record(tmp_path, t_rec=dt.datetime(2024, 5, 10), shape=(128, 128))
    with pytest.raises(DataRejected) as e:
        read_fits(p, max_pixels=100 * 100)
    assert e.value.reason == "size"


def test_not_fits_and_empty(tmp_path: Path) -> None:
    (tmp_path / "a.fits").write_bytes(b"<html>503 Service Unavailable</html>" + b" " * (2880 - 36))
    with pytest.raises(DataRejected):
        read_fits(tmp_path / "a.fits")
    (tmp_path / "b.fits").write_bytes(b"")
    with pytest.raises(DataRejected, match="FITS blocks"):
        read_fits(tmp_path / "b.fits")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0x00000400", 1024), ("0x00000000", 0), (0, 0), (1024.0, 1024), ("1024", 1024), (np.int64(4), 4)],
)
def test_quality_parsing(value: object, expected: int) -> None:
    assert parse_quality(value) == expected


@pytest.mark.parametrize("value", [None, "MISSING", "junk", float("nan"), True])
def test_quality_missing_or_bad_raises(value: object) -> None:
    with pytest.raises(ValueError, match="QUALITY"):
        parse_quality(value)


def test_tai_is_converted_explicitly() -> None:
    # 37 s of leap seconds in 2024, 34 s in 2011: drms.to_datetime would get both wrong.
    assert tai_to_utc("2024.06.28_00:00:00.000_TAI") == "2024-06-27T23:59:23.000Z"
    assert tai_to_utc("2011.02.15_02:00:00_TAI") == "2011-02-15T01:59:26.000Z"
    assert tai_to_utc("2019-11-08T06:00:10Z") == "2019-11-08T06:00:10.000Z"
    assert utc_to_tai_string("2011-02-15T01:59:26.000Z") == "2011.02.15_02:00:00.000_TAI"
    with pytest.raises(ValueError, match="no time"):
        tai_to_utc("MISSING")


def test_header_value_tolerates_missing_marker(tmp_path: Path) -> None:
    h = fits.Header()
    h["NOAA_ARS"] = "MISSING"
    assert header_value(h, "NOAA_ARS", 0) == 0
    shutil.copy(REAL, tmp_path / "x.fits")


# -- hostile files (issue: nothing stuck, never a traceback) ---------------------------------------
def _edit_header(src: Path, dest: Path, card: str, value: str) -> Path:
    """Rewrite one header card's 80 bytes in place, as a hostile server could."""
    raw = bytearray(src.read_bytes())
    key = card.ljust(8).encode()
    for off in range(0, len(raw), 80):
        if raw[off : off + 8] == key:
            raw[off : off + 80] = f"{card:<8}= {value:>20}".ljust(80).encode()
            dest.write_bytes(bytes(raw))
            return dest
    raise AssertionError(f"{card} not in {src}")


@pytest.mark.parametrize(
    ("card", "value"),
    [
        ("DATASUM", "1E400"),  # astropy's checksum: OverflowError
        ("ZNAXIS1", "-5"),
        ("ZNAXIS2", "'x'"),
        ("ZVAL2", "1E400"),
        ("XTENSION", "'NOTHING '"),
        ("ZBITPIX", "7"),
    ],
)
def test_hostile_header_cards_are_a_corrupt_reject_never_another_error(tmp_path: Path, card: str, value: str) -> None:
    src = write_record(tmp_path, t_rec=dt.datetime(2024, 5, 10), shape=(64, 64))
    bad = _edit_header(src, tmp_path / "bad.fits", card, value)
    with pytest.raises(DataRejected) as e:
        read_fits(bad)
    assert e.value.reason in ("corrupt", "size", "checksum", "truncated")
    assert "\n" not in str(e.value)


def test_a_compressed_cube_is_refused_before_it_is_decompressed(tmp_path: Path) -> None:
    # 400 x 256 x 256 of zeros: a file of a few MB that would be 100 MB in memory.
    cube = np.zeros((400, 256, 256), np.float32)
    p = tmp_path / "bomb.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(cube, compression_type="GZIP_1")]).writeto(p)
    assert p.stat().st_size < cube.nbytes / 10
    with pytest.raises(DataRejected, match="3 axes") as e:
        read_fits(p)
    assert e.value.reason == "size"
