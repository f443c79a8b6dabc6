"""The status page, loaded by headless Chromium: a healthy, a stale and a degraded daemon (and a
replay mixing epochs), each built from fixtures (a state database, a products store, the JSOC
counters and the outbox) rather than a long daemon run, plus one look at a live demo daemon.

Each state's screenshot is saved in the test's tmp directory and, when
``HELIOWATCH_SCREENSHOT_DIR`` is set, copied there. Assertions read the DOM Chromium rendered.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from heliowatch.daemon.config import Config, load_config
from heliowatch.daemon.metrics import Metrics
from heliowatch.daemon.state import StateStore
from heliowatch.daemon.status import StatusInputs, StatusView
from heliowatch.daemon.statuspage import StatusServer
from heliowatch.daemon.wiring import sources
from heliowatch.models.core.figures import new_figure, png_bytes
from heliowatch.models.core.times import FixedClock, iso_utc, unix_from_iso
from heliowatch.models.flares.forecaster import FullDiskForecast, RegionForecast
from heliowatch.pipelines.gaps import cadence_of
from heliowatch.pipelines.ingest import FrameRecord
from heliowatch.pipelines.standin.archive import ReplayClock
from heliowatch.pipelines.store.outbox import OutboxEntry, OutboxStore
from heliowatch.pipelines.store.products import ProductStore
from tests.e2e.conftest import ROOT, need

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
SCHEMA = json.loads((ROOT / "docs" / "schemas" / "status.schema.json").read_text())
NOW = unix_from_iso("2024-05-10T12:00:00Z")
HOSTILE = "<script>document.title='pwned'</script>"


# -- fixtures: a daemon's stores in a given state ---------------------------------------------
def _png(path: Path) -> str:
    """A stand-in quicklook (a disk), written where a region record names it."""
    fig = new_figure((3, 3), dpi=80)
    ax = fig.subplots()
    y, x = np.mgrid[-1:1:200j, -1:1:200j]
    ax.imshow(np.where(x**2 + y**2 < 0.8, np.sin(8 * x) * np.cos(5 * y), np.nan), cmap="gray")
    ax.set_axis_off()
    path.write_bytes(png_bytes(fig))
    return str(path)


def _frames(state: StateStore, src: Any, last: float, n: int) -> None:
    """``n`` records of a source at its cadence, the newest at ``last``."""
    for k in reversed(range(n)):
        t = iso_utc(last - k * cadence_of(src), millis=True)
        rec = FrameRecord(
            series=src.series,
            record=f"{src.series}[{t}]" + (f"[{src.wavelength}]" if src.wavelength else ""),
            segment=src.segments[0],
            t_rec_utc=t,
            quality=0,
            path=f"/nonexistent/{src.name}/{t}.fits",
            size=1,
            sha256="0" * 64,
            wavelength=src.wavelength,
            latency_s=900.0,
        )
        state.record_frames([rec], hw_key=src.name)


def _forecast(issue: float, *, degraded: bool, p_m: float) -> FullDiskForecast:
    t = iso_utc(issue)
    method = "climatology" if degraded else "sharp+history"
    models = [{"name": "flare-region-climatology", "version": "0.1.0", "training": "real"}]
    regions = [
        RegionForecast(
            file="x.fits", harpnum=377, noaa_ar=11158, t_rec_utc=t, hgs_lat=-20.3, hgs_lon=23.1, p_c=0.95, p_m=p_m,
            p_x=round(p_m / 5, 4), degraded=degraded, method=method, missing=["GOES events"] if degraded else [],
            models=models, mtwilson="beta-gamma-delta",
        ),
        RegionForecast(
            file="y.fits", harpnum=7115, noaa_ar=None, t_rec_utc=t, hgs_lat=9.0, hgs_lon=-33.5, p_c=0.41, p_m=0.08,
            p_x=0.01, degraded=degraded, method=method, missing=[], models=models, mtwilson="",
        ),
    ]  # fmt: skip
    end = iso_utc(issue + 86400)
    return FullDiskForecast(
        issue_time=t, start_window=t, end_window=end, p_c=0.97, p_m=min(1.0, p_m + 0.1), p_x=0.15, p_limb_m=0.05,
        regions=regions, degraded=degraded, missing=["disk flare history (limb term at its training mean)"] if degraded else [],
        models=models,
    )  # fmt: skip


def build(
    tmp: Path,
    *,
    ages_s: dict[str, float],
    degraded: bool = False,
    jsoc: dict[str, int] | None = None,
    alert_error: str | None = None,
    clock: Any = None,
    last_by_kind: dict[str, float] | None = None,
    issue_times: list[float] | None = None,
    ql_time: float | None = None,
) -> tuple[StatusInputs, Metrics]:
    """A daemon's stores: records per source aged ``ages_s`` (by kind) before the clock, hourly
    forecasts over the last day, a quicklook, JSOC request outcomes and one alert."""
    cfg: Config = load_config(None, environ={})
    clock = clock or FixedClock(NOW)
    state = StateStore(f"sqlite:///{tmp / 'state.sqlite'}")
    store = ProductStore(state.engine)
    srcs = sources(cfg)
    for src in srcs:
        last = last_by_kind[src.kind] if last_by_kind else clock.now() - ages_s[src.kind]
        _frames(state, src, last, 6)
    issues = issue_times if issue_times is not None else [clock.now() - 3600 * h - 1800 for h in reversed(range(24))]
    for i, t in enumerate(issues):
        fd = _forecast(t, degraded=degraded and i == len(issues) - 1, p_m=round(0.3 + 0.3 * np.sin(i / 4) ** 2, 4))
        store.put("flare_forecast", fd.issue_time, fd.issue_time, asdict(fd))
    ql_t = iso_utc(ql_time if ql_time is not None else max(issues))
    store.put(
        "region", f"{ql_t}|1", ql_t, {"quicklook_png": _png(tmp / "ql.png"), "noaa_ar": 11158, "mtwilson": "beta-gamma-delta"}
    )
    metrics = Metrics()
    for outcome, n in (jsoc or {"ok": 40}).items():
        for _ in range(n):
            metrics.jsoc_request("rs_list", outcome)
    outbox = OutboxStore(state.engine)
    created = iso_utc(clock.now() - 600)
    outbox.enqueue(
        [
            OutboxEntry(
                dedup_key="flare:11158", kind="flare_region", subject=f"[heliowatch] NOAA 11158 P(>=M) 0.62 {HOSTILE}",
                text="t", html="h", attachments=[], message_id="<1@heliowatch>", region="NOAA 11158", status="pending",
                created_utc=created,
            )
        ]
    )  # fmt: skip
    for row in outbox.due(iso_utc(clock.now())):
        outbox.claim(row.delivery_id, attempts=row.attempts, next_attempt_utc=iso_utc(clock.now() + 300))
        if alert_error:
            outbox.failed(row.delivery_id, error=alert_error)
        else:
            outbox.sent(row.delivery_id, sent_utc=created)
    inputs = StatusInputs(
        cfg=cfg, clock=clock, state=state, store=store, sources=srcs, metrics=metrics, outbox=outbox,
        replay_clock=clock if isinstance(clock, ReplayClock) else None,
        source="replay" if isinstance(clock, ReplayClock) else "http://jsoc.stanford.edu/",
    )  # fmt: skip
    return inputs, metrics


@pytest.fixture
def serve() -> Iterator[Any]:
    """Serve a status view on a free loopback port; returns its base URL."""
    servers: list[tuple[StatusServer, StatusInputs]] = []

    def start(inputs: StatusInputs, metrics: Metrics, *, healthy: bool = True) -> str:
        view = StatusView(inputs, healthy=lambda: healthy, wall=FixedClock(unix_from_iso("2024-05-10T12:00:07Z")))
        srv = StatusServer(metrics.http_body, view.snapshot, host="127.0.0.1", port=0)
        servers.append((srv, inputs))
        return f"http://127.0.0.1:{srv.port}"

    yield start
    for srv, inputs in servers:
        srv.stop()
        inputs.state.close()


# -- the browser --------------------------------------------------------------------------------
def chromium_page(base: str, tmp: Path, name: str) -> str:
    """Screenshot the page (kept in ``tmp`` and ``$HELIOWATCH_SCREENSHOT_DIR``) and return its rendered DOM."""
    chromium = need("chromium")
    shot = tmp / f"status-{name}.png"
    profile = tmp / "profile"
    p = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", "--window-size=1600,1500", f"--screenshot={shot}", base + "/"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), p.stderr[-2000:]
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[:2] == (1500, 1600)
    assert float(np.std(img[..., :3])) > 0.05  # not blank: text, tables, the quicklook and the plot
    if os.environ.get("HELIOWATCH_SCREENSHOT_DIR"):
        out = Path(os.environ["HELIOWATCH_SCREENSHOT_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, out / shot.name)
    dom = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", base + "/"], capture_output=True, text=True, timeout=120
    )
    assert "<body" in dom.stdout, dom.stderr[-2000:]
    return dom.stdout


def badge(dom: str) -> tuple[str, str]:
    """(class state, visible text) of the badge."""
    m = re.search(r'<span id="badge" class="badge state-(\w+)">([^<]*)</span>', dom)
    assert m, dom[:3000]
    return m.group(1), m.group(2)


def text(dom: str, element_id: str | None = None) -> str:
    """The visible text of the page (or of the element with ``element_id``), whitespace collapsed."""
    if element_id is not None:
        m = re.search(rf'<(\w+) id="{element_id}"[^>]*>(.*?)</\1>', dom, re.S)
        assert m, f"no #{element_id}"
        dom = m.group(2)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())


def get(url: str) -> bytes:
    """The body of a GET (the connection closed; an HTTP error raised with its response closed)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as e:
        e.close()
        raise


def status_json(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/status.json", timeout=10) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        body = resp.read().decode()
    doc = json.loads(body, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c} in /status.json"))
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)
    return doc


ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|_TAI)?")


def one_time_format(dom: str) -> None:
    """Every time on the page is ISO 8601 UTC to the second with a Z."""
    times = [m.group(0) for m in ISO.finditer(text(dom))]
    assert times, "no time on the page"
    bad = [t for t in times if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t)]
    assert not bad, bad
    assert "_TAI" not in text(dom)


# -- the states ------------------------------------------------------------------------------------
def test_healthy_daemon_is_green_with_regions_plot_freshness_and_links(serve: Any, tmp_path: Path) -> None:
    base = serve(*build(tmp_path, ages_s={"magnetogram": 900, "sharp": 5400, "aia": 300}))
    dom = chromium_page(base, tmp_path, "healthy")
    assert badge(dom) == ("healthy", "healthy")
    assert "Every check passes" in text(dom, "reasons")
    assert 'id="epochs"' not in dom  # one epoch: no notice
    assert text(dom, "generated") == "2024-05-10T12:00:07Z"
    # The region table beside the image: NOAA, HARP, class, P(C/M/X), position, method.
    regions = text(dom, "regions")
    assert "11158 377 beta-gamma-delta 0.95" in regions
    assert "-20.3 +23.1 sharp+history" in regions
    assert "- 7115 - 0.41 0.08 0.01 +9.0 -33.5" in regions  # no NOAA number, no class yet
    assert "T_REC 2024-05-10T11:30:00Z" in text(dom, "ql-caption")
    # Per-series freshness and coverage.
    series = text(dom, "series")
    assert "hmi.M_720s_nrt 2024-05-10T11:45:00Z 15 min 120 min fresh" in series
    assert "aia.lev1_nrt2:304" in series and "STALE" not in series
    one_time_format(dom)
    # Links resolve, the plot and the quicklook are real pictures.
    hrefs = dict(re.findall(r'<a id="(link-\w+)" href="([^"]+)"', dom))
    assert "heliowatch_jsoc_requests_total" in get(base + hrefs["link-metrics"]).decode()
    doc = status_json(base + hrefs["link-json"].removesuffix("/status.json"))
    assert doc["state"] == "healthy" and doc["reasons"] == [] and len(doc["full_disk_24h"]) == 24
    for pic in ("/full-disk-24h.png", "/quicklook.png"):
        assert get(base + pic)[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'id="fd-plot"' in dom
    # Untrusted strings are escaped: an alert subject holding a script is text, not a script.
    assert HOSTILE in text(dom, "alerts")
    assert "<script>" not in dom and "pwned" not in re.search(r"<title>(.*?)</title>", dom).group(1)


def test_stale_series_turn_the_badge_red_and_name_each_series(serve: Any, tmp_path: Path) -> None:
    base = serve(*build(tmp_path, ages_s={"magnetogram": 6 * 3600, "sharp": 5400, "aia": 3 * 3600}))
    dom = chromium_page(base, tmp_path, "stale")
    assert badge(dom) == ("stale", "stale")
    reasons = text(dom, "reasons")
    assert "hmi.M_720s_nrt: newest record is 6.0 h old (limit 120 min)" in reasons
    assert "aia.lev1_nrt2:304: newest record is 3.0 h old (limit 60 min)" in reasons
    assert "hmi.sharp_cea_720s_nrt" not in reasons  # 90 min is within its 4 h
    assert re.search(r'<tr class="stale"><td>hmi.M_720s_nrt</td>', dom)
    assert "STALE" in text(dom, "series")
    doc = status_json(base)
    assert doc["state"] == "stale" and not doc["healthy"]
    assert {r["subject"] for r in doc["reasons"] if r["code"] == "data_stale"} == {"hmi.M_720s_nrt", "aia.lev1_nrt2:304"}
    one_time_format(dom)


def test_jsoc_errors_degraded_forecast_and_failing_alerts_show_degraded(serve: Any, tmp_path: Path) -> None:
    inputs, metrics = build(
        tmp_path,
        ages_s={"magnetogram": 900, "sharp": 5400, "aia": 300},
        degraded=True,
        jsoc={"ok": 2, "http_5xx": 5, "timeout": 3},
        alert_error="SMTP 451 try again later",
    )
    base = serve(inputs, metrics)
    dom = chromium_page(base, tmp_path, "degraded")
    assert badge(dom) == ("degraded", "degraded")
    reasons = text(dom, "reasons")
    assert "JSOC: 8 of 10 requests failed in the last 15 min (http_5xx 5, timeout 3)" in reasons
    assert "is degraded: missing disk flare history" in reasons
    assert "alert delivery failing: 1 of the last alerts not delivered (last error: SMTP 451 try again later)" in reasons
    assert "climatology (degraded)" in text(dom, "regions")
    doc = status_json(base)
    assert doc["state"] == "degraded"
    assert {r["code"] for r in doc["reasons"]} == {"jsoc_errors", "product_degraded", "alert_delivery"}
    # The JSOC window moves on: the same counters a window later are no longer an incident.
    view = StatusView(inputs, healthy=lambda: True)
    view.snapshot()
    view.jsoc.window_s = 0.0
    assert "jsoc_errors" not in {r["code"] for r in view.snapshot()["reasons"]}


def test_stopped_scheduler_is_down(serve: Any, tmp_path: Path) -> None:
    base = serve(*build(tmp_path, ages_s={"magnetogram": 900, "sharp": 5400, "aia": 300}), healthy=False)
    doc = status_json(base)
    assert doc["state"] == "down" and doc["reasons"][0]["code"] == "scheduler"


def test_replay_of_old_data_is_aged_on_the_replay_clock_and_says_epochs_are_mixed(serve: Any, tmp_path: Path) -> None:
    mag = unix_from_iso("2011-02-15T02:00:00Z")
    sharp = unix_from_iso("2017-09-06T12:00:00Z")
    clock = ReplayClock([mag - 3600, mag, sharp], speed=60.0, max_gap_s=1200.0)
    clock.freeze_at(sharp + 600)
    last = {"magnetogram": mag, "aia": mag - 60, "sharp": sharp}
    base = serve(*build(tmp_path, ages_s={}, clock=clock, last_by_kind=last, issue_times=[sharp - 3600, sharp], ql_time=mag))
    dom = chromium_page(base, tmp_path, "replay-mixed-epochs")
    # Six years of archive time are one compressed gap of the replay: fresh, not stale.
    assert badge(dom)[0] == "healthy", text(dom, "reasons")
    assert "hmi.M_720s_nrt 2011-02-15T02:00:00Z 30 min" in text(dom, "series")
    notice = text(dom, "epochs")
    assert "Mixed observation epochs" in notice
    assert "hmi.M_720s_nrt newest record: 2011-02-15T02:00:00Z" in notice
    assert "magnetogram shown: 2011-02-15T02:00:00Z" in notice and "flare forecast shown: 2017-09-06T12:00:00Z" in notice
    assert "replay: archive time" in text(dom)
    doc = status_json(base)
    assert doc["replay"] and doc["epochs"]["mixed"]
    one_time_format(dom)


def test_no_forecast_means_no_plot(serve: Any, tmp_path: Path) -> None:
    base = serve(*build(tmp_path, ages_s={"magnetogram": 900, "sharp": 5400, "aia": 300}, issue_times=[NOW - 3 * 86400]))
    with pytest.raises(urllib.error.HTTPError) as e:
        get(base + "/full-disk-24h.png")
    assert e.value.code == 404
    page = get(base + "/").decode()
    assert "fd-plot" not in page and "no forecast issued in the last 24 h" in page
    assert status_json(base)["full_disk_24h"] == []


# -- a live demo daemon -------------------------------------------------------------------------------
def test_status_page_of_a_live_demo_daemon(live_daemon: dict, tmp_path: Path) -> None:
    base = live_daemon["base"]
    dom = chromium_page(base, tmp_path, "live-demo")
    state, shown = badge(dom)
    assert state == shown and state in ("healthy", "stale", "degraded")
    doc = status_json(base)
    assert doc["state"] == state
    if state != "healthy":
        assert doc["reasons"], "a badge that is not green says why"
    assert "12673" in text(dom, "regions") or "11158" in text(dom, "regions")  # the demo's regions
    assert "hmi.sharp_cea_720s_nrt" in text(dom, "series")
    assert "[heliowatch]" in text(dom, "alerts")
    assert "_TAI" not in text(dom)
    png = get(base + "/quicklook.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_endpoint_is_on_loopback_only(live_daemon: dict) -> None:
    assert live_daemon["base"].startswith("http://127.0.0.1:")


def test_the_schema_is_a_valid_2020_12_schema_with_a_version() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["properties"]["schema_version"]["const"] == 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema_version": 1, "state": "green"}, SCHEMA)
