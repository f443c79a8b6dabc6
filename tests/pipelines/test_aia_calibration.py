"""AIA 304 calibration: checks with one-line reasons, exposure and degradation, pooling, north up, aiapy tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from heliowatch.models.synthetic.fitsout import write_fits
from heliowatch.pipelines.aia_calibration import CalibrationTables, calibrate, check_304, pool_factor
from heliowatch.pipelines.errors import DataRejected
from heliowatch.pipelines.fitsio import read_fits


def _header(n: int, *, cdelt: float = 0.6, crota2: float = 0.0, exptime: float = 2.0, **extra: object) -> fits.Header:
    h = fits.Header()
    cards = {
        "TELESCOP": "SDO/AIA",
        "WAVELNTH": 304,
        "EXPTIME": exptime,
        "BUNIT": "DN",
        "T_OBS": "2011-02-15T01:50:00.57Z",
        "DATE-OBS": "2011-02-15T01:49:59.12",
        "CTYPE1": "HPLN-TAN",
        "CTYPE2": "HPLT-TAN",
        "CUNIT1": "arcsec",
        "CUNIT2": "arcsec",
        "CDELT1": cdelt,
        "CDELT2": cdelt,
        "CRPIX1": (n + 1) / 2,
        "CRPIX2": (n + 1) / 2,
        "CRVAL1": 100.0,
        "CRVAL2": -200.0,
        "CROTA2": crota2,
        "DSUN_OBS": 1.476e11,
        "RSUN_OBS": 973.0,
        "CRLT_OBS": -6.6,
        "CRLN_OBS": 120.0,
        "SAT_ROT": 0.0,
        "QUALITY": 0,
    }
    cards.update(extra)  # type: ignore[arg-type]
    for k, v in cards.items():
        h[k] = v
    return h


def _wcs(h: fits.Header) -> WCS:
    h = h.copy()
    del h["DATE-OBS"]  # a celestial WCS only; astropy would otherwise warn while deriving MJD-OBS
    return WCS(h)


def _arcsec(deg: float) -> float:
    return ((deg + 180.0) % 360.0 - 180.0) * 3600.0  # astropy's WCS answers in (wrapped) degrees


def _write(tmp_path: Path, data: np.ndarray, header: fits.Header, name: str = "aia.fits") -> Path:
    return write_fits(tmp_path / name, data.astype(np.float32), header, compress=False)


def test_exposure_normalised_and_pooled_with_exact_geometry(tmp_path: Path) -> None:
    n = 498
    rng = np.random.default_rng(1)
    raw = rng.uniform(50, 150, (n, n)).astype(np.float32)
    cal = calibrate(read_fits(_write(tmp_path, raw, _header(n, exptime=2.0))))
    f = cal.frame
    assert f.shape == (166, 166)
    assert f.arcsec_per_px == pytest.approx(1.8)
    # DN/s: the mean of each 3x3 block divided by the exposure.
    assert f.data[10, 20] == pytest.approx(raw[30:33, 60:63].mean() / 2.0, rel=1e-5)
    # The pooled pixel (20, 10) covers raw pixels 60-62 x 30-32: its centre is raw (61, 31), 0-based.
    w = _wcs(_header(n))
    tx, ty = (_arcsec(v) for v in w.wcs_pix2world([[61.0, 31.0]], 0)[0])
    px, py = f.pixel_to_hpc(20, 10)
    assert float(px) == pytest.approx(tx, abs=0.05) and float(py) == pytest.approx(ty, abs=0.05)
    assert f.rsun_arcsec == 973.0 and f.b0_deg == -6.6 and f.l0_deg == 120.0
    assert f.t_unix == pytest.approx(1297734600.57)
    assert cal.degraded == []  # a cutout needs no pointing table
    assert "not corrected" in cal.notes["degradation"]


def test_a_rolled_frame_comes_out_north_up(tmp_path: Path) -> None:
    n, roll = 600, 12.0
    h = _header(n, crota2=roll, CRVAL1=0.0, CRVAL2=0.0)
    w = _wcs(h)
    # A bright blob at a known helioprojective place, drawn through the rolled WCS.
    target = (150.0, 80.0)
    ((x, y),) = w.wcs_world2pix([[target[0] / 3600, target[1] / 3600]], 0)
    yy, xx = np.mgrid[0:n, 0:n]
    img = 10 + 1000 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 4.0**2))
    cal = calibrate(read_fits(_write(tmp_path, img, h)))
    f = cal.frame
    iy, ix = np.unravel_index(np.nanargmax(f.data), f.shape)
    got = f.pixel_to_hpc(ix, iy)
    assert math.hypot(float(got[0]) - target[0], float(got[1]) - target[1]) < 1.5 * f.arcsec_per_px
    assert "roll of 12.000 deg undone" in cal.notes["registration"]


@pytest.mark.parametrize(
    ("change", "reason", "words"),
    [
        ({"WAVELNTH": 171}, "wavelength", "not a 304 A frame"),
        ({"EXPTIME": 0.0}, "exposure", "exposure time is 0.0"),
        ({"BUNIT": "Gauss"}, "units", "not DN"),
        ({"BUNIT": "rendered"}, "units", "rendered display levels"),
        ({"CDELT2": 1.2}, "wcs", "not square"),
    ],
)
def test_bad_frames_are_refused_with_one_line_reasons(tmp_path: Path, change: dict[str, object], reason: str, words: str) -> None:
    h = _header(200)
    for k, v in change.items():
        h[k] = v
    frame = read_fits(_write(tmp_path, np.full((200, 200), 80.0), h))
    with pytest.raises(DataRejected) as e:
        calibrate(frame)
    assert e.value.reason == reason
    assert words in str(e.value) and "\n" not in str(e.value)


def test_all_nan_and_tiny_frames_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataRejected, match="every pixel is NaN") as e:
        check_304(read_fits(_write(tmp_path, np.full((200, 200), np.nan), _header(200), "nan.fits")))
    assert e.value.reason == "all_nan"
    with pytest.raises(DataRejected, match="shape") as e:
        check_304(read_fits(_write(tmp_path, np.ones((40, 40)), _header(40), "tiny.fits")))


def test_rendered_movie_frames_are_accepted_on_request(tmp_path: Path) -> None:
    h = _header(266, cdelt=0.9, exptime=1.0, BUNIT="rendered")
    cal = calibrate(read_fits(_write(tmp_path, np.full((266, 266), 120.0), h)), allow_rendered=True)
    assert pool_factor(0.9) == 2 and cal.frame.shape == (133, 133)
    assert cal.frame.flags == ("rendered",)
    assert float(np.nanmedian(cal.frame.data)) == pytest.approx(120.0)  # levels are not divided by an exposure


def _pointing_table(x0: float, y0: float, scale: float, rot: float) -> object:
    import astropy.units as u
    from astropy.table import QTable
    from astropy.time import Time

    return QTable(
        {
            "T_START": Time(["2011-02-15T00:00:00"]),
            "T_STOP": Time(["2011-02-15T03:00:00"]),
            "A_304_X0": [x0] * u.pix,
            "A_304_Y0": [y0] * u.pix,
            "A_304_INSTROT": [rot] * u.deg,
            "A_304_IMSCALE": [scale] * u.arcsec / u.pix,
        }
    )


def _correction_table(ratio: float) -> object:
    import astropy.units as u
    from astropy.table import QTable
    from astropy.time import Time

    return QTable(
        {
            "DATE": Time(["2010-03-24T00:00:00", "2011-01-01T00:00:00"]),
            "VER_NUM": [10, 10],
            "WAVE_STR": ["304_THIN", "304_THIN"],
            "T_START": Time(["2010-03-24T00:00:00", "2011-01-01T00:00:00"]),
            "T_STOP": Time(["2011-01-01T00:00:00", "2012-01-01T00:00:00"]),
            "EFF_AREA": [1.0, ratio] * u.cm**2,
            "EFFA_P1": [0.0, 0.0],
            "EFFA_P2": [0.0, 0.0],
            "EFFA_P3": [0.0, 0.0],
        }
    )


def test_full_frame_uses_the_pointing_and_degradation_tables_or_says_it_is_degraded(tmp_path: Path) -> None:
    n = 4096
    img = np.full((n, n), 90.0, dtype=np.float32)
    path = _write(tmp_path, img, _header(n, CRVAL1=0.0, CRVAL2=0.0))
    frame = read_fits(path)

    bare = calibrate(frame, tables=CalibrationTables(tmp_path / "no-tables"))
    assert bare.frame.shape == (1365, 1365)
    assert any(d.startswith("pointing:") for d in bare.degraded)

    tables_dir = tmp_path / "tables"
    tables_dir.mkdir()
    _pointing_table(2040.0, 2060.0, 0.6, 0.0).write(tables_dir / CalibrationTables.POINTING, format="ascii.ecsv")  # type: ignore[attr-defined]
    _correction_table(0.5).write(tables_dir / CalibrationTables.CORRECTION, format="ascii.ecsv")  # type: ignore[attr-defined]
    tables = CalibrationTables(tables_dir)
    good = calibrate(frame, tables=tables)
    assert good.degraded == []
    assert good.notes["pointing"] == "master pointing table"
    # The disk centre moved to the table's (2040, 2060) CCD pixel, i.e. pooled ((2040 - 1) / 3, (2060 - 1) / 3).
    cx, cy = good.frame.hpc_to_pixel(0.0, 0.0)
    assert float(cx) == pytest.approx((2040 - 1) / 3, abs=0.01) and float(cy) == pytest.approx((2060 - 1) / 3, abs=0.01)
    # Half the effective area: twice the DN/s of the bare calibration.
    assert float(np.nanmedian(good.frame.data)) == pytest.approx(2 * float(np.nanmedian(bare.frame.data)))
    assert good.notes["degradation"].startswith("corrected (factor 0.500")


def test_a_failed_table_refresh_keeps_the_old_tables_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aiapy.calibrate.util as util

    def offline(*_a: object, **_k: object) -> object:
        msg = "Unable to query the JSOC.\n Error message: no network"
        raise OSError(msg)

    monkeypatch.setattr(util, "get_pointing_table", offline)
    monkeypatch.setattr(util, "get_correction_table", offline)
    tables_dir = tmp_path / "tables"
    tables_dir.mkdir()
    _correction_table(0.5).write(tables_dir / CalibrationTables.CORRECTION, format="ascii.ecsv")  # type: ignore[attr-defined]
    tables = CalibrationTables(tables_dir)
    assert tables.refresh(1297734600.0, now_monotonic=0.0) is False
    assert tables.correction is not None  # kept
    assert "could not be fetched: Unable to query the JSOC." in tables.problem["correction"]
    assert tables.refresh(1297734600.0, now_monotonic=10.0) is False  # not retried within the day
