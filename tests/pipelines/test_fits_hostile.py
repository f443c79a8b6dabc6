"""Every hostile FITS file of issue 11 is one line and exit 2, or a counted reject: never a traceback.

The files are demo magnetograms and a real SHARP record with their header cards rewritten in
place (``tests/hostile_fits.py``): ``DATASUM = 1E400``, ``CDELT1 = 'nan'``, non-numeric
``CDELT1``/``CRLT_OBS``, ``T_REC = 7``, a duplicated ``ZNAXIS1``, out-of-range ``ZVAL2``/``ZTILE1``,
int16 with ``ZBLANK``, a deleted ``XTENSION`` and a 1.66 MB GZIP cube of 1.6 GB.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from heliowatch.daemon.cli import main
from heliowatch.daemon.metrics import Metrics
from heliowatch.pipelines.errors import DataRejected
from heliowatch.pipelines.fitsio import header_float, read_fits
from tests.conftest import write_record
from tests.hostile_fits import DEFECTS, MAGNETOGRAM, SHARP_BITMAP, UNUSABLE, edit_cards, sharp_record
from tests.pipelines.test_ingest import make_ingestor, sample


def _one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("heliowatch: error: ")
    return lines[0]


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_read_fits_rejects_each_defect_with_a_one_line_reason(tmp_path: Path, defect: str) -> None:
    f = DEFECTS[defect](tmp_path / MAGNETOGRAM.name)
    with pytest.raises(DataRejected) as e:
        read_fits(f)
    assert e.value.reason in ("corrupt", "size")
    assert "\n" not in str(e.value)
    assert str(e.value).startswith(f"{f.name}: ")


@pytest.mark.parametrize("defect", sorted(DEFECTS) + sorted(UNUSABLE))
def test_detect_exits_2_with_one_line_for_each_defect(tmp_path: Path, capsys: pytest.CaptureFixture[str], defect: str) -> None:
    f = {**DEFECTS, **UNUSABLE}[defect](tmp_path / MAGNETOGRAM.name)
    line = _one_line_exit_2(capsys, ["detect", str(f), "--json"])
    assert f.name in line


@pytest.mark.parametrize(
    ("what", "edit", "message"),
    [
        ("DATASUM = 1E400", ("set", "DATASUM", "1E400"), "DATASUM"),
        ("CDELT1 = 'nan'", ("set", "CDELT1", "'nan'"), "CDELT1"),
        ("CDELT1 not a number", ("set", "CDELT1", "'fine'"), "CDELT1"),
        ("CRLT_OBS not a number", ("set", "CRLT_OBS", "'up'"), "CRLT_OBS"),
        ("T_REC = 7", ("set", "T_REC", "7"), "T_REC"),
        ("duplicated ZNAXIS1", ("dup", "ZNAXIS1", "5"), "ZNAXIS1"),
        ("ZTILE1 = 0", ("set", "ZTILE1", "0"), "ZTILE1"),
        ("ZVAL2 = 99", ("set", "ZVAL2", "99"), "ZVAL2"),
        ("deleted XTENSION", ("del", "XTENSION", ""), "not a readable FITS file"),
    ],
)
@pytest.mark.parametrize("command", ["classify", "forecast"])
def test_sharp_commands_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, what: str, edit: tuple[str, str, str], message: str
) -> None:
    f = sharp_record(tmp_path, [edit])
    line = _one_line_exit_2(capsys, [command, str(f), "--json"])
    assert message in line, what


def test_sharp_segments_of_different_shapes_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = sharp_record(tmp_path)
    header = fits.getheader(SHARP_BITMAP)
    for key in ("DATASUM", "CHECKSUM", "BLANK"):
        header.remove(key, ignore_missing=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # JSOC's non-standard cards, kept as they are
        fits.writeto(
            tmp_path / SHARP_BITMAP.name, np.full((10, 10), 34, np.int16), header, output_verify="ignore", overwrite=True
        )
    for command in ("classify", "forecast"):
        assert "different shapes" in _one_line_exit_2(capsys, [command, str(f), "--json"])


def test_header_float_names_the_keyword_and_the_problem() -> None:
    h = fits.Header({"CDELT1": 0.5, "RSUN_OBS": "nan", "CRLT_OBS": "x", "NEG": -1.0})
    assert header_float(h, "CDELT1", positive=True) == 0.5
    assert header_float(h, "ABSENT", 2.0) == 2.0
    for key, kwargs, problem in [
        ("RSUN_OBS", {}, "is not finite"),
        ("CRLT_OBS", {}, "is not a number"),
        ("NEG", {"positive": True}, "must be > 0"),
        ("CDELT1", {"low": 1.0, "high": 2.0}, "outside 1..2"),
        ("ABSENT", {}, "is missing"),
    ]:
        with pytest.raises(DataRejected, match=f"keyword {key}.*{problem}") as e:
            header_float(h, key, where="f.fits", **kwargs)  # type: ignore[arg-type]
        assert e.value.reason == "corrupt"


def test_a_hostile_record_is_a_counted_retried_reject_and_the_others_are_ingested(
    tmp_path: Path, standin_factory, tiny_archive: Path
) -> None:  # type: ignore[no-untyped-def]
    # The fifth record of the archive now carries DATASUM = 1E400 (it crashed --once and wedged the source).
    victim = sorted(tiny_archive.rglob("*.fits"))[4]
    edit_cards(victim, victim, [("set", "DATASUM", "1E400")])
    m = Metrics()
    ing = make_ingestor(standin_factory(tiny_archive).url, tmp_path, metrics=m)
    res = ing.poll()
    assert (res.ingested, res.rejected) == (6, 1)
    assert sample(m, "heliowatch_rejected_records_total", series="hmi.M_720s_nrt", reason="corrupt") == 1
    # Not given up at once: the next poll tries it again (it is still corrupt), and nothing raises.
    again = ing.poll()
    assert again.rejected == 1
    assert sample(m, "heliowatch_rejected_records_total", series="hmi.M_720s_nrt", reason="corrupt") == 2


def _peak_rss_mib(code: str) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter; its peak RSS (MiB) and its stdout."""
    wrapped = f"{code}\nimport resource\nprint('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    out = subprocess.run(
        [sys.executable, "-c", wrapped], capture_output=True, text=True, timeout=300, env={**os.environ, "MPLBACKEND": "Agg"}
    )
    assert out.returncode == 0, out.stderr
    rss = float(out.stdout.rsplit("RSS", 1)[1])
    return rss, out.stdout


@pytest.mark.slow
def test_a_decompression_bomb_is_refused_unread_in_bounded_memory(tmp_path: Path) -> None:
    bomb = DEFECTS["cube-bomb"](tmp_path / "bomb.fits")
    assert bomb.stat().st_size < 2 * 2**20  # 1.66 MB on disk, 1.6 GiB decompressed
    baseline, _ = _peak_rss_mib("import heliowatch.daemon.cli")
    code = (
        "from heliowatch.daemon.cli import main\n"
        f"rc = main(['detect', {str(bomb)!r}, '--json'])\n"
        "assert rc == 2, rc\n"
        "from heliowatch.pipelines.fitsio import read_fits\n"
        "from heliowatch.pipelines.errors import DataRejected\n"
        "try:\n"
        f"    read_fits({str(bomb)!r})\n"
        "except DataRejected as e:\n"
        "    print('REASON', e.reason)\n"
    )
    rss, out = _peak_rss_mib(code)
    assert "REASON size" in out
    # The issue measured 1.77 GB for detect; refused unread, it costs next to nothing over the imports.
    assert rss - baseline < 100, (rss, baseline)
    print(f"bomb: peak RSS {rss:.0f} MiB, {rss - baseline:.0f} MiB over the imports")


def test_the_command_line_shows_no_traceback_for_a_hostile_file(tmp_path: Path) -> None:
    f = DEFECTS["datasum-1e400-number"](tmp_path / MAGNETOGRAM.name)
    out = subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", "detect", str(f), "--json"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "DATASUM" in out.stderr


def test_good_files_still_read(tmp_path: Path) -> None:
    # The checks refuse nothing real: every demo file and a fresh JSOC-like record read.
    from heliowatch.pipelines.standin.archive import demo_archive_path

    files = sorted(demo_archive_path().rglob("*.fits"))
    assert len(files) > 50
    for f in files:
        assert read_fits(f).data.ndim == 2
    rec = write_record(tmp_path, t_rec=dt.datetime(2024, 5, 10), extra={"CDELT1": 0.504, "CRLT_OBS": -3.2})
    assert read_fits(rec).keyword("CRLT_OBS") == -3.2
