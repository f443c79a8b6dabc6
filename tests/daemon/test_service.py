"""The daemon as a whole: replay runs, scheduler, restart safety, signals, sd_notify, logs, metrics."""

from __future__ import annotations

import email
import email.policy
import io
import json
import logging
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from heliowatch.daemon import sdnotify
from heliowatch.daemon.config import load_config
from heliowatch.daemon.logs import configure_logging
from heliowatch.daemon.service import Daemon
from heliowatch.models.core.times import unix_from_iso
from heliowatch.pipelines.standin.archive import demo_archive_path

ROOT = Path(__file__).resolve().parents[2]


def cfg_for(tmp_path: Path, **env: str):
    base = {"HELIOWATCH_DAEMON__STATE_DIR": str(tmp_path / "state"), "HELIOWATCH_METRICS__PORT": "0"}
    return load_config(None, environ={**base, **env})


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_once_replay_of_tiny_archive(tiny_archive: Path, tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path, HELIOWATCH_REPLAY__ARCHIVE=str(tiny_archive), HELIOWATCH_JSOC__ENABLED_SOURCES='["magnetogram"]')
    summary = Daemon.from_config(cfg, once=True).run()
    assert summary.ingested == {"hmi.M_720s_nrt": 7}
    assert summary.skipped_quality == {"hmi.M_720s_nrt": 1}
    prom = Path(summary.metrics_file).read_text()
    assert 'heliowatch_ingested_records_total{series="hmi.M_720s_nrt"} 7.0' in prom
    assert 'heliowatch_rejected_records_total{reason="quality",series="hmi.M_720s_nrt"} 1.0' in prom
    lines = [json.loads(x) for x in Path(summary.ingest_log).read_text().splitlines()]
    assert len(lines) == 7
    assert all(Path(p).exists() for x in lines for p in x["files"].values())


def test_scheduled_replay_runs_at_speed_and_stops_when_drained(tiny_archive: Path, tmp_path: Path) -> None:
    cfg = cfg_for(
        tmp_path,
        HELIOWATCH_REPLAY__ARCHIVE=str(tiny_archive),
        HELIOWATCH_REPLAY__SPEED="1200",  # 12 archive minutes in 0.6 s
        HELIOWATCH_JSOC__ENABLED_SOURCES='["magnetogram"]',
        HELIOWATCH_DAEMON__HEARTBEAT_S="1",
    )
    d = Daemon.from_config(cfg)
    t0 = time.monotonic()
    summary = d.run()
    assert time.monotonic() - t0 < 60
    assert summary.ingested == {"hmi.M_720s_nrt": 7}
    # More than one poll: records appeared over replay time, not all at once.
    assert summary.polls >= 3
    assert d.metrics.registry.get_sample_value("heliowatch_job_runs_total", {"job": "hmi.M_720s_nrt", "outcome": "ok"}) >= 3


def test_kill_mid_download_then_restart_loses_and_duplicates_nothing(tiny_archive: Path, tmp_path: Path) -> None:
    # A slow stand-in (0.4 s per request) in its own process, the daemon in another.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    standin = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "heliowatch.daemon.cli",
            "jsoc-standin",
            "--archive",
            str(tiny_archive),
            "--port",
            str(port),
            "--fault",
            "latency=0.4",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        standin.stderr.readline()
        env = {
            "HELIOWATCH_JSOC__SERVER": f"http://127.0.0.1:{port}/",
            "HELIOWATCH_JSOC__EMAIL": "ops@example.org",
            "HELIOWATCH_JSOC__ENABLED_SOURCES": '["magnetogram"]',
            "HELIOWATCH_JSOC__LOOKBACK_HOURS": "1e6",
            "HELIOWATCH_DAEMON__STATE_DIR": str(tmp_path / "state"),
            "HELIOWATCH_METRICS__ENABLED": "false",
        }
        daemon = subprocess.Popen(
            [sys.executable, "-m", "heliowatch.daemon.cli", "run"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        db = tmp_path / "state" / "state.sqlite"
        deadline = time.time() + 120
        n = 0
        while time.time() < deadline:
            if db.exists():
                try:
                    with sqlite3.connect(db) as c:
                        n = c.execute("select count(*) from frames").fetchone()[0]
                except sqlite3.OperationalError:
                    n = 0
                if n >= 2:
                    break
            time.sleep(0.05)
        daemon.send_signal(signal.SIGKILL)  # no chance to clean up: mid-download
        daemon.wait(timeout=30)
        assert 2 <= n < 7, n
        done = run_cli("run", "--once", env=env)
        assert done.returncode == 0, done.stderr
        with sqlite3.connect(db) as c:
            rows = c.execute("select record, segment, sha256 from frames").fetchall()
        assert len(rows) == len(set(rows)) == 7
        frames = list((tmp_path / "state" / "frames").rglob("*.fits"))
        assert len(frames) == 7
        # Every recorded file is complete and matches its recorded digest.
        import hashlib

        for _, _, digest in rows:
            assert any(hashlib.sha256(f.read_bytes()).hexdigest() == digest for f in frames)
    finally:
        standin.terminate()
        standin.wait(timeout=10)
        standin.stderr.close()


def test_sigterm_stops_gracefully_and_notifies_systemd(sharp_archive: Path, tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(sock_path))
    srv.settimeout(60)
    env = {
        "NOTIFY_SOCKET": str(sock_path),
        "WATCHDOG_USEC": "2000000",
        "HELIOWATCH_DAEMON__STATE_DIR": str(tmp_path / "state"),
        "HELIOWATCH_DAEMON__HEARTBEAT_S": "1",
        "HELIOWATCH_METRICS__PORT": "0",
        "HELIOWATCH_REPLAY__ARCHIVE": str(sharp_archive),
    }
    p = subprocess.Popen(
        [sys.executable, "-m", "heliowatch.daemon.cli", "run", "--keep-running"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        msgs = []
        while not any("WATCHDOG=1" in m for m in msgs):
            msgs.append(srv.recv(4096).decode())
        assert msgs[0].startswith("READY=1")
        assert "STATUS=" in msgs[0]
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        while not any(m.startswith("STOPPING=1") for m in msgs):
            msgs.append(srv.recv(4096).decode())
        # Logs are on stderr (the journal takes both streams); stdout holds only the summary.
        events = [json.loads(x)["event"] for x in err.splitlines() if x.startswith("{")]
        assert "signal" in events
        assert "record(s) ingested" in out and not [x for x in out.splitlines() if x.startswith("{")]
        assert events[-1] == "run_finished"
    finally:
        srv.close()
        if p.poll() is None:
            p.kill()


def test_sdnotify_abstract_socket_and_absent() -> None:
    name = f"heliowatch-test-{os.getpid()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind("\0" + name)
    srv.settimeout(5)
    try:
        assert sdnotify.notify("READY=1", environ={"NOTIFY_SOCKET": "@" + name})
        assert srv.recv(100) == b"READY=1"
    finally:
        srv.close()
    assert sdnotify.notify("READY=1", environ={}) is False
    assert sdnotify.notify("READY=1", environ={"NOTIFY_SOCKET": "/nonexistent/sock"}) is False
    assert sdnotify.watchdog_interval_s(environ={"WATCHDOG_USEC": "30000000"}) == 15.0
    assert sdnotify.watchdog_interval_s(environ={"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None


def test_metrics_endpoint_is_on_loopback_and_serves(tiny_archive: Path, tmp_path: Path) -> None:
    from heliowatch.daemon.metrics import Metrics
    from heliowatch.daemon.statuspage import StatusServer

    m = Metrics()
    srv = StatusServer(m.http_body, dict, host="127.0.0.1", port=0)
    try:
        m.ingested("hmi.M_720s_nrt", nbytes=10, latency_s=None, t_rec_unix=0.0)
        m.ingested("hmi.M_720s_nrt", nbytes=10, latency_s=None, t_rec_unix=0.0)
        m.ingested("hmi.M_720s_nrt", nbytes=10, latency_s=None, t_rec_unix=0.0)
        resp = urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/metrics", timeout=5)
        body = resp.read().decode()
        assert 'heliowatch_ingested_records_total{series="hmi.M_720s_nrt"} 3.0' in body
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        assert srv.httpd.server_address[0] == "127.0.0.1"
    finally:
        srv.stop()


def test_logs_are_json_with_third_party_loggers_and_no_locals() -> None:
    buf = io.StringIO()
    configure_logging("info", "json", stream=buf)
    import drms  # noqa: F401  (its import-time basicConfig must not add a second handler)

    logging.getLogger("sunpy").warning("from sunpy")
    import structlog

    secret = "hunter2-password"  # noqa: F841  (a local that must not reach the log)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger("t").exception("failed", series="hmi.M_720s_nrt")
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert lines[0]["event"] == "from sunpy"
    assert lines[0]["logger"] == "sunpy"
    assert lines[1]["series"] == "hmi.M_720s_nrt"
    assert lines[1]["level"] == "error"
    assert "hunter2" not in buf.getvalue()
    assert "boom" in buf.getvalue()
    assert len(logging.getLogger().handlers) == 1


def test_journald_priority_prefix() -> None:
    buf = io.StringIO()
    configure_logging("info", "json", journald_prefix=True, stream=buf)
    logging.getLogger("x").warning("w")
    assert buf.getvalue().startswith("<4>{")


@pytest.mark.slow
def test_readme_main_command_runs_the_demo(tmp_path: Path) -> None:
    p = run_cli("run", "--replay", "demo", "--once", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("heliowatch: ") and "record(s) ingested" in p.stdout
    summary = json.loads((tmp_path / "heliowatch-state" / "outputs" / "run-summary.json").read_text())
    assert summary["ingested"]["hmi.sharp_cea_720s_nrt"] == 3
    status = run_cli("status", cwd=tmp_path)
    assert status.returncode == 0
    assert json.loads(status.stdout)["records_per_series"]["hmi.sharp_cea_720s_nrt"] == 3
    # One flare issue per SHARP cadence, with exports and metrics; no occlusion maps, since the
    # shipped CNN's card says it is not operational (flares.occlusion_maps = "operational").
    out = tmp_path / "heliowatch-state" / "outputs"
    issues = sorted(out.glob("forecasts/*/flare-forecast-*Z.json"))
    assert len(issues) == 3
    first = json.loads(issues[0].read_text())
    assert first["regions"][0]["noaa_ar"] == 11158 and first["regions"][0]["p_m"] > 0.5
    assert first["regions"][0]["occlusion_png"] is None and not list(out.glob("forecasts/*/occlusion-*.png"))
    assert first["regions"][0]["cnn"]["synthetic"] is True and first["regions"][0]["cnn"]["operational"] is False
    # NOAA 11158's forecast carries the class of the region detected there on the magnetograms.
    assert first["regions"][0]["mtwilson"] in {
        "alpha",
        "beta",
        "gamma",
        "beta-gamma",
        "beta-delta",
        "beta-gamma-delta",
        "gamma-delta",
    }
    # Region records name their NOAA region from the SRS issued before the frame (0030Z that day).
    prods = run_cli("products", "--product", "region", "--limit", "100", cwd=tmp_path)
    assert prods.returncode == 0, prods.stderr
    regions = [p["payload"] for p in json.loads(prods.stdout)["products"]]
    by_noaa = {r["noaa_ar"]: r for r in regions if r["noaa_ar"]}
    assert {11157, 11158, 11159, 11161} <= set(by_noaa)
    assert all(Path(r["cutout_fits"]).exists() and Path(r["cutout_png"]).exists() for r in regions)
    assert by_noaa[11158]["srs"] == {
        "issued": "2011-02-15T00:30:00+00:00",
        "mtwilson": "beta-gamma",
        "mcintosh": "Ekc",
        "area_uhem": 450.0,
    }
    prom = (out / "metrics.prom").read_text()
    assert 'heliowatch_flare_probability{harpnum="7115",level="M",noaa_ar="12673"}' in prom
    # The last frame's regions by class, as the Grafana panel shows them (11157, 11159, 11161 are Beta).
    on_disk = {
        line.split('"')[1]: float(line.split()[-1])
        for line in prom.splitlines()
        if line.startswith("heliowatch_regions_on_disk{")
    }
    assert set(on_disk) == {"alpha", "beta", "gamma", "beta-gamma", "delta", "beta-delta", "beta-gamma-delta", "gamma-delta"}
    assert sum(on_disk.values()) == len([r for r in regions if r["t_rec_utc"] == max(x["t_rec_utc"] for x in regions)])
    assert on_disk["beta"] >= 3
    assert 'heliowatch_flare_verification{level="M",scope="full_disk",score="n"} 1.0' in prom
    # The same products as before the product interface (keys, and the fields of every payload
    # kind), recorded from main before the change in tests/data/demo_products.json.
    everything = json.loads(run_cli("products", "--limit", "1000", cwd=tmp_path).stdout)["products"]
    recorded = json.loads((ROOT / "tests" / "data" / "demo_products.json").read_text())
    assert sorted([p["product"], p["key"]] for p in everything) == recorded["keys"]
    fields: dict[str, list[str]] = {}
    for prod in everything:
        fields.setdefault(prod["product"], sorted(prod["payload"]))
    assert fields == recorded["fields"]
    # Every record is processed once by each product that consumes it (91 records: 28 magnetograms, of
    # which 25 are the emergence history, 3 SHARPs, 60 AIA).
    assert summary["processed"] == {"data_health": 91, "regions": 28, "flares": 3, "jets": 60, "emergence": 28}
    _check_demo_emergence(tmp_path, out, prom)
    _check_demo_jets(tmp_path, out, prom)
    _check_demo_exchange_formats(everything, issues)
    # Products see each other through the catalogue in time order: the 02:00 magnetogram's NOAA 11158
    # carries the HARP of the SHARP record of 01:59:26, whatever order the sources were polled in.
    last = next(r for r in regions if r["noaa_ar"] == 11158 and r["t_rec_utc"].startswith("2011-02-15T02:00"))
    assert last["harpnum"] == 377


def _check_demo_emergence(tmp_path: Path, out: Path, prom: str) -> None:
    """The demo's emerging bipole gets one warning, on the map of the frame that closed its window, and one alert."""
    truth = json.loads((demo_archive_path() / "magnetogram" / "truth.json").read_text())
    emerging = next(r for f in truth["frames"] if not f.get("emergence") for r in f["regions"] if r.get("emerging"))
    p = run_cli("products", "--product", "emergence_warning", cwd=tmp_path)
    (w,) = [x["payload"] for x in json.loads(p.stdout)["products"]]
    assert abs(w["hgs_lat"] - emerging["hgs_lat"]) < 7.5 and w["synthetic_model"] is True and w["probability"] >= 0.75
    assert Path(w["map_png"]).exists() and json.loads(Path(w["hek_json"]).read_text())["Event_Type"] == "EF: EmergingFlux"
    # An emergence map for every magnetogram the product used (the QUALITY-flagged one is skipped).
    assert len(list(out.glob("emergence/*/emergence-map-*.png"))) == 28
    windows = json.loads(run_cli("products", "--product", "emergence", "--limit", "1000", cwd=tmp_path).stdout)["products"]
    assert windows and all(len(x["payload"]["records"]) == 2 for x in windows)  # FCN and MTOT for every patch-window
    maildir = (tmp_path / "heliowatch-state" / "maildir" / "new").iterdir()
    mails = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in maildir]
    assert len([m for m in mails if "flux emergence" in m["Subject"]]) == 1
    assert "heliowatch_emergence_warnings 1.0" in prom and "heliowatch_emergence_patches 408.0" in prom


def _check_demo_exchange_formats(products: list[dict], issues: list[Path]) -> None:
    """Every product event of the demo has its community formats: CCMC submissions, HEK fields, VOEvents."""
    import xml.etree.ElementTree as ET

    import xmlschema

    from heliowatch.pipelines.exports import check_hek
    from heliowatch.pipelines.flare_exports import CCMC_COLUMNS

    # CCMC Flare Scoreboard: a text and a JSON submission beside each issue, with every documented field.
    for issue in issues:
        fd = json.loads(issue.read_text())
        stamp = fd["issue_time"][:16].replace("-", "").replace(":", "").replace("T", "_")
        txt = issue.parent / f"Flare_Forecast_heliowatch_0.1_{stamp}.txt"
        lines = txt.read_text().splitlines()
        header = dict(line.split(": ", 1) for line in lines[:7])
        assert list(header) == [
            "Forecasting method",
            "Issue Time",
            "Prediction Window Start Time",
            "Prediction Window End Time",
            "Probability Bins",
            "Input data",
            "Prediction window (hours)",
        ]
        assert header["Forecasting method"] == "heliowatch_0.1" and header["Prediction window (hours)"] == "24"
        rows = [line.split() for line in lines[7:] if not line.startswith("#")]
        assert len(rows[0]) == len(CCMC_COLUMNS) and float(rows[0][3]) == round(fd["p_m"], 4)
        noaa = {r["noaa_ar"] for r in fd["regions"] if r["noaa_ar"]}
        assert {int(r[0]) for r in rows[1:]} == noaa and all(len(r) == len(CCMC_COLUMNS) + 1 for r in rows[1:])
        sub = json.loads(txt.with_suffix(".json").read_text())["forecast_submission"]
        assert sub["model"]["short_name"] == "heliowatch_0.1" and sub["issue_time"] == header["Issue Time"]
        (full,) = sub["full_disk_forecasts"]
        assert set(full["prediction_window"]) == {"start_time", "end_time"}
        assert [p["class"] for p in full["flare_probabilities"]] == ["C+", "M+", "X+"]
        assert len(sub["region_forecasts"]) == len(fd["regions"])
        assert all({i["type"] for i in r["region_ids"]} <= {"NOAA", "HARP"} for r in sub["region_forecasts"])
    # HEK fields and a schema-valid VOEvent for every region (per frame), jet and emergence warning.
    xsd = xmlschema.XMLSchema(str(ROOT / "pipelines" / "data" / "formats" / "VOEvent-v2.0.xsd"))
    events = [p for p in products if p["product"] in ("region", "jet", "emergence_warning")]
    assert len(events) == 37
    ivorns = set()
    for p in events:
        hek = json.loads(Path(p["payload"]["hek_json"]).read_text())
        assert check_hek(hek) == [], (p["key"], check_hek(hek))
        packet = Path(p["payload"]["voevent_xml"]).read_text()
        xsd.validate(packet)
        root = ET.fromstring(packet)
        assert root.get("role") == "test"  # a replay's events
        ivorns.add(root.get("ivorn"))
    assert len(ivorns) == len(events)


def _check_demo_jets(tmp_path: Path, out: Path, prom: str) -> None:
    """The demo's jet sequence gives one jet event, its pictures and one alert; the jet-free one gives nothing."""
    truth = json.loads((demo_archive_path() / "aia" / "truth.json").read_text())
    jet_seq, free_seq = truth["sequences"]
    (jet,) = jet_seq["jets"]
    p = run_cli("products", "--product", "jet", "--limit", "100", cwd=tmp_path)
    events = [x["payload"] for x in json.loads(p.stdout)["products"]]
    assert len(events) == 1, events
    ev = events[0]
    assert math.dist(ev["base_hpc_arcsec"], jet["base_hpc_arcsec"]) < 15.0
    assert abs((ev["direction_deg"] - jet["direction_deg"] + 180) % 360 - 180) < 15.0
    assert "baseline" in ev["detectors"] and ev["synthetic_model"] is True
    assert unix_from_iso(ev["start_utc"]) < free_seq["frame_times"][0]  # nothing from the jet-free sequence
    for key in ("strip_png", "movie_gif", "overview_png", "hek_json", "voevent_xml"):
        assert Path(ev[key]).exists(), key
    hek = json.loads(Path(ev["hek_json"]).read_text())
    assert hek["Event_Type"] == "CJ: CoronalJet" and hek["Event_CoordSys"] == "UTC-HPC-TOPO"
    assert [hek["Event_Coord1"], hek["Event_Coord2"]] == [round(v, 3) for v in ev["base_hpc_arcsec"]]
    maildir = (tmp_path / "heliowatch-state" / "maildir" / "new").iterdir()
    mails = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in maildir]
    jets = [m for m in mails if "coronal jet" in m["Subject"]]
    assert len(jets) == 1
    attached = [part.get_filename() for part in jets[0].iter_attachments()]  # type: ignore[attr-defined]
    assert any(name and name.endswith("strip.png") for name in attached)
    assert "heliowatch_jet_events_per_hour " in prom and 'heliowatch_jet_detector_enabled{detector="convlstm"} 1.0' in prom


def test_status_without_state_is_a_clear_error(tmp_path: Path) -> None:
    p = run_cli("status", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.startswith("heliowatch: error: no state database")


def test_replay_of_missing_archive_is_a_clear_error(tmp_path: Path) -> None:
    p = run_cli("run", "--replay", str(tmp_path / "nope"), "--once", cwd=tmp_path)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1
    assert "is not a directory" in p.stderr
