"""Shared fixtures: offline astropy/sunpy, tiny archives of real-format FITS, a running stand-in.

Small real files from ../shared/data live in tests/data (see tests/data/PROVENANCE.md).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from heliowatch.pipelines.standin.archive import demo_archive_path

DATA = Path(__file__).parent / "data"
#: The large evaluation sets (../shared/data beside the checkout, or $HELIOWATCH_SHARED_DATA).
SHARED_DATA = Path(os.environ.get("HELIOWATCH_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The evaluation data; a fresh clone without it skips these tests (CI has it, and fails without it)."""
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    if os.environ.get("CI"):
        pytest.fail(f"{SHARED_DATA} is missing in CI: ../shared/data must be beside the checkout")
    pytest.skip(f"needs the evaluation data sets in {SHARED_DATA} (beside the checkout; CI has them)")
    raise AssertionError  # unreachable


@pytest.fixture(autouse=True, scope="session")
def _offline_astropy(tmp_path_factory: pytest.TempPathFactory) -> None:
    """No IERS downloads and private config dirs, as sunpy's own conftest does."""
    from astropy.utils import iers

    iers.conf.auto_download = False
    cfg = tmp_path_factory.mktemp("config")
    os.environ.setdefault("SUNPY_CONFIGDIR", str(cfg / "sunpy"))
    os.environ.setdefault("MPLCONFIGDIR", str(cfg / "mpl"))
    os.environ.setdefault("MPLBACKEND", "Agg")


def write_record(
    root: Path,
    *,
    series: str = "hmi.M_720s_nrt",
    t_rec: dt.datetime,
    quality: int = 0,
    segment: str = "magnetogram",
    shape: tuple[int, int] = (64, 64),
    extra: dict | None = None,
    compress: bool = True,
) -> Path:
    """Write one JSOC-named FITS record (RICE-compressed with DATASUM, like JSOC)."""
    tai = t_rec + dt.timedelta(seconds=37)
    t_rec_s = tai.strftime("%Y.%m.%d_%H:%M:%S_TAI")
    rng = np.random.default_rng(int(t_rec.timestamp()))
    data = rng.normal(0, 10, shape).astype(np.float32)
    hdr = fits.Header()
    hdr["T_REC"] = t_rec_s
    hdr["T_OBS"] = t_rec_s
    hdr["QUALITY"] = quality
    hdr["BUNIT"] = "Gauss"
    if series.startswith("hmi.M"):
        hdr["CAMERA"] = 3
        pk = f"{tai:%Y%m%d_%H%M%S}_TAI.3"
    elif series.startswith("aia"):
        hdr["FSN"] = int(t_rec.timestamp()) // 12
        hdr["WAVELNTH"] = 304
        hdr["T_REC"] = t_rec.strftime("%Y-%m-%dT%H:%M:%SZ")
        hdr["EXPTIME"] = 2.9
        hdr["IMG_TYPE"] = "LIGHT"
        pk = f"{t_rec:%Y%m%d_%H%M%S}.{hdr['FSN']}"
    else:
        hdr["HARPNUM"] = 1
        pk = f"1.{tai:%Y%m%d_%H%M%S}_TAI"
    for k, v in (extra or {}).items():
        hdr[k] = v
    path = root / f"{series}.{pk}.{segment}.fits"
    if compress:
        hdul = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=hdr, compression_type="RICE_1")])
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(data, header=hdr)])
    hdul.writeto(path, checksum=True, overwrite=True)
    return path


@pytest.fixture
def pg_url() -> str:
    """The PostgreSQL that tests/run.sh starts (``HELIOWATCH_TEST_PG_URL``); required under CI=true."""
    url = os.environ.get("HELIOWATCH_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must provide HELIOWATCH_TEST_PG_URL (tests/run.sh starts Debian's PostgreSQL)")
        pytest.skip("no PostgreSQL here (set HELIOWATCH_TEST_PG_URL; CI does)")
    return url


@pytest.fixture
def tiny_archive(tmp_path: Path) -> Path:
    """Eight 12-minute magnetogram records on 2024-05-10; the fourth has QUALITY 0x400."""
    root = tmp_path / "archive"
    root.mkdir()
    t0 = dt.datetime(2024, 5, 10, 0, 0, 0)
    for i in range(8):
        write_record(root, t_rec=t0 + dt.timedelta(minutes=12 * i), quality=0x400 if i == 3 else 0)
    return root


@pytest.fixture
def sharp_archive(tmp_path: Path) -> Path:
    """The real SHARP patches of the demo archive, copied."""
    root = tmp_path / "sharp-archive"
    shutil.copytree(demo_archive_path() / "sharp", root / "sharp")
    shutil.copy(demo_archive_path() / "standin.toml", root / "standin.toml")
    return root


@pytest.fixture
def standin_factory() -> Iterator:
    """Start stand-ins on free loopback ports; all are stopped at teardown."""
    from heliowatch.pipelines.standin.archive import Archive, ReplayClock
    from heliowatch.pipelines.standin.faults import FaultSpec
    from heliowatch.pipelines.standin.server import StandinServer

    started = []

    def make(root: Path, *, fault: str | None = None, clock: bool = False, latency_s: float = 0.0, **kw: object) -> StandinServer:
        faults = FaultSpec.parse(fault)
        arch = Archive(root, latency_s=latency_s, aia_out_of_order_s=faults.aia_out_of_order, seed=faults.seed)
        clk = ReplayClock(arch.visibility_times(), speed=1.0) if clock else None
        srv = StandinServer(arch, faults=faults, clock=clk, **kw).start()  # type: ignore[arg-type]
        started.append(srv)
        return srv

    yield make
    for s in started:
        s.stop()


def drms_client(url: str, email: str | None = "ops@example.org"):
    """An unmodified drms.Client pointed at a stand-in."""
    import drms

    from heliowatch.pipelines.jsoc import make_server_config

    return drms.Client(make_server_config(url), email=email)


@pytest.fixture
def disk_archive(tmp_path: Path) -> Path:
    """Three small synthetic full disks (512x512, two regions each, 12 min apart) plus the demo's
    real SHARP records: every product of the magnetogram and SHARP sources has something to do."""
    from heliowatch.models.synthetic.fitsout import write_fits
    from heliowatch.models.synthetic.magnetogram import RegionSpec, synth_magnetogram

    root = tmp_path / "disk-archive"
    for k in range(3):
        t = dt.datetime(2011, 2, 15, 1, 36, tzinfo=dt.UTC) + dt.timedelta(minutes=12 * k)
        data, header, _ = synth_magnetogram(
            t, [RegionSpec("beta", -20.0, 12.0), RegionSpec("alpha", 15.0, -30.0)], size=512, seed=5, noise_seed=k
        )
        stem = f"hmi.M_720s_nrt.{header['T_REC'].replace('.', '').replace(':', '')}.3"
        write_fits(root / "magnetogram" / f"{stem}.magnetogram.fits", data, header)
    shutil.copytree(demo_archive_path() / "sharp", root / "sharp")
    shutil.copy(demo_archive_path() / "standin.toml", root / "standin.toml")
    shutil.copytree(demo_archive_path() / "events", root / "events")
    shutil.copytree(demo_archive_path() / "srs", root / "srs")
    return root
