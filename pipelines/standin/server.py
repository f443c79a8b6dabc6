"""The JSOC stand-in: an HTTP server on loopback that the unmodified ``drms`` client talks to.

It implements the CGI calls drms makes (stack-notes A1.3) with JSOC's JSON shapes:
``checkAddress.sh``, ``show_series``, ``jsoc_info`` (``series_struct``, ``rs_list``,
``rs_summary``), ``jsoc_fetch`` (``exp_request``, ``exp_status``) and file downloads from
SUMS-like paths (``url_quick``/``as-is``) and export directories (``url``/``fits``).
Keyword values are strings, missing values are ``MISSING``, unknown keywords
``Invalid KeyLink``, unknown segments ``InvalidSegName``; errors are
``{"status": 1, "error": ...}``, and so is every malformed request (a bad record set, a
non-integer ``n``, a filter the stand-in cannot match, an unexpected failure): the stand-in never
drops a connection with a traceback, and never compiles a client's text as a regular expression
(:mod:`~heliowatch.pipelines.standin.series_filter`). Only one asynchronous export may be pending per requester
(JSOC's status 7). With a :class:`ReplayClock`, records appear as the clock passes them and
their ``DATE`` keyword (processing time, the latency measure) is their appearance time.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import numpy as np
from astropy.io import fits

from heliowatch.pipelines.standin.archive import SERIES_PRIMEKEYS, TIME_KEYS, Archive, ArchiveRecord, ReplayClock
from heliowatch.pipelines.standin.faults import FaultSpec
from heliowatch.pipelines.standin.recordset import RecordSetError, parse_recordset
from heliowatch.pipelines.standin.series_filter import FilterError, compile_filter

__all__ = ["StandinServer"]

CGI = "/cgi-bin/ajax/"


@dataclass
class _Export:
    requestid: str
    requester: str
    files: list[tuple[str, str, Path]]  # (record{seg}, filename, path)
    method: str
    protocol: str
    ready_at: float
    done: bool = False


@dataclass
class _State:
    exports: dict[str, _Export] = field(default_factory=dict)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0


def _fmt_value(key: str, v: Any) -> str:
    if v is None:
        return "MISSING"
    if key == "QUALITY" and isinstance(v, int | float) and not isinstance(v, bool):
        return f"0x{int(v) & 0xFFFFFFFF:08x}"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return str(v).strip()


def _kw_type(key: str, v: Any) -> str:
    if key in TIME_KEYS:
        return "time"
    if isinstance(v, bool | int):
        return "int"
    if isinstance(v, float):
        return "double"
    return "string"


class StandinServer:
    """A running stand-in.

    Parameters
    ----------
    archive : Archive
        What to serve.
    faults : FaultSpec, optional
        Injected faults.
    clock : ReplayClock, optional
        Time warp; without it every record is visible and ``DATE`` comes from the header.
    host, port : str, int
        Bind address (loopback by default; port 0 picks a free one).
    export_delay_s : float
        How long an asynchronous export stays pending.
    """

    def __init__(
        self,
        archive: Archive,
        *,
        faults: FaultSpec | None = None,
        clock: ReplayClock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        export_delay_s: float = 0.3,
    ) -> None:
        self.archive = archive
        self.faults = faults or FaultSpec()
        self.clock = clock
        self.export_delay_s = export_delay_s
        # Cutouts made by im_patch exports (a temporary directory, removed by stop()).
        self._cutouts = tempfile.TemporaryDirectory(prefix="jsoc-standin-cutouts-")
        self.cutout_dir = Path(self._cutouts.name)
        self.state = _State()
        handler = type("Handler", (_Handler,), {"standin": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8111/``."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> StandinServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="jsoc-standin", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (the CLI)."""
        self.httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving, close the socket and remove the cutouts made."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._cutouts.cleanup()

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers used by the handler -------------------------------------------------------
    def now(self) -> float | None:
        """Archive time now, or None when there is no replay clock (all visible)."""
        return None if self.clock is None else self.clock.now()

    def keyword(self, rec: ArchiveRecord, key: str) -> str:
        """One keyword value as JSOC prints it."""
        k = key.upper()
        if k == "*RECNUM*":
            return str(rec.recnum)
        if k == "*SUNUM*":
            return str(rec.recnum + 100000)
        if k == "*SIZE*":
            return str(sum(p.stat().st_size for p in rec.segments.values()))
        if k == "*ONLINE*":
            return "Y"
        if k == "DATE" and self.clock is not None:
            t = dt.datetime.fromtimestamp(self.archive.visible_at(rec), dt.UTC)
            return t.strftime("%Y-%m-%dT%H:%M:%SZ")
        if k not in rec.keywords:
            return "Invalid KeyLink"
        return _fmt_value(k, rec.keywords[k])

    def all_keywords(self, series: str) -> list[str]:
        """Keyword names of a series, primekeys first."""
        recs = self.archive.records.get(series, [])
        names: dict[str, None] = {}
        base = next((b for b, al in self.archive.serve_as.items() if series in al), series)
        for k in SERIES_PRIMEKEYS.get(base, []):
            names[k] = None
        for r in recs:
            for k in r.keywords:
                names.setdefault(k, None)
        return list(names)


class _Handler(BaseHTTPRequestHandler):
    standin: StandinServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # the daemon logs its own requests; stderr noise helps nobody

    # -- plumbing ---------------------------------------------------------------------------
    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: dict[str, Any]) -> None:
        self._send(200, json.dumps(obj).encode("latin1", errors="replace"))

    def _error(self, msg: str, status: int = 1) -> None:
        self._json({"status": status, "error": msg})

    def _fault(self, kind: str | None) -> bool:
        if kind == "5xx":
            self._send(503, b"Service Temporarily Unavailable", "text/plain")
            return True
        if kind == "timeout":
            time.sleep(self.standin.faults.hang_s)
            self.close_connection = True
            return True
        return False

    def do_GET(self) -> None:
        s = self.standin
        with s.state.lock:
            s.state.requests += 1
        if s.faults.latency:
            time.sleep(s.faults.latency)
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = parts.path
        try:
            if path.startswith(CGI):
                if self._fault(s.faults.request_fault()):
                    return
                cgi = path[len(CGI) :]
                handler = {
                    "checkAddress.sh": self._check_address,
                    "show_series": self._show_series,
                    "jsoc_info": self._jsoc_info,
                    "jsoc_fetch": self._jsoc_fetch,
                }.get(cgi)
                if handler is None:
                    self._send(404, b"Not Found", "text/plain")
                    return
                handler(q)
            else:
                self._download(path)
        except (BrokenPipeError, ConnectionResetError):
            return
        except (RecordSetError, FilterError) as e:
            self._error(str(e))
        # Whatever else a malformed request trips over is still answered as the JSOC answers an
        # error, not with a dropped connection and a traceback on the server's stderr.
        except Exception as e:
            try:
                self._error(f"{self.path.split('?')[0]}: cannot process the request ({type(e).__name__}: {str(e)[:200]})")
            except OSError:
                return

    # -- CGIs -------------------------------------------------------------------------------
    def _check_address(self, q: dict[str, str]) -> None:
        addr = unquote_plus(q.get("address", ""))
        if "@" not in addr or "." not in addr.split("@")[-1]:
            self._json({"status": -2, "msg": "Invalid email address"})
        else:
            self._json({"status": 2, "msg": "Email address is registered"})

    def _show_series(self, q: dict[str, str]) -> None:
        matches = compile_filter(q.get("filter", ""))
        names = []
        for name in self.standin.archive.series_names():
            if not matches(name):
                continue
            base = next((b for b, al in self.standin.archive.serve_as.items() if name in al), name)
            names.append({"name": name, "primekeys": ",".join(SERIES_PRIMEKEYS.get(base, [])), "note": "stand-in"})
        self._json({"status": 0, "n": len(names), "names": names})

    def _jsoc_info(self, q: dict[str, str]) -> None:
        op = q.get("op")
        ds = q.get("ds", "")
        if op == "series_struct":
            self._series_struct(ds)
        elif op in ("rs_list", "rs_summary"):
            rs = parse_recordset(ds)
            recs = self.standin.archive.select(rs, now=self.standin.now())
            k = _int_param(q.get("n"), "n")
            if k:
                recs = recs[k:] if k < 0 else recs[:k]
            if op == "rs_summary":
                self._json({"count": len(recs), "runtime": 0.01, "status": 0})
            else:
                self._rs_list(recs, q, rs.segments)
        else:
            self._error(f"jsoc_info: unsupported op {op!r}")

    def _series_struct(self, ds: str) -> None:
        s = self.standin
        series = s.archive.resolve(parse_recordset(ds).series) or ""
        recs = s.archive.records.get(series)
        if not recs:
            self._error(f"series {parse_recordset(ds).series} does not exist")
            return
        sample: dict[str, Any] = {}
        for r in recs:
            for k, v in r.keywords.items():
                sample.setdefault(k, v)
        keywords = []
        for k in s.all_keywords(series):
            v = sample.get(k)
            keywords.append(
                {"name": k, "type": _kw_type(k, v), "recscope": "variable", "defval": "MISSING", "units": "none", "note": ""}
            )
        segs: dict[str, dict[str, Any]] = {}
        for r in recs:
            for seg in r.segments:
                if seg not in segs:
                    bunit = r.keywords.get("BUNIT") if seg != "bitmap" else " "
                    segs[seg] = {
                        "name": seg,
                        "type": "float",
                        "units": bunit or "none",
                        "protocol": "fits",
                        "dims": "VARxVAR",
                        "note": "",
                    }
        base = next((b for b, al in s.archive.serve_as.items() if series in al), series)
        self._json(
            {
                "primekeys": SERIES_PRIMEKEYS.get(base, []),
                "dbindex": SERIES_PRIMEKEYS.get(base, []),
                "keywords": keywords,
                "segments": list(segs.values()),
                "links": [],
                "note": s.archive.provenance or "heliowatch JSOC stand-in",
                "retention": 60,
                "unitsize": 1,
                "archive": 0,
                "tapegroup": 0,
                "status": 0,
            }
        )

    def _rs_list(self, recs: list[ArchiveRecord], q: dict[str, str], rs_segs: list[str] | None) -> None:
        s = self.standin
        out: dict[str, Any] = {"status": 0, "count": len(recs), "runtime": 0.01}
        key = q.get("key")
        if key:
            names = [k.strip() for k in key.split(",") if k.strip()]
            if "**ALL**" in names:
                series = recs[0].series if recs else ""
                names = s.all_keywords(series) if series else []
            out["keywords"] = [{"name": k, "values": [s.keyword(r, k) for r in recs]} for k in names]
        seg = q.get("seg") or (",".join(rs_segs) if rs_segs and not key else None)
        if seg:
            seg_out = []
            for name in [x.strip() for x in seg.split(",") if x.strip()]:
                vals, dims = [], []
                for r in recs:
                    if name in r.segments:
                        vals.append(Archive.sum_path(r, name))
                        dims.append("VARxVAR")
                    else:
                        vals.append("InvalidSegName")
                        dims.append("")
                seg_out.append({"name": name, "values": vals, "dims": dims})
            out["segments"] = seg_out
        link = q.get("link")
        if link:
            out["links"] = [{"name": k, "values": ["Invalid_Link"] * len(recs)} for k in link.split(",")]
        if q.get("R") == "1":
            out["recinfo"] = [{"name": r.name, "online": 1} for r in recs]
        self._json(out)

    def _jsoc_fetch(self, q: dict[str, str]) -> None:
        op = q.get("op")
        if op == "exp_request":
            self._exp_request(q)
        elif op == "exp_status":
            self._exp_status(q.get("requestid", ""))
        else:
            self._error(f"jsoc_fetch: unsupported op {op!r}")

    def _exp_request(self, q: dict[str, str]) -> None:
        s = self.standin
        rs = parse_recordset(q.get("ds", ""))
        recs = s.archive.select(rs, now=s.now())
        n = q.get("process=n")
        k = _int_param((n or "").split("|")[0], "process=n")
        if k:
            recs = recs[k:] if k < 0 else recs[:k]
        processes = _processes(n or "")
        unknown = [p for p in processes if p != "im_patch"]
        if unknown:
            self._json({"status": 4, "error": f"the stand-in cannot run process {unknown[0]!r} (only im_patch)", "requestid": ""})
            return
        method = q.get("method", "url_quick")
        protocol = q.get("protocol", "as-is")
        files: list[tuple[str, str, Path]] = []
        for r in recs:
            for seg in rs.segments or list(r.segments):
                if seg in r.segments:
                    files.append((f"{r.name}{{{seg}}}", seg, r.segments[seg]))
        if method == "url_quick" and protocol == "as-is":
            data = [{"record": rec, "filename": Archive.sum_path(self._rec_of(rec), seg)} for rec, seg, _ in files]
            size = sum(p.stat().st_size for _, _, p in files) / 1e6
            self._json(
                {
                    "status": 0,
                    "requestid": "",
                    "method": "url_quick",
                    "protocol": "as-is",
                    "dir": "",
                    "wait": 0,
                    "count": len(files),
                    "rcount": len(recs),
                    "size": round(size, 3),
                    "data": data,
                }
            )
            return
        requester = q.get("requester") or q.get("notify", "anonymous").split("@")[0]
        with s.state.lock:
            if s.faults.take_status7() or any(
                e.requester == requester and not self._finished(e) for e in s.state.exports.values()
            ):
                self._json({"status": 7, "error": "Request pending, please wait for it to complete", "requestid": ""})
                return
            rid = f"JSOC_{dt.datetime.now(dt.UTC):%Y%m%d}_{next(s.state.counter):03d}"
            fmt = q.get("filenamefmt") or f"{rs.series}.{{recnum}}.{{segment}}"
            named = [(rec, _render_filename(fmt, self._rec_of(rec), seg), p) for rec, seg, p in files]
            if "im_patch" in processes:
                named = [(rec, name, _im_patch(p, processes["im_patch"], s.cutout_dir)) for rec, name, p in named]
            s.state.exports[rid] = _Export(rid, requester, named, method, protocol, time.monotonic() + s.export_delay_s)
        self._json({"status": 2, "requestid": rid, "method": method, "protocol": protocol, "wait": 1, "size": 0})

    def _rec_of(self, record_with_seg: str) -> ArchiveRecord:
        name = record_with_seg.split("{")[0]
        series = name.split("[")[0]
        for r in self.standin.archive.records.get(series, []):
            if r.name == name:
                return r
        msg = f"record {name} not found"
        raise RecordSetError(msg)

    def _finished(self, e: _Export) -> bool:
        return not self.standin.faults.pending_forever and time.monotonic() >= e.ready_at

    def _exp_status(self, rid: str) -> None:
        s = self.standin
        e = s.state.exports.get(rid)
        if e is None:
            self._json({"status": 6, "error": f"Request {rid} not found", "wait": 1})
            return
        if not self._finished(e):
            self._json({"status": 1, "requestid": rid, "wait": 1})
            return
        size = sum(p.stat().st_size for _, _, p in e.files) / 1e6
        self._json(
            {
                "status": 0,
                "requestid": rid,
                "method": e.method,
                "protocol": e.protocol,
                "dir": f"/export/{rid}",
                "data": [{"record": rec, "filename": fname} for rec, fname, _ in e.files],
                "tarfile": "",
                "keywords": "",
                "count": len(e.files),
                "size": round(size, 3),
                "wait": 0,
            }
        )

    # -- downloads --------------------------------------------------------------------------
    def _download(self, path: str) -> None:
        s = self.standin
        target: Path | None = None
        if path.startswith("/export/"):
            _, _, rid, fname = [*path.split("/", 3), ""][:4]
            e = s.state.exports.get(rid)
            if e is not None:
                target = next((p for _, f, p in e.files if f == fname), None)
        else:
            hit = s.archive.file_for(path)
            if hit is not None:
                target = hit[2]
        if target is None:
            self._send(404, b"Not Found", "text/plain")
            return
        fault = s.faults.download_fault()
        if self._fault(fault):
            return
        body = target.read_bytes()
        if fault == "truncate":
            body = body[: max(2880, (len(body) // 2) // 2880 * 2880)]
        elif fault == "corrupt":
            # A garbled transfer: bytes inside the header are overwritten, so the card
            # structure breaks the way it does on real corrupted downloads.
            b = bytearray(body)
            for i in range(400, 560):
                b[i] = (b[i] * 7 + 13) % 256
            body = bytes(b)
        self._send(200, body, "application/octet-stream")


def _int_param(value: str | None, name: str) -> int:
    """An integer query parameter (``n=``): 0 when absent; a RecordSetError (JSOC's error) when not an integer."""
    if value is None or not value.strip():
        return 0
    try:
        return int(value.strip())
    except ValueError:
        msg = f"{name}={value[:40]!r} is not an integer"
        raise RecordSetError(msg) from None


def _processes(n: str) -> dict[str, dict[str, str]]:
    """``process=n`` as drms sends it (``0|im_patch,t_ref=...,x=..|...``): process name -> options."""
    out: dict[str, dict[str, str]] = {}
    for part in n.split("|")[1:]:
        name, *opts = part.split(",")
        out[name] = dict(o.split("=", 1) for o in opts if "=" in o)
    return out


def _im_patch(path: Path, opts: dict[str, str], cache: Path) -> Path:
    """JSOC's ``im_patch`` on one file: a box of ``width`` x ``height`` around (``x``, ``y``) (arcsec, or pixels).

    The stand-in cuts a fixed box (no tracking, which a 12-minute sequence does not need) and
    keeps the WCS consistent (CRPIX shifted), writing the cutout once into ``cache``.
    """

    key = "_".join(f"{k}{opts.get(k, '')}" for k in ("x", "y", "width", "height", "boxunits", "locunits"))
    out = cache / re.sub(r"[^\w.+-]", "_", f"{path.stem}.{key}.fits")
    if out.exists():
        return out
    with fits.open(path) as hdul:
        hdu = next(h for h in hdul if h.data is not None and h.data.ndim == 2)
        data, h = np.asarray(hdu.data, dtype=np.float32), hdu.header.copy()
    scale = abs(float(h.get("CDELT1", 1.0)))
    arcsec = opts.get("locunits", "arcsec") == "arcsec"
    x, y = float(opts.get("x", 0)), float(opts.get("y", 0))
    cx = float(h["CRPIX1"]) - 1 + (x - float(h.get("CRVAL1", 0))) / scale if arcsec else x
    cy = float(h["CRPIX2"]) - 1 + (y - float(h.get("CRVAL2", 0))) / scale if arcsec else y
    box = opts.get("boxunits", "arcsec") == "arcsec"
    w = float(opts.get("width", 100)) / (scale if box else 1.0)
    hh = float(opts.get("height", 100)) / (scale if box else 1.0)
    x0, y0 = max(0, round(cx - w / 2)), max(0, round(cy - hh / 2))
    x1, y1 = min(data.shape[1], x0 + round(w)), min(data.shape[0], y0 + round(hh))
    cut = data[y0:y1, x0:x1]
    h["CRPIX1"], h["CRPIX2"] = float(h["CRPIX1"]) - x0, float(h["CRPIX2"]) - y0
    for k in ("ZNAXIS1", "ZNAXIS2", "NAXIS1", "NAXIS2", "CHECKSUM", "DATASUM"):
        h.remove(k, ignore_missing=True)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(cut, header=h, compression_type="RICE_1")]).writeto(tmp, checksum=True)
    tmp.replace(out)
    return out


def _render_filename(fmt: str, rec: ArchiveRecord, segment: str) -> str:
    """Render a JSOC ``filenamefmt`` such as ``hmi.sharp_cea_720s_nrt.{HARPNUM}.{T_REC:A}.{segment}``."""

    def sub(m: re.Match[str]) -> str:
        key, _, spec = m.group(1).partition(":")
        if key == "segment":
            return segment
        if key == "recnum":
            return str(rec.recnum)
        v = rec.keywords.get(key.upper())
        text = _fmt_value(key.upper(), v)
        if spec == "A" or key.upper() in TIME_KEYS:
            text = text.replace(".", "").replace(":", "").replace("-", "")
        return text

    return re.sub(r"\{([^}]+)\}", sub, fmt) + ".fits"
