"""The HTTP endpoint: ``/metrics`` (Prometheus) and a small read-only status page.

Routes: ``/metrics``, ``/`` (HTML: latest quicklook, region table, full-disk forecast, data
health, last alerts; refreshes itself every minute), ``/status.json`` (the same as JSON) and
``/quicklook.png``. Bound to 127.0.0.1 unless configured. Nothing here writes anything.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["StatusServer", "render_page"]


def _fmt(v: Any, spec: str = ".2f") -> str:
    if v is None:
        return "-"
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return html.escape(str(v))


def render_page(s: dict[str, Any]) -> str:
    """The status page HTML from a status dict (see :class:`heliowatch.daemon.status.StatusView`)."""

    def region_row(r: dict[str, Any]) -> str:
        harp = _fmt(r.get("harpnum"), "d") if r.get("harpnum") else "-"
        noaa = _fmt(r.get("noaa_ar"), "d") if r.get("noaa_ar") else "-"
        probs = f"<td>{_fmt(r.get('p_c'))}</td><td class='m'>{_fmt(r.get('p_m'))}</td><td>{_fmt(r.get('p_x'))}</td>"
        pos = f"{_fmt(r.get('hgs_lat'), '+.0f')} / {_fmt(r.get('hgs_lon'), '+.0f')}"
        method = html.escape(str(r.get("method", ""))) + (" (degraded)" if r.get("degraded") else "")
        cls = _fmt(r.get("mtwilson", "-"), "")
        return f"<tr><td>{harp}</td><td>{noaa}</td><td>{cls}</td>{probs}<td>{pos}</td><td>{method}</td></tr>"

    rows = "".join(region_row(r) for r in s.get("regions", [])) or "<tr><td colspan=8>no region forecast yet</td></tr>"
    fd = s.get("full_disk") or {}
    health = (
        "".join(
            f"<tr><td>{html.escape(h['series'])}</td><td>{html.escape(str(h.get('last_record_utc') or '-'))}</td>"
            f"<td>{_fmt(h.get('latency_s'), '.0f')}</td><td>{h.get('records', 0)}</td><td>{h.get('rejected', 0)}</td>"
            f"<td>{_fmt(100 * h['coverage_24h'], '.1f') + ' %' if h.get('coverage_24h') is not None else '-'}</td></tr>"
            for h in s.get("health", [])
        )
        or "<tr><td colspan=6>no data yet</td></tr>"
    )
    alerts = (
        "".join(
            f"<tr><td>{html.escape(a['created_utc'])}</td><td>{html.escape(a['kind'])}</td><td>{html.escape(a['subject'])}</td>"
            f"<td>{html.escape(a['status'])}</td></tr>"
            for a in s.get("alerts", [])
        )
        or "<tr><td colspan=4>no alerts</td></tr>"
    )
    jets = _jets_html(s.get("jets"))
    emergence = _emergence_html(s.get("emergence"))
    up = s.get("healthy")
    badge = "<span class='ok'>healthy</span>" if up else "<span class='bad'>NOT healthy</span>"
    img = "<img src='/quicklook.png' alt='latest magnetogram quicklook'>" if s.get("quicklook") else "<p>no quicklook yet</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="60">
<title>heliowatch status</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222 }}
h1 {{ font-size: 1.4em }} h2 {{ font-size: 1.1em; margin-top: 1.4em }}
table {{ border-collapse: collapse; background: white }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; font-size: 0.9em }}
th {{ background: #eee }} td.m {{ font-weight: bold }} .ok {{ color: #060 }} .bad {{ color: #b00; font-weight: bold }}
.cols {{ display: flex; gap: 2em; flex-wrap: wrap }} img {{ max-width: 560px; border: 1px solid #ccc }}
.fd {{ font-size: 1.2em }}
</style></head><body>
<h1>heliowatch {html.escape(str(s.get("version", "")))} &mdash; {badge}</h1>
<p>source: {html.escape(str(s.get("source", "")))}; last forecast issue: {html.escape(str(fd.get("issue_time", "-")))}</p>
<div class="cols"><div>
<h2>Full disk, next 24 h</h2>
<p class="fd">P(&ge;C) {_fmt(fd.get("p_c"))} &nbsp; P(&ge;M) <b>{_fmt(fd.get("p_m"))}</b> &nbsp; P(&ge;X) {_fmt(fd.get("p_x"))}
{" (degraded)" if fd.get("degraded") else ""}</p>
<h2>Regions</h2>
<table><tr><th>HARP</th><th>NOAA</th><th>class</th><th>P(&ge;C)</th><th>P(&ge;M)</th><th>P(&ge;X)</th>
<th>lat / lon</th><th>method</th></tr>
{rows}</table>
<h2>Data health</h2>
<table><tr><th>series</th><th>newest record (UTC)</th><th>latency s</th><th>records</th><th>rejected</th>
<th>coverage 24 h</th></tr>{health}</table>
{jets}
{emergence}
<h2>Last alerts</h2>
<table><tr><th>raised (UTC)</th><th>kind</th><th>subject</th><th>status</th></tr>{alerts}</table>
</div><div><h2>Latest magnetogram</h2>{img}</div></div>
</body></html>"""


def _jets_html(j: dict[str, Any] | None) -> str:
    """The coronal-jet panel (or nothing when the product is off)."""
    if not j:
        return ""
    rows = (
        "".join(
            f"<tr><td>{html.escape(str(e.get('peak_utc') or '-'))}</td>"
            f"<td>{_fmt((e.get('position') or [None])[0], '+.0f')}, {_fmt((e.get('position') or [None, None])[1], '+.0f')}</td>"
            f"<td>{_fmt(e.get('probability'))}</td><td>{html.escape('+'.join(e.get('detectors') or []))}</td></tr>"
            for e in j.get("recent", [])
        )
        or "<tr><td colspan=4>no jet yet</td></tr>"
    )
    rejected = ", ".join(f"{html.escape(str(k))} {v}" for k, v in sorted((j.get("rejected") or {}).items())) or "none"
    note = " (network trained on synthetic data)" if j.get("synthetic_model") else ""
    return (
        f"<h2>Coronal jets (AIA 304 &#8491;)</h2>"
        f"<p>newest frame {html.escape(str(j.get('frame_time_utc') or '-'))}; {j.get('frames', 0)} frames; "
        f"{_fmt(j.get('events_per_hour_24h'))} events/h (24 h); {_fmt(j.get('seconds_per_frame'))} s per frame; "
        f"detectors: {html.escape(', '.join(j.get('detectors') or []))}{note}; refused: {rejected}"
        f"{'; calibration degraded' if j.get('degraded') else ''}</p>"
        f"<table><tr><th>peak (UTC)</th><th>base (arcsec)</th><th>P</th><th>detectors</th></tr>{rows}</table>"
    )


def _emergence_html(e: dict[str, Any] | None) -> str:
    """The flux-emergence panel (or nothing when the product is off)."""
    if not e:
        return ""
    rows = (
        "".join(
            f"<tr><td>{html.escape(str(w.get('t_mid_utc') or '-'))}</td><td>{html.escape(str(w.get('position') or '-'))}</td>"
            f"<td>{_fmt(w.get('probability'))}</td><td>{html.escape(str(w.get('method') or '-'))}</td>"
            f"<td>{html.escape(str(w.get('lead_time_class') or '-'))}</td></tr>"
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
        f"<p>newest magnetogram {html.escape(str(e.get('frame_time_utc') or '-'))}; {e.get('patches', 0)} patches"
        f" ({e.get('skipped', 0)} skipped); {e.get('windows_scored', 0)} windows scored; method"
        f" {html.escape(str(e.get('method')))} at {_fmt(e.get('threshold'))}{note};"
        f" highest P {_fmt(e.get('max_probability'))}</p>"
        f"<p>live verification (30 days): {v.get('settled', 0)} settled, {v.get('pending', 0)} pending; hit rate {hit};"
        f" false alarms/day {_fmt(v.get('false_alarms_per_day'))}; median lead {_fmt(v.get('median_lead_h'), '.1f')} h</p>"
        f"<table><tr><th>window mid (UTC)</th><th>position</th><th>P</th><th>method</th><th>lead time</th></tr>{rows}</table>"
        f"{img}"
    )


#: The pictures the page serves: path -> (what it is, where the status names the file).
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
        Returns the status dict (evaluated per request).
    host, port : str, int
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
                    self._send(200, json.dumps(status(), default=str, indent=1).encode(), "application/json")
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
