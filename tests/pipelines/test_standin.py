"""The JSOC stand-in, driven by the unmodified drms client over real HTTP."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pytest
from drms.exceptions import DrmsExportError, DrmsQueryError

from heliowatch.pipelines.standin.archive import jsoc_time_to_unix
from tests.conftest import drms_client, write_record


def test_done_means_query_latest_sharps(sharp_archive: Path, standin_factory) -> None:
    srv = standin_factory(sharp_archive)
    c = drms_client(srv.url)
    df = c.query("hmi.sharp_cea_720s_nrt[][$]", key="HARPNUM,T_REC,USFLUX")
    assert list(df.columns) == ["HARPNUM", "T_REC", "USFLUX"]
    assert df.to_dict("records") == [{"HARPNUM": 7115, "T_REC": "2017.09.06_12:00:00_TAI", "USFLUX": pytest.approx(4.533103e22)}]


def test_done_means_export_and_download(sharp_archive: Path, standin_factory, tmp_path: Path) -> None:
    srv = standin_factory(sharp_archive)
    c = drms_client(srv.url)
    req = c.export("hmi.sharp_cea_720s_nrt[377][2011.02.15_02:00:00_TAI]{Br,bitmap}", method="url_quick", protocol="as-is")
    assert req.status == 0
    got = req.download(str(tmp_path))
    assert got["download"].notna().all()
    names = sorted(Path(p).name for p in got["download"])
    assert names == [
        "hmi.sharp_cea_720s_nrt.377.20110215_020000_TAI.Br.fits",
        "hmi.sharp_cea_720s_nrt.377.20110215_020000_TAI.bitmap.fits",
    ]
    original = sharp_archive / "sharp" / "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits"
    assert (tmp_path / names[0]).read_bytes() == original.read_bytes()


def test_async_fits_export_and_one_pending_per_user(sharp_archive: Path, standin_factory, tmp_path: Path) -> None:
    srv = standin_factory(sharp_archive, export_delay_s=0.5)
    c = drms_client(srv.url)
    r1 = c.export("hmi.sharp_cea_720s_nrt[7115][]{Br}", method="url", protocol="fits")
    assert r1.status in (1, 2)
    refused = c.export("hmi.sharp_cea_720s_nrt[377][]{Br}", method="url", protocol="fits")
    assert refused.status == 7
    assert refused.has_failed()
    with pytest.raises(DrmsExportError, match="status=7"):
        refused.wait(timeout=1)
    assert r1.wait(timeout=10, sleep=0.2)
    assert len(r1.urls) == 2
    assert r1.download(str(tmp_path))["download"].notna().all()
    # Once the first has finished, the next export is accepted.
    r2 = c.export("hmi.sharp_cea_720s_nrt[377][]{Br}", method="url", protocol="fits")
    assert r2.wait(timeout=10, sleep=0.2)


def test_pending_forever_export_never_finishes(sharp_archive: Path, standin_factory) -> None:
    srv = standin_factory(sharp_archive, fault="pending_forever")
    r = drms_client(srv.url).export("hmi.sharp_cea_720s_nrt[7115][]{Br}", method="url", protocol="fits")
    assert r.wait(timeout=1.5, sleep=0.3) is False


def test_status7_fault(sharp_archive: Path, standin_factory) -> None:
    srv = standin_factory(sharp_archive, fault="status7")
    req = drms_client(srv.url).export("hmi.sharp_cea_720s_nrt[7115][]{Br}", method="url", protocol="fits")
    with pytest.raises(DrmsExportError, match="status=7"):
        req.wait(timeout=1)


def test_series_struct_missing_values_and_errors(sharp_archive: Path, standin_factory) -> None:
    srv = standin_factory(sharp_archive)
    c = drms_client(srv.url)
    assert c.pkeys("hmi.sharp_cea_720s_nrt") == ["HARPNUM", "T_REC"]
    info = c.info("hmi.sharp_cea_720s_nrt")
    assert {"USFLUX", "QUALITY", "T_REC"} <= set(info.keywords.index)
    assert {"Br", "bitmap", "magnetogram"} <= set(info.segments.index)
    assert info.keywords.loc["T_REC"].is_time
    df = c.query("hmi.sharp_cea_720s_nrt[377][]", key="R_VALUE,NOSUCHKEY,QUALITY", convert_numeric=False)
    assert df.loc[0, "NOSUCHKEY"] == "Invalid KeyLink"
    assert df.loc[0, "R_VALUE"] == "nan"  # JSOC's own 'nan' for this record
    assert df.loc[0, "QUALITY"] == "0x00000000"
    k, s = c.query("hmi.sharp_cea_720s_nrt[7115][2017.09.01_00:00_TAI/2d]", key="T_REC", seg="Br,magnetogram")
    assert len(k) == 1
    assert s.loc[0, "magnetogram"] == "InvalidSegName"
    with pytest.raises(DrmsQueryError, match="does not exist"):
        c.query("hmi.nosuch_series[]", key="T_REC")
    with pytest.raises(DrmsQueryError):
        c.query("hmi.sharp_cea_720s_nrt[? QUALITY ?]", key="T_REC")
    assert c.series(r"sharp") == ["hmi.sharp_cea_720s", "hmi.sharp_cea_720s_nrt"]


def test_invalid_email_is_refused(sharp_archive: Path, standin_factory) -> None:
    srv = standin_factory(sharp_archive)
    with pytest.raises(ValueError, match="invalid"):
        drms_client(srv.url, email="nobody")


def test_n_and_filters(tiny_archive: Path, standin_factory) -> None:
    srv = standin_factory(tiny_archive)
    c = drms_client(srv.url)
    assert len(c.query("hmi.M_720s_nrt[]", key="T_REC")) == 8
    assert len(c.query("hmi.M_720s_nrt[? QUALITY=0 ?]", key="T_REC")) == 7
    last2 = c.query("hmi.M_720s_nrt[]", key="T_REC", n=-2)
    assert list(last2["T_REC"]) == ["2024.05.10_01:12:37_TAI", "2024.05.10_01:24:37_TAI"]
    win = c.query("hmi.M_720s_nrt[2024.05.10_00:12:37_TAI-2024.05.10_00:36:37_TAI]", key="T_REC")
    assert len(win) == 3
    assert c.query("hmi.M_720s_nrt[]", key="T_REC", n=-1).shape == (1, 1)


def test_time_warp_clock_reveals_records_as_it_advances(tiny_archive: Path, standin_factory) -> None:
    srv = standin_factory(tiny_archive, clock=True, latency_s=600)
    c = drms_client(srv.url)
    t3 = jsoc_time_to_unix("2024.05.10_00:36:37_TAI")
    srv.clock.freeze_at(t3 + 600 + 1)  # record 3 has just become available
    df = c.query("hmi.M_720s_nrt[]", key="T_REC,DATE")
    assert len(df) == 4
    assert df["DATE"].iloc[-1] == "2024-05-10T00:46:00Z"  # T_REC (UTC) + 10 min latency
    srv.clock.jump_to_end()
    assert len(c.query("hmi.M_720s_nrt[]", key="T_REC")) == 8


def test_aia_out_of_order_arrival(tmp_path: Path, standin_factory) -> None:
    root = tmp_path / "aia"
    root.mkdir()
    t0 = dt.datetime(2024, 5, 10)
    for i in range(20):
        write_record(root, series="aia.lev1_nrt2", segment="image_lev1", t_rec=t0 + dt.timedelta(seconds=24 * i))
    srv = standin_factory(root, fault="aia_out_of_order=300,seed=3", clock=True)
    srv.clock.freeze_at(t0.replace(tzinfo=dt.UTC).timestamp() + 24 * 10)
    seen = drms_client(srv.url).query("aia.lev1_nrt2[? WAVELNTH=304 ?]", key="T_REC,FSN")
    times = sorted(seen["T_REC"])
    # Some later frames have arrived while some earlier ones have not: a gap in the visible set.
    all_times = [(t0 + dt.timedelta(seconds=24 * i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(20)]
    first_missing = next(t for t in all_times if t not in times)
    assert any(t > first_missing for t in times)


def test_5xx_fault_then_recovery(tiny_archive: Path, standin_factory) -> None:
    from urllib.error import HTTPError

    srv = standin_factory(tiny_archive, fault="5xx_first=2")
    with pytest.raises(HTTPError):
        drms_client(srv.url, email=None).query("hmi.M_720s_nrt[]", key="T_REC")
    with pytest.raises(HTTPError):
        drms_client(srv.url, email=None).query("hmi.M_720s_nrt[]", key="T_REC")
    assert len(drms_client(srv.url, email=None).query("hmi.M_720s_nrt[]", key="T_REC")) == 8


def test_cli_standin_serves_demo(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen(
        [sys.executable, "-m", "heliowatch.daemon.cli", "jsoc-standin", "--archive", "demo", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = p.stderr.readline()
        assert f"127.0.0.1:{port}" in line
        c = drms_client(f"http://127.0.0.1:{port}/")
        deadline = time.time() + 20
        df = None
        while df is None and time.time() < deadline:
            df = c.query("hmi.sharp_cea_720s_nrt[][$]", key="HARPNUM,T_REC,USFLUX")
        assert int(df["HARPNUM"].iloc[0]) == 7115
    finally:
        p.terminate()
        p.wait(timeout=10)
        p.stderr.close()
