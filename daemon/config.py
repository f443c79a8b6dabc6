"""Configuration: ``config.toml`` read with :mod:`tomllib`, validated into frozen dataclasses.

Every key has a safe default (offline replay, SQLite under the state directory, metrics on
127.0.0.1). Any key can be overridden from the environment as
``HELIOWATCH_<SECTION>__<KEY>`` (double underscore between levels), which is how systemd
credentials and tests set them. Errors name the key path, e.g.
``metrics.port: must be 1..65535 (got 70000)``.

Secrets (the JSOC e-mail, the SMTP password) may come from the environment or from a
credentials file, and are wrapped in :class:`Secret` so they never reach a log line.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from heliowatch.daemon.errors import ConfigError

__all__ = [
    "AlertsConfig",
    "BackfillConfig",
    "Config",
    "DaemonConfig",
    "ExportsConfig",
    "FlaresConfig",
    "JsocConfig",
    "LoggingConfig",
    "MetricsConfig",
    "ModelsConfig",
    "RegionsConfig",
    "ReplayConfig",
    "ScheduleConfig",
    "Secret",
    "StateConfig",
    "WebhookConfig",
    "default_config_text",
    "load_config",
]

ENV_PREFIX = "HELIOWATCH_"

#: A config file is a few kB; a bigger one is a mistake (or an attack), refused unread.
MAX_CONFIG_BYTES = 1 << 20
#: No value needs more (the longest are URLs and paths).
MAX_STRING_CHARS = 4096
#: Longest file name component (the kernel's NAME_MAX).
MAX_NAME_BYTES = 255


class Secret(str):
    """A string whose ``repr`` and ``str`` formatting in logs never show the value.

    Use :meth:`reveal` where the value is really needed (the SMTP login, the JSOC
    registration check).
    """

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    def reveal(self) -> str:
        """Return the plain value."""
        return str.__str__(self)

    def __str__(self) -> str:
        return "***" if str.__len__(self) else ""

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


Check = Callable[[Any], str | None]


def _short(v: Any) -> str:
    """A value for an error message: its repr, cut short (a hostile one may be megabytes)."""
    text = repr(v)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _opt(default: Any, doc: str, check: Check | None = None, *, factory: bool = False) -> Any:
    meta = {"doc": doc, "check": check}
    if factory:
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


def _range(lo: float, hi: float) -> Check:
    def check(v: Any) -> str | None:
        return None if lo <= v <= hi else f"must be {lo:g}..{hi:g} (got {_short(v)})"

    return check


def _positive(v: Any) -> str | None:
    return None if v > 0 else f"must be > 0 (got {_short(v)})"


def _choice(*options: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {', '.join(map(repr, options))} (got {_short(v)})"

    return check


_SERIES_RE = re.compile(r"^[A-Za-z][\w]*\.[\w]+$")


def _series_name(v: Any) -> str | None:
    return None if _SERIES_RE.match(v) else f"not a DRMS series name like 'hmi.M_720s_nrt' (got {_short(v)})"


def _email(v: Any) -> str | None:
    s = v.reveal() if isinstance(v, Secret) else v
    if not s or re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", s):
        return None
    return "must be an e-mail address registered with the JSOC (or empty for no exports)"


def _wavelengths(v: Any) -> str | None:
    valid = {94, 131, 171, 193, 211, 304, 335, 1600, 1700, 4500}
    bad = [w for w in v if w not in valid]
    if not v:
        return "needs at least one AIA wavelength, e.g. [304]"
    return f"unknown AIA wavelength(s) {bad}; valid: {sorted(valid)}" if bad else None


def _host(v: Any) -> str | None:
    return None if v and not any(c.isspace() for c in v) else f"must be a host name or address (got {_short(v)})"


_DB_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\+[A-Za-z0-9_]+)?://")


def _split_url(v: str) -> SplitResult | None:
    """``v`` split as a URL, or None when it is not one (a bad port included)."""
    try:
        parts = urlsplit(v)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    return parts


def _db_url(v: Any) -> str | None:
    # The value is never quoted back: a database URL may hold a password.
    if not v:
        return None
    parts = _split_url(v)
    if parts is None or not _DB_URL_RE.match(v) or any(c.isspace() or c == "\0" for c in v):
        return "not an SQLAlchemy URL like sqlite:////var/lib/heliowatch/state.sqlite (value not shown: it may hold a password)"
    if parts.scheme.split("+")[0] == "sqlite" and v.count("/") < 3:
        return "an SQLite URL needs a path: sqlite:///relative/file or sqlite:////absolute/file"
    return None


@dataclass(frozen=True)
class DaemonConfig:
    """[daemon]: where the daemon keeps its state and writes its outputs."""

    state_dir: Path = _opt(Path("./heliowatch-state"), "state database, ingested frames, caches")
    output_dir: Path = _opt(Path(""), "product files; empty means <state_dir>/outputs")
    heartbeat_s: float = _opt(10.0, "period of the health tick that gates the systemd watchdog", _range(1, 3600))

    @property
    def outputs(self) -> Path:
        """The resolved output directory."""
        return self.output_dir if _is_set(self.output_dir) else self.state_dir / "outputs"


@dataclass(frozen=True)
class JsocConfig:
    """[jsoc]: the data source, through drms."""

    server: str = _opt("replay", "'jsoc' for the real JSOC, 'replay' for the bundled stand-in, or a stand-in URL")
    email: Secret = _opt(Secret(""), "JSOC-registered e-mail for exports (secret; env or email_file)", _email)
    email_file: Path = _opt(Path(""), "file holding the e-mail (systemd LoadCredential=); overrides email")
    magnetogram_series: str = _opt("hmi.M_720s_nrt", "full-disk LOS magnetograms", _series_name)
    magnetogram_segment: str = _opt("magnetogram", "segment of the magnetogram series")
    sharp_series: str = _opt("hmi.sharp_cea_720s_nrt", "SHARP CEA patches", _series_name)
    sharp_segments: list[str] = _opt(lambda: ["magnetogram", "bitmap", "Br"], "SHARP segments to download", factory=True)
    aia_series: str = _opt("aia.lev1_nrt2", "AIA level-1 frames", _series_name)
    aia_segment: str = _opt("image_lev1", "segment of the AIA series")
    aia_wavelengths: list[int] = _opt(lambda: [304], "AIA channels to ingest (Angstrom)", _wavelengths, factory=True)
    enabled_sources: list[str] = _opt(
        lambda: ["magnetogram", "sharp", "aia"], "which of magnetogram, sharp, aia to poll", factory=True
    )
    lookback_hours: float = _opt(6.0, "how far back the first poll looks when no high-water mark exists", _positive)
    max_records_per_poll: int = _opt(200, "cap on records fetched in one poll (the rest come next poll)", _positive)
    timeout_s: float = _opt(60.0, "HTTP timeout of one JSOC request", _range(1, 600))
    retries: int = _opt(4, "attempts per request beyond the first", _range(0, 20))
    backoff_base_s: float = _opt(2.0, "first retry delay; doubles each attempt, with full jitter", _range(0, 600))
    backoff_max_s: float = _opt(120.0, "upper bound of one retry delay", _range(0, 3600))
    export_wait_s: float = _opt(600.0, "how long to wait for an asynchronous export before retrying later", _positive)
    max_file_mb: float = _opt(200.0, "refuse downloaded files larger than this (untrusted sizes)", _positive)

    def __post_init__(self) -> None:
        bad = [s for s in self.enabled_sources if s not in ("magnetogram", "sharp", "aia")]
        if bad:
            msg = f"unknown source(s) {bad}; valid: magnetogram, sharp, aia"
            raise ConfigError(msg, ("jsoc", "enabled_sources"))
        if self.server not in ("jsoc", "replay") and not re.match(r"^https?://", self.server):
            msg = f"must be 'jsoc', 'replay' or an http(s):// URL (got {self.server!r})"
            raise ConfigError(msg, ("jsoc", "server"))


@dataclass(frozen=True)
class ScheduleConfig:
    """[schedule]: how often each source is polled (APScheduler interval jobs)."""

    magnetogram_interval_s: float = _opt(
        60.0,
        "keyword-only poll period of the magnetogram series (HMI cadence 720 s; a due record is polled for sooner)",
        _range(1, 86400),
    )
    sharp_interval_s: float = _opt(60.0, "keyword-only poll period of the SHARP series", _range(1, 86400))
    aia_interval_s: float = _opt(30.0, "keyword-only poll period of the AIA series (12 s cadence per channel)", _range(1, 86400))
    misfire_grace_fraction: float = _opt(0.5, "a late run still runs within this fraction of its period", _range(0.01, 1))
    due_poll: bool = _opt(True, "also poll when a source's next record is due (last T_REC + cadence + typical latency)")


@dataclass(frozen=True)
class ReplayConfig:
    """[replay]: the offline replay through the JSOC stand-in (``jsoc.server = 'replay'``)."""

    archive: str = _opt("demo", "'demo' for the bundled archive, or a directory of FITS files")
    speed: float = _opt(60.0, "replay clock speed, in archive seconds per wall second", _range(0.001, 1e7))
    latency_s: float = _opt(0.0, "simulated JSOC latency: a record appears this long after T_REC", _range(0, 86400))
    latency_jitter_s: float = _opt(
        0.0, "plus a random extra latency of up to this (seeded), as the JSOC's varies", _range(0, 86400)
    )
    max_gap_s: float = _opt(3600.0, "longer gaps between archive records are compressed to this", _positive)


@dataclass(frozen=True)
class StateConfig:
    """[state]: the state database (high-water marks, ingested frames, processed keys)."""

    url: str = _opt("", "SQLAlchemy URL; empty means sqlite:///<state_dir>/state.sqlite", _db_url)


@dataclass(frozen=True)
class MetricsConfig:
    """[metrics]: the Prometheus endpoint."""

    enabled: bool = _opt(True, "serve /metrics")
    host: str = _opt("127.0.0.1", "bind address; keep it on loopback unless a firewall protects it", _host)
    port: int = _opt(9464, "TCP port (0 picks a free one)", _range(0, 65535))


@dataclass(frozen=True)
class LoggingConfig:
    """[logging]: structlog output."""

    level: str = _opt("info", "minimum level", _choice("debug", "info", "warning", "error"))
    format: str = _opt("json", "'json' lines (for journald) or 'console' for people", _choice("json", "console"))
    journald_priority_prefix: bool = _opt(False, "prefix lines with <N> so journald sets PRIORITY")
    poll_summary_minutes: float = _opt(
        10.0, "polls that find nothing new are logged at debug; an info line sums up the polls this often", _range(0.01, 1440)
    )


@dataclass(frozen=True)
class ModelsConfig:
    """[models]: the inference runtime."""

    backend: str = _opt(
        "auto",
        "auto, or the backend to try first",
        _choice("auto", "tensorrt", "onnxruntime-cuda", "onnxruntime-cpu", "onnxruntime", "torch-cuda", "torch-cpu", "torch"),
    )
    export_dir: Path = _opt(Path(""), "ONNX exports; empty means <state_dir>/models")
    weights_dir: Path = _opt(
        Path(""), "retrained weights: `heliowatch train` writes here, loaded before the shipped ones; empty: <state_dir>/weights"
    )
    trt_cache_dir: Path = _opt(Path(""), "TensorRT engines and timing caches; empty means <state_dir>/models/trt")
    fp16: bool = _opt(True, "let TensorRT build FP16 engines (through ModelOpt) where possible")
    torch_compile: bool = _opt(False, "torch.compile the torch backends")
    max_batch: int = _opt(0, "batch limit per inference call; 0 means the model's profile maximum", _range(0, 4096))
    region_classifier: str = _opt(
        "rules", "Mt. Wilson classifier: 'rules' (measures) or 'cnn' (the region-classifier model)", _choice("cnn", "rules")
    )
    region_detector: str = _opt(
        "smart",
        "active-region detector: 'smart' (physics baseline) or 'cnn' (the region-detector model)",
        _choice("cnn", "smart"),
    )


@dataclass(frozen=True)
class FlaresConfig:
    """[flares]: the flare-forecast product."""

    enabled: bool = _opt(True, "issue flare forecasts for every SHARP cadence")
    event_source: str = _opt(
        "replay",
        "GOES events: 'replay' (the archive's list), 'files', 'swpc' (JSON feed) or 'none'",
        _choice("replay", "files", "swpc", "none"),
    )
    event_files: list[str] = _opt(list, "event lists for event_source = 'files' (SWPC CSV, HEK CSV or SWPC JSON)", factory=True)
    event_url: str = _opt(
        "https://services.swpc.noaa.gov/json/goes/primary/xray-flares-7-day.json", "SWPC X-ray flare feed (event_source = 'swpc')"
    )
    event_refresh_s: float = _opt(600.0, "how often the feed is fetched", _range(30, 86400))
    occlusion_threshold: float = _opt(0.5, "regions with P(>=M) at or above this get an occlusion map", _range(0, 1))
    cnn_model: str = _opt("flare-cnn2", "CNN used for occlusion maps ('' to disable)")
    occlusion_maps: str = _opt(
        "operational",
        "occlusion maps: 'operational' (only from a CNN whose card says operational), 'always' or 'never'",
        _choice("operational", "always", "never"),
    )
    verification_days: float = _opt(90.0, "window of the rolling verification scores", _positive)


def _jet_detectors(v: Any) -> str | None:
    bad = [d for d in v if d not in ("baseline", "convlstm")]
    if not v:
        return "needs at least one of 'baseline', 'convlstm'"
    return f"unknown jet detector(s) {bad}; valid: 'baseline', 'convlstm'" if bad else None


@dataclass(frozen=True)
class JetsConfig:
    """[jets]: the coronal-jet product on AIA 304 A frames."""

    enabled: bool = _opt(True, "watch every AIA 304 A frame for coronal jets")
    detectors: list[str] = _opt(
        lambda: ["baseline", "convlstm"], "which detectors run: 'baseline', 'convlstm'", _jet_detectors, factory=True
    )
    threshold: float = _opt(0.0, "network probability at which a tile fires; 0 means the model card's threshold", _range(0, 1))
    spacing_s: float = _opt(24.0, "time between the frames of a window (every second 12 s frame)", _range(12, 600))
    window_frames: int = _opt(30, "frames in a full window", _range(10, 48))
    min_frames: int = _opt(10, "fewest real frames in a window for a probability", _range(2, 48))
    max_gap_frames: int = _opt(2, "missing frames in a row filled (and flagged) before a window is cut", _range(0, 10))
    close_after_s: float = _opt(150.0, "quiet time after which a jet event is closed and recorded", _range(24, 3600))
    network_alone_min_p: float = _opt(
        0.99, "probability an event only the network saw needs (the baseline's corroboration counts for more)", _range(0, 1)
    )
    network_max_windows: int = _opt(
        40, "a tile firing for more windows in a row sees something static: no event", _range(2, 100000)
    )
    reorder_hold_s: float = _opt(
        36.0, "data time a frame waits for late, older frames (NRT AIA arrives out of order)", _range(0, 600)
    )
    tile_stride: int = _opt(83, "tile stride in pooled pixels (83: tiles overlap by half)", _range(20, 166))
    calibration_tables_dir: Path = _opt(Path(""), "aiapy pointing and degradation tables; empty: <state_dir>/aia-tables")
    fetch_calibration_tables: bool = _opt(True, "fetch the tables from the JSOC daily (never in replay)")
    register: str = _opt(
        "pooled",
        "where a roll is undone: 'pooled' (fast) or 'aiapy' (aiapy.calibrate.register at full resolution)",
        _choice("pooled", "aiapy"),
    )


@dataclass(frozen=True)
class EmergenceConfig:
    """[emergence]: pre-emergence warnings from tracked full-disk magnetogram patches."""

    enabled: bool = _opt(True, "forecast flux emergence on every full-disk magnetogram")
    method: str = _opt(
        "mtot-lda",
        "which classifier issues warnings: 'mtot-lda' or 'emergence-fcn' (both always run)",
        _choice("emergence-fcn", "mtot-lda"),
    )
    threshold: float = _opt(
        0.75, "probability a warning needs; 0 means the method's own (balanced-set, validation-chosen) threshold", _range(0, 1)
    )
    min_windows: int = _opt(1, "averaging windows in a row above the threshold before a warning", _range(1, 20))
    window_minutes: float = _opt(410.0, "averaging window (the seed's 410 min: 34 frames at 720 s)", _range(12, 2880))
    stride_minutes: float = _opt(320.0, "start-to-start spacing of averaging windows (the seed's 320 min)", _range(12, 2880))
    min_fraction: float = _opt(0.7, "fewest frames of a window a patch needs, as a fraction of its slots", _range(0.05, 1))
    max_gap_hours: float = _opt(3.0, "a longer gap between magnetograms restarts the averaging (flagged)", _range(0.2, 240))
    grid_spacing_deg: float = _opt(
        5.0, "Carrington grid step of the patch centres (5: half-overlapping 10-deg patches)", _range(2, 10)
    )
    max_cmd_deg: float = _opt(60.0, "largest central-meridian distance of a patch centre", _range(5, 80))
    max_lat_deg: float = _opt(40.0, "largest |latitude| of a patch centre", _range(5, 70))
    known_region_deg: float = _opt(
        7.0, "a patch with a detected region or HARP within this distance of its centre gets no warning", _range(0, 30)
    )
    verify_hours: float = _opt(
        48.0, "a warning not followed by a new region or HARP within this time is a false alarm", _range(1, 240)
    )


@dataclass(frozen=True)
class RegionsConfig:
    """[regions]: the active-region product."""

    srs_source: str = _opt(
        "replay",
        "NOAA SRS for NOAA numbers and classes: 'replay' (the archive's srs/), 'dir', 'swpc' (the text feed) or 'none'",
        _choice("replay", "dir", "swpc", "none"),
    )
    srs_dir: Path = _opt(Path(""), "SRS files (YYYYMMDDSRS.txt or yearly .tar.gz); for 'swpc' the cache; empty: <state_dir>/srs")
    srs_url: str = _opt("https://services.swpc.noaa.gov/text/srs.txt", "SWPC's latest SRS (srs_source = 'swpc')")
    srs_refresh_s: float = _opt(3600.0, "how often the SWPC SRS is fetched", _range(300, 86400))
    srs_match_deg: float = _opt(6.0, "a detection within this distance of an SRS region gets its NOAA number", _range(0.5, 30))
    limb_guard_deg: float = _opt(
        70.0, "no Mt. Wilson class for a region farther than this from the central meridian (LOS/mu untrusted)", _range(30, 90)
    )


def _addresses(v: Any) -> str | None:
    bad = [a for a in v if not re.match(r"^[^@\s]+@[^@\s]+$", a)]
    if not v:
        return "needs at least one recipient address"
    return f"not e-mail addresses: {bad}" if bad else None


@dataclass(frozen=True)
class SmtpConfig:
    """[alerts.smtp]: the mail server of the mailing list."""

    host: str = _opt("127.0.0.1", "SMTP server", _host)
    port: int = _opt(25, "SMTP port (587 with starttls)", _range(1, 65535))
    starttls: bool = _opt(False, "upgrade the connection with STARTTLS")
    username: str = _opt("", "login (empty: no authentication)")
    password: Secret = _opt(Secret(""), "password (secret: HELIOWATCH_ALERTS__SMTP__PASSWORD or password_file)")
    password_file: Path = _opt(Path(""), "file holding the password (relative: in $CREDENTIALS_DIRECTORY)")
    timeout_s: float = _opt(30.0, "connection timeout", _range(1, 600))
    cafile: str = _opt("", "CA bundle to verify the server (empty: the system's)")


def _webhook_url(v: Any) -> str | None:
    # The value is never quoted back: Slack's and Mattermost's URLs hold their token.
    s = v.reveal() if isinstance(v, Secret) else v
    if not s:
        return None
    parts = _split_url(s)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host (the value is not shown: it may hold a token)"
    return None


def _header_name(v: Any) -> str | None:
    return None if re.match(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]*$", v) else f"not an HTTP header name (got {_short(v)})"


@dataclass(frozen=True)
class WebhookConfig:
    """[alerts.webhook]: also POST every alert to a webhook (generic JSON, or Slack/Mattermost/Matrix)."""

    enabled: bool = _opt(False, "POST every alert to url as well (its own delivery, retried on its own)")
    url: Secret = _opt(
        Secret(""), "receiver URL (secret: it may hold a token; HELIOWATCH_ALERTS__WEBHOOK__URL or url_file)", _webhook_url
    )
    url_file: Path = _opt(Path(""), "file holding the URL (relative: in $CREDENTIALS_DIRECTORY); overrides url")
    format: str = _opt(
        "generic",
        "'generic' (heliowatch's JSON) or 'slack' ({\"text\": ...}: Slack, Mattermost, Matrix hookshot)",
        _choice("generic", "slack"),
    )
    header: str = _opt("", "one extra header carrying a credential, e.g. 'Authorization' (empty: none)", _header_name)
    header_value: Secret = _opt(Secret(""), "its value (secret: HELIOWATCH_ALERTS__WEBHOOK__HEADER_VALUE or header_value_file)")
    header_value_file: Path = _opt(Path(""), "file holding the header's value (relative: in $CREDENTIALS_DIRECTORY)")
    timeout_s: float = _opt(10.0, "connect and read timeout of one POST", _range(1, 120))


@dataclass(frozen=True)
class RulesConfig:
    """[alerts.rules]: when to alert. A probability threshold above 1, or 0 minutes, disables a rule."""

    flare_region_m: float = _opt(0.5, "alert when a region's P(>=M in 24 h) reaches this", _range(0, 2))
    flare_full_disk_m: float = _opt(0.8, "alert when the full-disk P(>=M in 24 h) reaches this", _range(0, 2))
    new_delta_region: bool = _opt(True, "alert when a region becomes delta-class")
    jet: float = _opt(0.5, "alert on a coronal jet of at least this probability", _range(0, 2))
    emergence: float = _opt(0.5, "alert on a pre-emergence warning of at least this probability", _range(0, 2))
    data_stale_minutes: float = _opt(180.0, "alert when a series has had no new record for this long (0: off)", _range(0, 100000))


@dataclass(frozen=True)
class AlertsConfig:
    """[alerts]: the mailing list (and the webhook, [alerts.webhook])."""

    transport: str = _opt("maildir", "'maildir' (local files), 'smtp' or 'none' (no mail)", _choice("maildir", "smtp", "none"))
    maildir: Path = _opt(Path(""), "maildir for transport = 'maildir'; empty means <state_dir>/maildir")
    sender: str = _opt("heliowatch@localhost", "From: address")
    recipients: list[str] = _opt(lambda: ["solar-alerts@localhost"], "the mailing list address(es)", _addresses, factory=True)
    list_id: str = _opt("heliowatch alerts <alerts.heliowatch.localhost>", "List-Id header")
    dedup_window_minutes: float = _opt(360.0, "one alert per region and condition per this window", _range(1, 100000))
    digest_threshold: int = _opt(4, "this many alerts at once go out as one digest", _range(2, 1000))
    deliver_interval_s: float = _opt(30.0, "how often the outbox is delivered", _range(1, 3600))
    retry_base_s: float = _opt(30.0, "first retry delay after a failed delivery (doubles)", _range(1, 86400))
    retry_max_s: float = _opt(1800.0, "longest retry delay", _range(1, 86400))
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)


@dataclass(frozen=True)
class StoreConfig:
    """[store]: the products store."""

    url: str = _opt("", "SQLAlchemy URL; empty means the state database", _db_url)
    retention_days: float = _opt(365.0, "products older than this are purged", _positive)


@dataclass(frozen=True)
class BackfillConfig:
    """[backfill]: reprocessing the archive on Dask (``heliowatch backfill``)."""

    workers: int = _opt(2, "worker processes of the LocalCluster (one thread each); 0 runs in this process", _range(0, 512))
    memory_per_worker: str = _opt("3GiB", "memory limit of each worker (Dask's memory_limit)")
    dask_address: str = _opt("", "an existing Dask scheduler (tcp://HOST:PORT); empty starts a LocalCluster")
    window: int = _opt(6, "units of input in flight at once (bounds what the workers hold)", _range(1, 1000))
    gpu_worker: bool = _opt(False, "add one worker holding the GPU resource; model analyses run there (GPU box)")


@dataclass(frozen=True)
class StatusConfig:
    """[status]: the read-only status page, served next to /metrics."""

    enabled: bool = _opt(True, "serve the status page at / on the metrics port")
    stale_magnetogram_minutes: float = _opt(
        120.0, "the badge says stale when the newest magnetogram is older than this (0: off)", _range(0, 1e6)
    )
    stale_sharp_minutes: float = _opt(240.0, "the same for SHARP records (NRT latency is 1-2 h)", _range(0, 1e6))
    stale_aia_minutes: float = _opt(60.0, "the same for each AIA channel", _range(0, 1e6))
    jsoc_error_ratio: float = _opt(0.5, "degraded when this fraction of recent JSOC requests failed", _range(0, 1))
    jsoc_error_window_minutes: float = _opt(15.0, "how far back 'recent' JSOC requests go", _range(1, 1e6))
    epoch_mix_hours: float = _opt(24.0, "say so when the products shown are further apart in observation time", _range(0, 1e7))


_MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_AUTHORITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{2,}$")


def _model_id(v: Any) -> str | None:
    ok = _MODEL_ID_RE.match(v)
    return None if ok else f"must be a short name like 'heliowatch_0.1' (letters, digits, _ . -; got {v!r})"


def _authority(v: Any) -> str | None:
    ok = _AUTHORITY_RE.match(v)
    return None if ok else f"must be an IVOA authority id like 'heliowatch.example.org' (got {_short(v)})"


def _nonempty(v: Any) -> str | None:
    return None if v.strip() else "must not be empty (HEK requires it)"


@dataclass(frozen=True)
class ExportsConfig:
    """[exports]: who the community formats (CCMC Flare Scoreboard, HEK, VOEvent 2.0) say made the events."""

    model_id: str = _opt(
        "heliowatch_0.1",
        "the forecast method's short name at the CCMC Flare Scoreboard (methodname_version); names Flare_Forecast_<model_id>_*",
        _model_id,
    )
    frm_name: str = _opt(
        "heliowatch", "HEK FRM_Name prefix (<frm_name>-regions, -jets, -emergence) and IVORN resource", _model_id
    )
    frm_institute: str = _opt("heliowatch", "HEK FRM_Institute", _nonempty)
    frm_contact: str = _opt("heliowatch@localhost", "HEK FRM_Contact: who answers for the events", _nonempty)
    frm_url: str = _opt("http://localhost/heliowatch", "HEK FRM_URL: where the method is described", _nonempty)
    ivorn_authority: str = _opt(
        "heliowatch.localhost", "VOEvent IVORNs are ivo://<ivorn_authority>/<frm_name>#<event>", _authority
    )


@dataclass(frozen=True)
class Config:
    """The whole configuration; one attribute per TOML section."""

    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    jsoc: JsocConfig = field(default_factory=JsocConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    state: StateConfig = field(default_factory=StateConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    flares: FlaresConfig = field(default_factory=FlaresConfig)
    regions: RegionsConfig = field(default_factory=RegionsConfig)
    jets: JetsConfig = field(default_factory=JetsConfig)
    emergence: EmergenceConfig = field(default_factory=EmergenceConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    backfill: BackfillConfig = field(default_factory=BackfillConfig)
    exports: ExportsConfig = field(default_factory=ExportsConfig)

    @property
    def export_dir(self) -> Path:
        """Where ONNX exports live."""
        return self.models.export_dir if _is_set(self.models.export_dir) else self.daemon.state_dir / "models"

    @property
    def weights_dir(self) -> Path:
        """Where retrained weights go (and are looked for first)."""
        return self.models.weights_dir if _is_set(self.models.weights_dir) else self.daemon.state_dir / "weights"

    @property
    def maildir(self) -> Path:
        """Where maildir alerts go."""
        return self.alerts.maildir if _is_set(self.alerts.maildir) else self.daemon.state_dir / "maildir"

    @property
    def srs_dir(self) -> Path:
        """Where SRS files are read from (and the SWPC feed is cached)."""
        return self.regions.srs_dir if _is_set(self.regions.srs_dir) else self.daemon.state_dir / "srs"

    @property
    def aia_tables_dir(self) -> Path:
        """Where aiapy's calibration tables are cached."""
        return (
            self.jets.calibration_tables_dir
            if _is_set(self.jets.calibration_tables_dir)
            else self.daemon.state_dir / "aia-tables"
        )

    @property
    def trt_cache_dir(self) -> Path:
        """Where TensorRT engines live."""
        return self.models.trt_cache_dir if _is_set(self.models.trt_cache_dir) else self.export_dir / "trt"

    @property
    def state_url(self) -> str:
        """The state database URL, defaulting to SQLite under the state directory."""
        return self.state.url or f"sqlite:///{(self.daemon.state_dir / 'state.sqlite').resolve()}"

    def replace(self, **sections: Mapping[str, Any]) -> Config:
        """Return a copy with some keys of some sections replaced (used by the CLI options)."""
        new = {}
        for name, changes in sections.items():
            new[name] = dataclasses.replace(getattr(self, name), **changes)
        return dataclasses.replace(self, **new)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, path: tuple[str, ...]) -> Any:
    """Check ``value`` against the annotated type ``tp`` and convert paths/secrets."""
    origin = typing.get_origin(tp)
    if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
        msg = f"is {len(value)} characters long (at most {MAX_STRING_CHARS})"
        raise ConfigError(msg, path)
    if tp is Path:
        if not isinstance(value, str):
            msg = f"must be a path string (got {type(value).__name__})"
            raise ConfigError(msg, path)
        _check_path_text(value, path)
        return Path(value).expanduser()
    if tp is Secret:
        if not isinstance(value, str):
            msg = f"must be a string (got {type(value).__name__})"
            raise ConfigError(msg, path)
        return Secret(value)
    if tp is bool:
        if not isinstance(value, bool):
            msg = f"must be true or false (got {_short(value)})"
            raise ConfigError(msg, path)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            msg = f"must be an integer (got {_short(value)})"
            raise ConfigError(msg, path)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            msg = f"must be a number (got {_short(value)})"
            raise ConfigError(msg, path)
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            number = math.inf
        if not math.isfinite(number):
            msg = f"must be a finite number (got {_short(value)})"
            raise ConfigError(msg, path)
        return number
    if tp is str:
        if not isinstance(value, str):
            msg = f"must be a string (got {_short(value)})"
            raise ConfigError(msg, path)
        return value
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            msg = f"must be a list of {_type_name(inner)} (got {_short(value)})"
            raise ConfigError(msg, path)
        return [_coerce(v, inner, (*path[:-1], f"{path[-1]}[{i}]")) for i, v in enumerate(value)]
    if origin in (types.UnionType, typing.Union):
        msg = "internal: union types are not supported in config"
        raise ConfigError(msg, path)
    msg = f"internal: unsupported type {tp!r}"
    raise ConfigError(msg, path)


def _check_path_text(value: str, key: tuple[str, ...]) -> None:
    """A path the OS can use: no NUL, no component longer than NAME_MAX."""
    if "\0" in value:
        msg = "must not contain a NUL character"
        raise ConfigError(msg, key)
    long = next((part for part in value.split("/") if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES), None)
    if long is not None:
        msg = f"has a file name of {len(long.encode('utf-8', 'surrogateescape'))} bytes (at most {MAX_NAME_BYTES})"
        raise ConfigError(msg, key)


def _check_dirs(cfg: Config) -> None:
    """Directory keys that name an existing file (not a directory) are refused at load."""
    dirs = {
        ("daemon", "state_dir"): cfg.daemon.state_dir,
        ("daemon", "output_dir"): cfg.daemon.output_dir,
        ("models", "export_dir"): cfg.models.export_dir,
        ("models", "weights_dir"): cfg.models.weights_dir,
        ("models", "trt_cache_dir"): cfg.models.trt_cache_dir,
        ("alerts", "maildir"): cfg.alerts.maildir,
        ("regions", "srs_dir"): cfg.regions.srs_dir,
        ("jets", "calibration_tables_dir"): cfg.jets.calibration_tables_dir,
    }
    for key, p in dirs.items():
        if not _is_set(p):
            continue
        try:
            is_file = p.exists() and not p.is_dir()
        except OSError:  # ENAMETOOLONG and the like: the start-up check reports it in one line
            is_file = False
        if is_file:
            msg = f"{p} is a file, not a directory"
            raise ConfigError(msg, key)


def _build(cls: type, data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(known)}"
            msg = f"unknown key{hint}"
            raise ConfigError(msg, (*path, key))
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        if name not in data:
            continue
        tp = hints[name]
        sub = (*path, name)
        if dataclasses.is_dataclass(tp):
            if not isinstance(data[name], Mapping):
                msg = "must be a table"
                raise ConfigError(msg, sub)
            kwargs[name] = _build(tp, data[name], sub)  # type: ignore[arg-type]
            continue
        value = _coerce(data[name], tp, sub)
        check = f.metadata.get("check")
        if check is not None:
            problem = check(value)
            if problem:
                raise ConfigError(problem, sub)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e), path) from e


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``HELIOWATCH_A__B=value`` into ``{"a": {"b": value}}``; values parse as TOML if they can."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX) :]:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        # RecursionError: "[[[[...": ValueError: an integer of thousands of digits; both are a plain string.
        except (tomllib.TOMLDecodeError, RecursionError, ValueError):
            value = raw
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                msg = f"environment variable {name} conflicts with another override"
                raise ConfigError(msg, tuple(parts))
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def default_config_text() -> str:
    """Return the documented default ``config.toml`` shipped with the package."""
    return resources.files("heliowatch.daemon").joinpath("default_config.toml").read_text()


def _is_set(p: Path) -> bool:
    """An empty path in the config means "the default"."""
    return str(p) not in ("", ".")


def _read_credential(file: Path, environ: Mapping[str, str], key: tuple[str, ...]) -> Secret | None:
    """A secret from a file; relative names are read from ``$CREDENTIALS_DIRECTORY`` (systemd)."""
    if not _is_set(file):
        return None
    cred = file if file.is_absolute() else Path(environ.get("CREDENTIALS_DIRECTORY", "")) / file
    try:
        return Secret(cred.read_text().strip())
    except OSError as e:
        msg = f"cannot read {cred}: {e.strerror}"
        raise ConfigError(msg, key) from e


def _anchor_dirs(data: dict[str, Any], base: Path, cls: type = Config) -> None:
    """Make the relative directories of a config file relative to the file's directory, in place.

    Otherwise ``state_dir = "./heliowatch-state"`` would be a different directory for every
    working directory a command runs in. ``*_file`` keys are left alone: a relative one names a
    systemd credential in ``$CREDENTIALS_DIRECTORY``. An empty value (or ``"."`` for the keys
    where it means the default) stays the default.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        value = data.get(f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            _anchor_dirs(value, base, tp)  # type: ignore[arg-type]
        elif tp is Path and isinstance(value, str) and not f.name.endswith("_file"):
            default_like = value == "" or (value == "." and f.name != "state_dir")
            p = Path(value).expanduser()
            if not default_like and not p.is_absolute():
                data[f.name] = str(base / p)


def load_config(path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Load, merge and validate the configuration.

    Parameters
    ----------
    path : pathlib.Path or None
        A TOML file; its relative directories (``daemon.state_dir``, ...) are relative to the
        file's directory. ``None`` uses the defaults alone (the embedded offline replay, state
        in ``./heliowatch-state`` under the working directory).
    environ : mapping or None
        Environment used for ``HELIOWATCH_*`` overrides; ``os.environ`` by default.

    Returns
    -------
    Config
        The validated configuration.

    Raises
    ------
    ConfigError
        With the key path of the first problem found.
    """
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_toml(Path(path))
        # Where the file was named, not where a symlink points: the repository's config.toml links
        # to the packaged default, and its demo state belongs beside the link.
        _anchor_dirs(data, Path(os.path.abspath(path)).parent)
    _merge(data, _env_overrides(environ))
    cfg: Config = _build(Config, data, ())
    _check_dirs(cfg)
    secret = _read_credential(cfg.jsoc.email_file, environ, ("jsoc", "email_file"))
    if secret is not None:
        problem = _email(secret)
        if problem:
            raise ConfigError(problem, ("jsoc", "email_file"))
        cfg = cfg.replace(jsoc={"email": secret})
    pw = _read_credential(cfg.alerts.smtp.password_file, environ, ("alerts", "smtp", "password_file"))
    if pw is not None:
        cfg = dataclasses.replace(
            cfg, alerts=dataclasses.replace(cfg.alerts, smtp=dataclasses.replace(cfg.alerts.smtp, password=pw))
        )
    if cfg.alerts.smtp.username and not cfg.alerts.smtp.password and cfg.alerts.transport == "smtp":
        msg = "a username needs a password (HELIOWATCH_ALERTS__SMTP__PASSWORD or password_file)"
        raise ConfigError(msg, ("alerts", "smtp", "password"))
    return _with_webhook_secrets(cfg, environ)


def _read_toml(path: Path) -> dict[str, Any]:
    """Parse a config file; every way it can be unreadable is a one-line ConfigError."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError as e:
        msg = f"config file {path} does not exist"
        raise ConfigError(msg) from e
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        msg = f"cannot read config file {path}: {getattr(e, 'strerror', None) or e}"
        raise ConfigError(msg) from e
    if len(raw) > MAX_CONFIG_BYTES:
        msg = f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB; is it the right file?"
        raise ConfigError(msg)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        msg = f"{path} is not UTF-8 text (byte {e.start} is 0x{raw[e.start]:02x}); TOML files are UTF-8"
        raise ConfigError(msg) from e
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = f"{path} is not valid TOML: {e}"
        raise ConfigError(msg) from e
    except RecursionError as e:  # tomllib recurses once per nesting level
        msg = f"{path} nests arrays or tables too deeply"
        raise ConfigError(msg) from e
    except ValueError as e:  # an integer of thousands of digits (int max_str_digits)
        msg = f"{path} is not valid TOML: {str(e)[:120]}"
        raise ConfigError(msg) from e


def _with_webhook_secrets(cfg: Config, environ: Mapping[str, str]) -> Config:
    """Read ``[alerts.webhook]``'s URL and header value from their files, and check them."""
    w = cfg.alerts.webhook
    key = ("alerts", "webhook")
    url = _read_credential(w.url_file, environ, (*key, "url_file"))
    if url is not None:
        problem = _webhook_url(url)
        if problem:
            raise ConfigError(problem, (*key, "url_file"))
        w = dataclasses.replace(w, url=url)
    value = _read_credential(w.header_value_file, environ, (*key, "header_value_file"))
    if value is not None:
        w = dataclasses.replace(w, header_value=value)
    if any(c in w.header_value.reveal() for c in "\r\n"):
        msg = "must be one line (the value is not shown)"
        raise ConfigError(msg, (*key, "header_value"))
    if w.enabled and not w.url:
        msg = "needed when the webhook is enabled (HELIOWATCH_ALERTS__WEBHOOK__URL or url_file)"
        raise ConfigError(msg, (*key, "url"))
    if w.enabled and w.header and not w.header_value:
        msg = f"header {w.header!r} needs a value (HELIOWATCH_ALERTS__WEBHOOK__HEADER_VALUE or header_value_file)"
        raise ConfigError(msg, (*key, "header_value"))
    return dataclasses.replace(cfg, alerts=dataclasses.replace(cfg.alerts, webhook=w))


def iter_documented_keys(cls: type = Config, prefix: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """List ``(key.path, doc)`` for every leaf key, so tests can check config.toml documents them all."""
    out: list[tuple[str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += iter_documented_keys(tp, (*prefix, f.name))  # type: ignore[arg-type]
        else:
            out.append((".".join((*prefix, f.name)), f.metadata.get("doc", "")))
    return out
