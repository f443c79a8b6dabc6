"""The JSOC client: the one module of heliowatch that imports :mod:`drms`.

It owns everything the JSOC needs handled with care (stack-notes A1):

- retries with exponential backoff and full jitter (drms has none), per request;
- a lazily built ``drms.Client`` (passing ``email=`` makes an HTTP call at construction)
  whose HTTP calls carry our timeout: drms reads ``socket.getdefaulttimeout()``, a process-wide
  setting that several poll threads would fight over, so its JSON client is given the timeout
  instead and the default is never touched;
- incremental keyword queries over a time window, converted by us: QUALITY is parsed from
  hex (drms 0.9.0 + pandas 3 turns it into NaN), T_REC/T_OBS are converted from TAI
  explicitly, ``MISSING`` becomes ``None``;
- ``url_quick``/``as-is`` exports, downloaded by us with a size cap into a ``.part`` file,
  hashed while it streams, verified (size, FITS readability, checksum where given) and read
  once before it is renamed: the verified frame is what the pipelines get;
- one export at a time (JSOC allows one pending export per user, status 7);
- a start-up check that the series, keywords and segments we rely on exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import math
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import drms
import structlog
from drms.config import ServerConfig
from drms.exceptions import DrmsError
from drms.json import HttpJsonClient, HttpJsonRequest

from heliowatch.models.core.times import tai_to_utc
from heliowatch.pipelines.errors import DataRejected, SourceUnavailable, local_io_error
from heliowatch.pipelines.fitsio import FitsFrame, parse_quality, read_fits

__all__ = ["Download", "JsocClient", "JsocObserver", "RemoteRecord", "RetryPolicy", "make_server_config"]

log = structlog.get_logger(__name__)
T = TypeVar("T")

#: The SHARP space-weather keywords: the region flare model's inputs (forecaster.HEADER_KEYS; a test keeps them equal).
SHARP_HEADER_KEYS = [
    "USFLUX", "MEANGAM", "MEANGBT", "MEANGBZ", "MEANGBH", "MEANJZD", "TOTUSJZ", "MEANJZH", "TOTUSJH",
    "ABSNJZH", "SAVNCPP", "MEANPOT", "TOTPOT", "MEANSHR", "SHRGT45", "R_VALUE", "AREA_ACR",
]  # fmt: skip
#: Keys heliowatch always asks for, per kind of series.
BASE_KEYS = ["T_REC", "T_OBS", "QUALITY", "DATE"]
SOURCE_KEYS = {
    "magnetogram": [*BASE_KEYS, "CAMERA", "CRLN_OBS", "CRLT_OBS", "CAR_ROT", "RSUN_OBS", "DSUN_OBS", "CDELT1", "CROTA2"],
    "sharp": [*BASE_KEYS, "HARPNUM", "NOAA_AR", "NOAA_ARS", "LAT_FWT", "LON_FWT", *SHARP_HEADER_KEYS],
    "aia": [*BASE_KEYS, "FSN", "WAVELNTH", "EXPTIME", "IMG_TYPE"],
}


class JsocObserver(Protocol):
    """What the client reports (the daemon's metrics implement it)."""

    def jsoc_request(self, endpoint: str, outcome: str) -> None:
        """One request to ``endpoint`` ended with ``outcome`` (ok, timeout, http_5xx, ...)."""
        ...

    def jsoc_retry(self, endpoint: str) -> None:
        """A request to ``endpoint`` is being retried."""
        ...


@dataclass(frozen=True)
class Download:
    """A verified downloaded file: its frame (read once), size and SHA-256 (computed while streaming)."""

    frame: FitsFrame
    size: int
    sha256: str


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential backoff and full jitter (AWS architecture blog's "full jitter")."""

    retries: int = 4
    base_s: float = 2.0
    max_s: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Delay before retry ``attempt`` (1-based)."""
        return self.rng.uniform(0, min(self.max_s, self.base_s * 2 ** (attempt - 1)))


@dataclass
class RemoteRecord:
    """One record found at the JSOC, with its keywords converted."""

    series: str
    name: str
    t_rec: str
    t_rec_utc: str
    quality: int | None
    keywords: dict[str, Any]
    fsn: int | None = None
    wavelength: int | None = None
    harpnum: int | None = None
    date_utc: str | None = None


def make_server_config(url: str) -> ServerConfig:
    """A ``drms.config.ServerConfig`` for a stand-in at ``url`` (stack-notes A1.2)."""
    base = url if url.endswith("/") else url + "/"
    return ServerConfig(
        name="HELIOWATCH-STANDIN",
        cgi_baseurl=base + "cgi-bin/ajax/",
        cgi_show_series="show_series",
        cgi_jsoc_info="jsoc_info",
        cgi_jsoc_fetch="jsoc_fetch",
        cgi_check_address="checkAddress.sh",
        http_download_baseurl=base,
    )


class _TimedJsonClient(HttpJsonClient):
    """drms's JSON client with our per-request timeout (drms hard-codes 60 s unless the
    process-wide socket default is set, which heliowatch never changes)."""

    def __init__(self, server: Any, timeout_s: float) -> None:
        super().__init__(server)
        self._timeout_s = timeout_s

    def _json_request(self, url: str) -> HttpJsonRequest:
        return HttpJsonRequest(url, self._server.encoding, timeout=self._timeout_s)


def _convert(value: str) -> Any:
    """A JSOC keyword string to a Python value (JSOC sends every value as a string)."""
    s = value.strip()
    if s in ("MISSING", "Invalid KeyLink", "InvalidSegName", "Invalid_Link", ""):
        return None
    if s.lower().startswith("0x"):
        try:
            return int(s, 16)
        except ValueError:
            return s
    try:
        return int(s)
    except ValueError:
        pass
    try:
        f = float(s)
    except ValueError:
        return s
    return f


def _error_outcome(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"http_{exc.code // 100}xx"
    if isinstance(exc, TimeoutError | urllib.error.URLError) or "timed out" in str(exc):
        return "timeout" if "timed out" in str(exc) else "unreachable"
    return "error"


class JsocClient:
    """Access to the JSOC (or the stand-in) for the daemon.

    Parameters
    ----------
    server : str
        ``"jsoc"`` or the base URL of a stand-in.
    email : str
        JSOC-registered address used for exports (never logged).
    timeout_s : float
        Per-request timeout.
    retry : RetryPolicy
        Retry behaviour.
    observer : JsocObserver or None
        Told about every request and retry.
    max_file_bytes : int
        Downloads larger than this are refused.
    """

    def __init__(
        self,
        server: str,
        *,
        email: str,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        observer: JsocObserver | None = None,
        max_file_bytes: int = 200 * 1024 * 1024,
        export_wait_s: float = 600.0,
    ) -> None:
        self.server = server
        self._email = email
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.observer = observer
        self.max_file_bytes = max_file_bytes
        self.export_wait_s = export_wait_s
        self._client: Any = None
        self._client_lock = threading.Lock()
        # JSOC allows one pending export per user; serialise all of ours.
        self._export_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------
    def _drms(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._call("check_address", self._new_client)
            return self._client

    def _new_client(self) -> drms.Client:
        cfg = "jsoc" if self.server == "jsoc" else make_server_config(self.server)
        client = drms.Client(cfg)  # no e-mail yet: that would make the registration call with drms's timeout
        if not isinstance(getattr(client, "_json", None), HttpJsonClient):
            msg = f"drms {drms.__version__} has no HttpJsonClient at Client._json; heliowatch cannot set its timeout"
            raise SourceUnavailable(msg)
        client._json = _TimedJsonClient(cfg, self.timeout_s)
        if self._email:
            client.email = self._email  # the registration check, now with our timeout
        return client

    def _count(self, endpoint: str, outcome: str) -> None:
        if self.observer is not None:
            self.observer.jsoc_request(endpoint, outcome)

    def _call(self, endpoint: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` with retries; raise :class:`SourceUnavailable` when they are spent."""
        last: BaseException | None = None
        for attempt in range(self.retry.retries + 1):
            if attempt:
                if self.observer is not None:
                    self.observer.jsoc_retry(endpoint)
                d = self.retry.delay(attempt)
                log.warning("jsoc_retry", endpoint=endpoint, attempt=attempt, delay_s=round(d, 2), error=str(last)[:200])
                self.retry.sleep(d)
            try:
                out = fn()
            except ValueError as e:
                last = e
                if "mail" in str(e):  # drms: address not registered; retrying will not help
                    self._count(endpoint, "rejected")
                    break
                self._count(endpoint, "bad_response")  # e.g. a garbled JSON body
                continue
            except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException, DrmsError) as e:
                last = e
                if isinstance(e, urllib.error.HTTPError):
                    e.close()  # drms leaves the error response's socket open
                self._count(endpoint, _error_outcome(e))
                continue
            self._count(endpoint, "ok")
            return out
        msg = f"JSOC {endpoint} failed after {self.retry.retries + 1} attempt(s): {last}"
        raise SourceUnavailable(msg) from last

    # -- start-up check ---------------------------------------------------------------------
    def check_series(self, series: str, *, keys: Iterable[str] = (), segments: Iterable[str] = ()) -> list[str]:
        """Check that ``series`` exists with the keywords and segments heliowatch needs.

        Returns
        -------
        list of str
            The series' primekeys.

        Raises
        ------
        SourceUnavailable
            If the series is unknown or lacks a keyword/segment (the message lists them).
        """
        client = self._drms()
        info = self._call("series_struct", lambda: client.info(series))
        missing_k = [k for k in keys if k not in info.keywords.index]
        missing_s = [s for s in segments if s not in info.segments.index]
        if missing_k or missing_s:
            msg = f"series {series} lacks keywords {missing_k} / segments {missing_s}"
            raise SourceUnavailable(msg)
        return list(info.primekeys)

    # -- queries ----------------------------------------------------------------------------
    def query(self, ds: str, keys: list[str], *, n: int | None = None) -> list[RemoteRecord]:
        """Keyword query of a record set; values converted by us, never by drms.

        Records whose T_REC is missing are dropped (JSOC lists empty slots in NRT series).
        """
        client = self._drms()
        series = ds.split("[")[0].split("{")[0].strip()
        df = self._call(
            "rs_list",
            lambda: client.query(ds, key=",".join(keys), rec_index=True, convert_numeric=False, n=n),
        )
        out: list[RemoteRecord] = []
        for name, row in df.iterrows():
            kw = {k: _convert(str(row[k])) for k in df.columns}
            t_rec = kw.get("T_REC")
            if not isinstance(t_rec, str):
                continue
            try:
                t_utc = tai_to_utc(t_rec)
            except ValueError:
                continue
            try:
                quality = parse_quality(kw.get("QUALITY")) if "QUALITY" in kw else 0
            except ValueError:
                quality = None
            date = kw.get("DATE")
            date_utc = None
            if isinstance(date, str):
                try:
                    date_utc = tai_to_utc(date)
                except ValueError:
                    date_utc = None
            out.append(
                RemoteRecord(
                    series=series,
                    name=str(name),
                    t_rec=t_rec,
                    t_rec_utc=t_utc,
                    quality=quality,
                    keywords=kw,
                    fsn=_int_or_none(kw.get("FSN")),
                    wavelength=_int_or_none(kw.get("WAVELNTH")),
                    harpnum=_int_or_none(kw.get("HARPNUM")),
                    date_utc=date_utc,
                )
            )
        return out

    # -- downloads --------------------------------------------------------------------------
    def export_urls(self, ds: str, *, process: dict[str, dict[str, Any]] | None = None) -> list[tuple[str, str]]:
        """Export a record set: ``[(record{segment}, url), ...]``.

        Without ``process`` a ``url_quick``/``as-is`` export (the files as stored); with one
        (e.g. ``{"im_patch": {...}}`` for cutouts) a ``url``/``fits`` export the JSOC processes
        first, which needs the registered e-mail address.
        """
        client = self._drms()
        if process is not None and not self._email:
            msg = f"a processed export ({', '.join(process)}) needs a JSOC-registered e-mail address (jsoc.email)"
            raise SourceUnavailable(msg)

        def run() -> list[tuple[str, str]]:
            with self._export_lock:
                if process is None:
                    email = self._email or "anonymous@localhost.invalid"
                    req = client.export(ds, method="url_quick", protocol="as-is", email=email)
                else:
                    req = client.export(ds, method="url", protocol="fits", email=self._email, process=process)
                if not req.wait(timeout=self.export_wait_s, sleep=1):
                    msg = f"export of {ds} still pending after {self.export_wait_s:.0f} s"
                    raise TimeoutError(msg)
                urls = req.urls
            return [(str(r), str(u)) for r, u in zip(urls["record"], urls["url"], strict=True)]

        return self._call("export", run)

    def download(self, url: str, dest: Path, *, max_pixels: int | None = None) -> Download:
        """Download one file to ``dest`` through ``dest.part``, verify and read it, then rename.

        The SHA-256 is computed while the bytes stream in; the FITS is read once for its
        verification and that read is what is returned, so no later stage opens the file again.

        Raises
        ------
        DataRejected
            If the file is too large, truncated, corrupt or fails its checksum (the
            ``.part`` file is removed).
        SourceUnavailable
            If the server cannot be reached after retries.
        """
        part = dest.with_name(dest.name + ".part")
        digest: dict[str, Any] = {}
        with _local_writes(part):
            dest.parent.mkdir(parents=True, exist_ok=True)

        def fetch() -> None:
            h = hashlib.sha256()
            req = urllib.request.Request(url, headers={"User-Agent": "heliowatch"})
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                length = resp.headers.get("Content-Length")
                if length is not None and int(length) > self.max_file_bytes:
                    msg = f"{url}: {int(length) / 1e6:.1f} MB exceeds the {self.max_file_bytes / 1e6:.0f} MB limit"
                    raise DataRejected(msg, "size")
                got = 0
                # A full disk or a read-only frame store is not a JSOC failure: raised past the retries.
                with _local_writes(part), open(part, "wb") as f:
                    while chunk := resp.read(1 << 20):
                        got += len(chunk)
                        if got > self.max_file_bytes:
                            msg = f"{url}: larger than the {self.max_file_bytes / 1e6:.0f} MB limit"
                            raise DataRejected(msg, "size")
                        h.update(chunk)
                        f.write(chunk)
                    f.flush()
                    os.fsync(f.fileno())
                if length is not None and got != int(length):
                    msg = f"{url}: got {got} of {length} bytes"
                    raise DataRejected(msg, "truncated")
            digest.update(size=got, sha256=h.hexdigest())

        try:
            self._call("download", fetch)
            frame = read_fits(part) if max_pixels is None else read_fits(part, max_pixels=max_pixels)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        with _local_writes(part):
            os.replace(part, dest)
        frame.path = dest
        return Download(frame=frame, size=int(digest["size"]), sha256=str(digest["sha256"]))


@contextlib.contextmanager
def _local_writes(path: Path) -> Iterator[None]:
    """Local write failures (disk full, read-only, permissions) as :class:`LocalIOError`, other errors as they are."""
    try:
        yield
    except OSError as e:
        err = local_io_error(e, "frames", path)
        if err is None:
            raise
        with contextlib.suppress(OSError):  # a read-only store may refuse even this
            path.unlink(missing_ok=True)
        raise err from e


def _int_or_none(v: Any) -> int | None:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None
