"""The HTTP endpoint: ``/metrics`` (Prometheus) and a small read-only status page.

Routes: ``/metrics``, ``/`` (HTML: the badge and its reasons, page generation time, per-series
freshness and coverage, the latest quicklook beside the region table, the full-disk forecast
and its last 24 h as a plot, jets, emergence, last alerts; refreshes itself every minute),
``/status.json`` (the same document as JSON, ``docs/schemas/status.schema.json``),
``/quicklook.png``, ``/emergence.png`` and ``/full-disk-24h.png``. Bound to 127.0.0.1 unless
configured. Nothing here writes anything. Every string from the data is escaped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from heliowatch.daemon.status_plot import FullDiskPlot
from heliowatch.daemon.status_rules import duration
from heliowatch.models.core import jsonio

__all__ = ["StatusServer", "render_page"]


def _e(v: Any) -> str:
    """A value for the page, escaped (``-`` for none)."""
    return "-" if v is None or v == "" else escape(str(v))


def _fmt(v: Any, spec: str = ".2f") -> str:
    if v is None:
        return "-"
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return escape(str(v))


def _age(s: float | None) -> str:
    return "-" if s is None else duration(float(s))


def _time(t: Any) -> str:
    return f"<time>{escape(str(t))}</time>" if t else "-"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222 }
h1 { font-size: 1.4em } h2 { font-size: 1.1em; margin-top: 1.4em }
table { border-collapse: collapse; background: white } td, th { border: 1px solid #ccc; padding: 4px 8px; font-size: 0.9em }
th { background: #eee } td.m { font-weight: bold }
.badge { padding: 2px 10px; border-radius: 4px; color: white; font-weight: bold }
.badge.state-healthy { background: #1a7f37 } .badge.state-degraded { background: #b35900 }
.badge.state-stale { background: #b00020 } .badge.state-down { background: #444 }
li.state-degraded { color: #8a4500 } li.state-stale { color: #b00020 } li.state-down { color: #222; font-weight: bold }
tr.stale td { background: #fde7e9 } .meta { color: #555 }
.notice { background: #fff4ce; border: 1px solid #e0c36c; padding: 6px 10px }
.cols { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start } img.ql { max-width: 520px; border: 1px solid #ccc }
figure { margin: 0; max-width: 520px } figcaption { font-size: 0.85em; color: #444 } .fd { font-size: 1.2em }
"""


def render_page(s: dict[str, Any]) -> str:
    """The status page HTML from a status document (:meth:`heliowatch.daemon.status.StatusView.snapshot`)."""
    state = str(s.get("state") or "down")
    cls = escape(state)
    reasons = "".join(
        f"<li class='reason state-{_e(r.get('state'))}' data-code='{_e(r.get('code'))}'>{_e(r.get('message'))}</li>"
        for r in s.get("reasons") or []
    )
    reasons_html = (
        f"<ul id='reasons'>{reasons}</ul>"
        if reasons
        else "<p id='reasons'>Every check passes: data fresh, JSOC answering, no degraded product, alerts delivered.</p>"
    )
    notes = "".join(f"<li>{_e(n.get('message'))}</li>" for n in s.get("notes") or [])
    fd = s.get("full_disk") or {}
    links = s.get("links") or {}
    replay = " (replay: archive time, gaps compressed)" if s.get("replay") else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="60">
<title>heliowatch status: {cls}</title>
<style>{_STYLE}</style></head><body>
<h1>heliowatch {_e(s.get("version"))} <span id="badge" class="badge state-{cls}">{cls}</span></h1>
<p class="meta">page generated <time id="generated">{_e(s.get("generated_utc"))}</time>;
daemon clock <time id="clock">{_e(s.get("clock_utc"))}</time>{replay}; source: {_e(s.get("source"))};
<a id="link-metrics" href="{_e(links.get("metrics", "/metrics"))}">/metrics</a> &middot;
<a id="link-json" href="{_e(links.get("status_json", "/status.json"))}">/status.json</a></p>
{reasons_html}
{f"<ul id='notes' class='meta'>{notes}</ul>" if notes else ""}
{_epochs_html(s.get("epochs"))}
<div class="cols"><div>
<h2>Latest magnetogram</h2>{_quicklook_html(s)}
</div><div>
<h2>Regions (forecast {_time(fd.get("issue_time"))})</h2>{_regions_html(s.get("regions") or [])}
</div></div>
<h2>Full disk, next 24 h</h2>
{_full_disk_html(fd, s.get("full_disk_24h") or [])}
<h2>Data freshness</h2>
{_series_html(s.get("series") or [])}
{_jsoc_html(s.get("jsoc"))}
{_jets_html(s.get("jets"))}
{_emergence_html(s.get("emergence"))}
<h2>Last alerts</h2>
{_alerts_html(s.get("alerts") or [])}
</body></html>"""


def _epochs_html(ep: dict[str, Any] | None) -> str:
    if not ep or not ep.get("mixed"):
        return ""
    items = "".join(f"<li>{_e(o.get('what'))}: {_time(o.get('time_utc'))}</li>" for o in ep.get("observed") or [])
    return (
        f"<div id='epochs' class='notice'><b>Mixed observation epochs.</b> The data on this page span "
        f"{_age(3600 * float(ep.get('span_hours') or 0))} of observation time (a replay archive can mix years): "
        f"products shown side by side were not observed together.<ul>{items}</ul></div>"
    )


def _quicklook_html(s: dict[str, Any]) -> str:
    if not s.get("quicklook"):
        return "<p>no quicklook yet</p>"
    t = s.get("quicklook_time_utc")
    return (
        "<figure><img class='ql' src='/quicklook.png' alt='latest magnetogram quicklook'>"
        f"<figcaption id='ql-caption'>HMI line-of-sight magnetogram, T_REC {_time(t)} (north up; boxes: detected regions)"
        "</figcaption></figure>"
    )


def _regions_html(regions: list[dict[str, Any]]) -> str:
    def row(r: dict[str, Any]) -> str:
        harp = _fmt(r.get("harpnum"), "d") if r.get("harpnum") else "-"
        noaa = _fmt(r.get("noaa_ar"), "d") if r.get("noaa_ar") else "-"
        probs = f"<td>{_fmt(r.get('p_c'))}</td><td class='m'>{_fmt(r.get('p_m'))}</td><td>{_fmt(r.get('p_x'))}</td>"
        pos = f"<td>{_fmt(r.get('hgs_lat'), '+.1f')}</td><td>{_fmt(r.get('hgs_lon'), '+.1f')}</td>"
        method = _e(r.get("method")) + (" (degraded)" if r.get("degraded") else "")
        return f"<tr><td>{noaa}</td><td>{harp}</td><td>{_e(r.get('mtwilson'))}</td>{probs}{pos}<td>{method}</td></tr>"

    rows = "".join(row(r) for r in regions) or "<tr><td colspan=9>no region forecast yet</td></tr>"
    return (
        "<table id='regions'><tr><th>NOAA</th><th>HARP</th><th>Mt. Wilson class</th><th>P(&ge;C)</th><th>P(&ge;M)</th>"
        "<th>P(&ge;X)</th><th>lat (HGS &deg;)</th><th>lon (HGS &deg;)</th><th>method</th></tr>"
        f"{rows}</table>"
    )


def _full_disk_html(fd: dict[str, Any], history: list[dict[str, Any]]) -> str:
    if not fd:
        return "<p>no forecast issued yet</p>"
    window = f"window {_time(fd.get('start_window'))} to {_time(fd.get('end_window'))}"
    plot = (
        "<p><img id='fd-plot' src='/full-disk-24h.png' alt='full-disk probability, last 24 h'></p>"
        if history
        else "<p>no forecast issued in the last 24 h of the daemon's clock: no plot</p>"
    )
    return (
        f"<p class='fd'>P(&ge;C) {_fmt(fd.get('p_c'))} &nbsp; P(&ge;M) <b>{_fmt(fd.get('p_m'))}</b> &nbsp; "
        f"P(&ge;X) {_fmt(fd.get('p_x'))}{' (degraded)' if fd.get('degraded') else ''}</p>"
        f"<p>issued {_time(fd.get('issue_time'))}, {window}; {len(history)} issues in the last 24 h</p>{plot}"
    )


def _series_html(series: list[dict[str, Any]]) -> str:
    def row(h: dict[str, Any]) -> str:
        cov = _fmt(100 * h["coverage_24h"], ".1f") + " %" if h.get("coverage_24h") is not None else "-"
        if h.get("stale_after_s") is None:
            verdict = "not checked"
        else:
            verdict = "STALE" if h.get("stale") else "fresh"
        return (
            f"<tr class='{'stale' if h.get('stale') else 'fresh'}'><td>{_e(h.get('name'))}</td>"
            f"<td>{_time(h.get('last_record_utc'))}</td><td>{_age(h.get('age_s'))}</td><td>{_age(h.get('stale_after_s'))}</td>"
            f"<td>{verdict}</td><td>{_fmt(h.get('latency_s'), '.0f')}</td><td>{_e(h.get('records', 0))}</td>"
            f"<td>{_e(h.get('rejected', 0))}</td><td>{cov}</td></tr>"
        )

    rows = "".join(row(h) for h in series) or "<tr><td colspan=9>no series configured</td></tr>"
    return (
        "<table id='series'><tr><th>series</th><th>newest record (T_REC)</th><th>age</th><th>stale after</th><th>state</th>"
        f"<th>latency s</th><th>records</th><th>rejected</th><th>coverage 24 h</th></tr>{rows}</table>"
    )


def _jsoc_html(j: dict[str, Any] | None) -> str:
    if not j:
        return ""
    outcomes = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted((j.get("by_outcome") or {}).items())) or "none"
    return (
        f"<p id='jsoc'>JSOC requests in the last {_age(j.get('window_s'))}: {_e(j.get('requests', 0))}, "
        f"{_e(j.get('errors', 0))} failed ({outcomes})</p>"
    )


def _alerts_html(alerts: list[dict[str, Any]]) -> str:
    rows = (
        "".join(
            f"<tr><td>{_time(a.get('created_utc'))}</td><td>{_e(a.get('kind'))}</td><td>{_e(a.get('subject'))}</td>"
            f"<td>{_e(a.get('status'))}</td></tr>"
            for a in alerts
        )
        or "<tr><td colspan=4>no alerts</td></tr>"
    )
    return f"<table id='alerts'><tr><th>raised</th><th>kind</th><th>subject</th><th>status</th></tr>{rows}</table>"


def _jets_html(j: dict[str, Any] | None) -> str:
    """The coronal-jet panel (or nothing when the product is off)."""
    if not j:
        return ""
    rows = (
        "".join(
            f"<tr><td>{_time(e.get('peak_utc'))}</td>"
            f"<td>{_fmt((e.get('position') or [None])[0], '+.0f')}, {_fmt((e.get('position') or [None, None])[1], '+.0f')}</td>"
            f"<td>{_fmt(e.get('probability'))}</td><td>{escape('+'.join(map(str, e.get('detectors') or [])))}</td></tr>"
            for e in j.get("recent", [])
        )
        or "<tr><td colspan=4>no jet yet</td></tr>"
    )
    rejected = ", ".join(f"{escape(str(k))} {_e(v)}" for k, v in sorted((j.get("rejected") or {}).items())) or "none"
    note = " (network trained on synthetic data)" if j.get("synthetic_model") else ""
    degraded = "; calibration degraded: " + escape(", ".join(map(str, j["degraded"]))) if j.get("degraded") else ""
    return (
        f"<h2>Coronal jets (AIA 304 &#8491;)</h2>"
        f"<p>newest frame {_time(j.get('frame_time_utc'))}; {_e(j.get('frames', 0))} frames; "
        f"{_fmt(j.get('events_per_hour_24h'))} events/h (24 h); {_fmt(j.get('seconds_per_frame'))} s per frame; "
        f"detectors: {escape(', '.join(map(str, j.get('detectors') or [])))}{note}; refused: {rejected}{degraded}</p>"
        f"<table><tr><th>peak</th><th>base (arcsec)</th><th>P</th><th>detectors</th></tr>{rows}</table>"
    )


def _emergence_html(e: dict[str, Any] | None) -> str:
    """The flux-emergence panel (or nothing when the product is off)."""
    if not e:
        return ""
    rows = (
        "".join(
            f"<tr><td>{_time(w.get('t_mid_utc'))}</td><td>{_e(w.get('position'))}</td>"
            f"<td>{_fmt(w.get('probability'))}</td><td>{_e(w.get('method'))}</td>"
            f"<td>{_e(w.get('lead_time_class'))}</td></tr>"
            for w in e.get("recent", [])
        )
        or "<tr><td colspan=5>no warning yet</td></tr>"
    )
    v = e.get("verification") or {}
    hit = _fmt(100 * v["hit_rate"], ".0f") + " %" if v.get("hit_rate") is not None else "-"
    note = " (classifiers trained on synthetic data)" if e.get("synthetic_model") else ""
    img = "<p><img src='/emergence.png' alt='latest emergence probability map'></p>" if e.get("map_png") else ""
    return (
        f"<h2>Flux emergence (HMI)</h2>"
        f"<p>newest magnetogram {_time(e.get('frame_time_utc'))}; {_e(e.get('patches', 0))} patches"
        f" ({_e(e.get('skipped', 0))} skipped); {_e(e.get('windows_scored', 0))} windows scored; method"
        f" {_e(e.get('method'))} at {_fmt(e.get('threshold'))}{note};"
        f" highest P {_fmt(e.get('max_probability'))}</p>"
        f"<p>live verification (30 days): {_e(v.get('settled', 0))} settled, {_e(v.get('pending', 0))} pending; hit rate {hit};"
        f" false alarms/day {_fmt(v.get('false_alarms_per_day'))}; median lead {_fmt(v.get('median_lead_h'), '.1f')} h</p>"
        f"<table><tr><th>window mid</th><th>position</th><th>P</th><th>method</th><th>lead time</th></tr>{rows}</table>"
        f"{img}"
    )


#: The pictures the page serves from files: path -> (what it is, where the status names the file).
_IMAGES: dict[str, tuple[str, Callable[[dict[str, Any]], Any]]] = {
    "/quicklook.png": ("quicklook", lambda s: s.get("quicklook")),
    "/emergence.png": ("emergence map", lambda s: (s.get("emergence") or {}).get("map_png")),
}


class StatusServer:
    """``/metrics`` + the status page, in a background thread.

    Parameters
    ----------
    metrics : callable
        Returns ``(body, content type)`` of ``/metrics`` (evaluated per request).
    status : callable
        Returns the status document (evaluated per request).
    host, port : str, int
    page : bool
        Serve the page, ``/status.json`` and the pictures (else only ``/metrics``).
    """

    def __init__(
        self,
        metrics: Callable[[], tuple[bytes, str]],
        status: Callable[[], dict[str, Any]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        page: bool = True,
    ) -> None:
        server = self
        plot = FullDiskPlot()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self._send(200, *metrics())
                elif not server.page:
                    self._send(404, b"not found\n", "text/plain")
                elif path in ("/", "/index.html"):
                    self._send(200, render_page(status()).encode(), "text/html; charset=utf-8")
                elif path == "/status.json":
                    self._send(200, (jsonio.dumps(status(), indent=1) + "\n").encode(), "application/json")
                elif path == "/full-disk-24h.png":
                    s = status()
                    if s.get("full_disk_24h"):
                        self._send(200, plot.png(s["full_disk_24h"], end_utc=str(s["clock_utc"])), "image/png")
                    else:
                        self._send(404, b"no full-disk forecast in the last 24 h\n", "text/plain")
                elif path in _IMAGES:
                    what, pick = _IMAGES[path]
                    q = pick(status())
                    if q and Path(q).exists():
                        self._send(200, Path(q).read_bytes(), "image/png")
                    else:
                        self._send(404, f"no {what} yet\n".encode(), "text/plain")
                else:
                    self._send(404, b"not found\n", "text/plain")

        self.page = page
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="status-http", daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()
