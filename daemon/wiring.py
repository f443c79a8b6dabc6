"""The composition root: the one place that turns a :class:`~heliowatch.daemon.config.Config` into objects.

In the manner of Synapse's ``server.py``: the clock, the state and products databases, the
alert outbox and its transport, the JSOC client (or a replay stand-in), the model runtimes
with their options, the products, the fan-out, the sources and their ingestors, and the
metrics are all built here, in this order, and handed down. Nothing below the daemon reads
the configuration or builds its own clock; the lower layers declare small Protocols (an
ingest state, processed keys, observers) and get these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import structlog

from heliowatch.daemon.config import Config
from heliowatch.daemon.errors import ConfigError
from heliowatch.daemon.metrics import Metrics
from heliowatch.daemon.state import StateStore
from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import Clock, FixedClock, SystemClock
from heliowatch.models.emergence.averaging import AveragingConfig
from heliowatch.models.emergence.forecast import EmergenceForecaster
from heliowatch.models.emergence.patches import PatchGrid
from heliowatch.models.flares.forecaster import FlareForecaster
from heliowatch.models.jets.stream import StreamParams
from heliowatch.models.regions.loaders import region_classifier, region_detector
from heliowatch.models.runtime.base import RuntimeObserver, RuntimeOptions
from heliowatch.models.runtime.runtime import Runtime, open_runtime
from heliowatch.pipelines.aia_calibration import CalibrationTables
from heliowatch.pipelines.alert_rules import Rules
from heliowatch.pipelines.alerts import AlertCenter
from heliowatch.pipelines.errors import SourceUnavailable
from heliowatch.pipelines.events import EventSource
from heliowatch.pipelines.exports import ExportSettings
from heliowatch.pipelines.fanout import FanOut
from heliowatch.pipelines.frames import Source
from heliowatch.pipelines.ingest import Ingestor, RetryBackoff
from heliowatch.pipelines.jsoc import JsocClient, RetryPolicy
from heliowatch.pipelines.mail import MaildirTransport, SmtpTransport, Transport
from heliowatch.pipelines.products.base import Catalogue, Product
from heliowatch.pipelines.products.data_health import DataHealthProduct
from heliowatch.pipelines.products.emergence import EmergenceProduct, EmergenceSnapshot
from heliowatch.pipelines.products.flares import FlaresProduct, FlaresSnapshot
from heliowatch.pipelines.products.jets import JetsProduct, JetsSnapshot
from heliowatch.pipelines.products.regions import RegionsProduct, RegionsSnapshot
from heliowatch.pipelines.srs import SRSFeed
from heliowatch.pipelines.standin.archive import Archive, ReplayClock, demo_archive_path
from heliowatch.pipelines.standin.faults import FaultSpec
from heliowatch.pipelines.standin.server import StandinServer
from heliowatch.pipelines.store.ledger import LedgerStore
from heliowatch.pipelines.store.outbox import OutboxStore
from heliowatch.pipelines.store.products import ProductStore
from heliowatch.pipelines.verification import Ledger, Verifier
from heliowatch.pipelines.webhook import WebhookTransport

__all__ = [
    "REPLAY_EMAIL",
    "App",
    "alert_center",
    "build",
    "build_products",
    "build_worker_products",
    "export_settings",
    "jets_product",
    "jsoc_client",
    "models_in_use",
    "open_replay",
    "runtime_options",
    "sources",
]

log = structlog.get_logger(__name__)

REPLAY_EMAIL = "replay@heliowatch.invalid"


def open_replay(
    archive: str, *, latency_s: float, speed: float, max_gap_s: float, fault: str | None = None, latency_jitter_s: float = 0.0
) -> tuple[StandinServer, ReplayClock]:
    """Start a JSOC stand-in with a replay clock over ``archive`` ("demo" or a directory), on 127.0.0.1.

    Returns
    -------
    (StandinServer, ReplayClock)
        The serving stand-in and its clock.

    Raises
    ------
    UsageError
        If the archive is not a directory of JSOC-named FITS files, or the fault spec is bad.
    """
    root = demo_archive_path() if archive == "demo" else Path(archive)
    if not root.is_dir():
        msg = f"replay archive {root} is not a directory (use 'demo' for the bundled one)"
        raise UsageError(msg)
    try:
        faults = FaultSpec.parse(fault)
    except ValueError as e:
        raise UsageError(str(e)) from e
    arch = Archive(
        root, latency_s=latency_s, aia_out_of_order_s=faults.aia_out_of_order, latency_jitter_s=latency_jitter_s, seed=faults.seed
    )
    if not arch.records:
        msg = f"replay archive {root} holds no FITS files named like JSOC exports (<series>.<keys>.<segment>.fits)"
        raise UsageError(msg)
    clock = ReplayClock(arch.visibility_times(), speed=speed, max_gap_s=max_gap_s)
    return StandinServer(arch, faults=faults, clock=clock).start(), clock


def runtime_options(cfg: Config, *, observer: RuntimeObserver | None = None) -> RuntimeOptions:
    """``[models]`` as the runtime's options (retrained weights looked for first)."""
    m = cfg.models
    return RuntimeOptions(
        export_dir=cfg.export_dir,
        cache_dir=cfg.trt_cache_dir,
        backend=m.backend,
        fp16=m.fp16,
        torch_compile=m.torch_compile,
        max_batch=m.max_batch,
        weights_dirs=(cfg.weights_dir,),
        observer=observer,
    )


def sources(cfg: Config) -> list[Source]:
    """The JSOC sources the configuration enables."""
    j = cfg.jsoc
    out = []
    if "magnetogram" in j.enabled_sources:
        out.append(Source("magnetogram", j.magnetogram_series, (j.magnetogram_segment,)))
    if "sharp" in j.enabled_sources:
        out.append(Source("sharp", j.sharp_series, tuple(j.sharp_segments)))
    if "aia" in j.enabled_sources:
        # NRT AIA arrives out of time order; re-query the last 30 min (deduplicated on record).
        out += [Source("aia", j.aia_series, (j.aia_segment,), wavelength=w, reorder_window_s=1800) for w in j.aia_wavelengths]
    return out


def transport(cfg: Config) -> Transport:
    """The mail transport of ``[alerts]``."""
    a = cfg.alerts
    if a.transport == "maildir":
        return MaildirTransport(cfg.maildir.resolve())
    s = a.smtp
    return SmtpTransport(
        host=s.host,
        port=s.port,
        starttls=s.starttls,
        username=s.username,
        password=s.password.reveal(),
        timeout_s=s.timeout_s,
        cafile=s.cafile,
    )


def webhook(cfg: Config) -> WebhookTransport | None:
    """The webhook of ``[alerts.webhook]``, or None when it is not enabled."""
    w = cfg.alerts.webhook
    if not w.enabled:
        return None
    headers = {w.header: w.header_value.reveal()} if w.header else {}
    return WebhookTransport(w.url.reveal(), format=w.format, timeout_s=w.timeout_s, headers=headers)


def alert_center(
    cfg: Config, state: StateStore, *, metrics: Metrics | None = None, clock: Clock | None = None
) -> AlertCenter | None:
    """The outbox and its delivery, or None with ``alerts.transport = 'none'`` and no webhook."""
    a = cfg.alerts
    hook = webhook(cfg)
    if a.transport == "none" and hook is None:
        return None
    return AlertCenter(
        OutboxStore(state.engine),
        None if a.transport == "none" else transport(cfg),
        webhook=hook,
        sender=a.sender,
        recipients=list(a.recipients),
        list_id=a.list_id,
        dedup_window_s=a.dedup_window_minutes * 60,
        digest_threshold=a.digest_threshold,
        retry_base_s=a.retry_base_s,
        retry_max_s=a.retry_max_s,
        observer=metrics,
        clock=clock,
    )


def _events(cfg: Config, standin: StandinServer | None, clock: Clock) -> EventSource | None:
    f = cfg.flares
    if f.event_source == "replay" and standin is not None:
        files = sorted((standin.archive.root / "events").glob("*.json"))
        return EventSource(files=files, clock=clock) if files else None
    if f.event_source == "files":
        return EventSource(files=[Path(p) for p in f.event_files], clock=clock)
    if f.event_source == "swpc":
        return EventSource(
            url=f.event_url,
            cache=cfg.daemon.state_dir / "events" / "swpc-xray-flares.json",
            refresh_s=f.event_refresh_s,
            clock=clock,
        )
    return None


def _srs_feed(cfg: Config, standin: StandinServer | None) -> SRSFeed | None:
    g = cfg.regions
    if g.srs_source == "replay" and standin is not None:
        root = standin.archive.root / "srs"
        return SRSFeed(root) if root.is_dir() else None
    if g.srs_source == "dir":
        return SRSFeed(cfg.srs_dir)
    if g.srs_source == "swpc":
        return SRSFeed(cfg.srs_dir, url=g.srs_url, refresh_s=g.srs_refresh_s)
    return None


@dataclass
class App:
    """Everything a running heliowatch is made of (built by :func:`build`)."""

    cfg: Config
    clock: Clock
    speed: float
    metrics: Metrics
    state: StateStore
    store: ProductStore
    alerts: AlertCenter | None
    rules: Rules
    catalogue: Catalogue
    products: list[Product]
    fanout: FanOut
    verifier: Verifier | None
    client: JsocClient
    sources: list[Source]
    ingestors: list[Ingestor]
    standin: StandinServer | None = None
    replay_clock: ReplayClock | None = None
    product_by_name: dict[str, Product] = field(default_factory=dict)

    @property
    def outputs(self) -> Path:
        """The output directory (absolute: products record paths to each other)."""
        return self.cfg.daemon.outputs.resolve()

    def close(self) -> None:
        """Stop the stand-in and close the databases."""
        if self.standin is not None:
            self.standin.stop()
        self.state.close()


def models_in_use(cfg: Config) -> list[str]:
    """The registered models the configured products open through the runtime (what a first run exports)."""
    m, j = cfg.models, cfg.jets
    names = ["region-classifier"] if m.region_classifier == "cnn" else []
    names += ["region-detector"] if m.region_detector == "cnn" else []
    names += [cfg.flares.cnn_model] if cfg.flares.enabled and cfg.flares.cnn_model else []
    names += ["emergence-fcn"] if cfg.emergence.enabled else []
    if j.enabled and "aia" in cfg.jsoc.enabled_sources and "convlstm" in j.detectors:
        names += ["jet-encoder", "jet-head"]
    return names


def export_settings(cfg: Config) -> ExportSettings:
    """Who the CCMC, HEK and VOEvent files say made the products; a replay's events are test events."""
    x = cfg.exports
    try:
        installed = version("heliowatch")
    except PackageNotFoundError:
        installed = "0+unknown"
    return ExportSettings(
        model_id=x.model_id,
        frm_name=x.frm_name,
        frm_version=installed,
        frm_institute=x.frm_institute,
        frm_contact=x.frm_contact,
        frm_url=x.frm_url,
        ivorn_authority=x.ivorn_authority,
        test=cfg.jsoc.server == "replay",
    )


def build_products(
    cfg: Config,
    *,
    options: RuntimeOptions,
    catalogue: Catalogue,
    rules: Rules,
    outputs: Path,
    events: EventSource | None,
    srs: SRSFeed | None,
    clock: Clock,
) -> list[Product]:
    """The products the configuration enables, in the order the fan-out runs them."""
    m = cfg.models
    cnn, cnn_model = region_classifier(m.region_classifier, options)
    detect, det_model = region_detector(m.region_detector, options)
    products: list[Product] = [DataHealthProduct()]
    if cfg.flares.enabled:
        flare_cnn: Runtime | None = open_runtime(cfg.flares.cnn_model, options) if cfg.flares.cnn_model else None
        products.append(
            FlaresProduct(
                forecaster=FlareForecaster(),
                events=events,
                catalogue=catalogue,
                outputs=outputs,
                rules=rules,
                cnn=flare_cnn,
                occlusion_threshold=cfg.flares.occlusion_threshold,
                occlusion_maps=cfg.flares.occlusion_maps,
                clock=clock,
                exports=export_settings(cfg),
            )
        )
    products.append(
        RegionsProduct(
            detector=detect,
            detector_model=det_model,
            classifier=cnn,
            classifier_model=cnn_model,
            srs=srs,
            catalogue=catalogue,
            outputs=outputs,
            rules=rules,
            srs_match_deg=cfg.regions.srs_match_deg,
            limb_guard_deg=cfg.regions.limb_guard_deg,
            clock=clock,
            exports=export_settings(cfg),
        )
    )
    if cfg.emergence.enabled:
        products.append(emergence_product(cfg, options, catalogue=catalogue, rules=rules, outputs=outputs))
    if cfg.jets.enabled and "aia" in cfg.jsoc.enabled_sources:
        products.append(jets_product(cfg, options, rules=rules, outputs=outputs))
    return products


def emergence_product(
    cfg: Config, options: RuntimeOptions, *, catalogue: Catalogue, rules: Rules, outputs: Path
) -> EmergenceProduct:
    """The emergence product of the configuration: the FCN through the runtime, MTOT beside its weights."""
    e = cfg.emergence
    fcn = open_runtime("emergence-fcn", options)
    forecaster = EmergenceForecaster.from_weights(fcn.predict, root=fcn.weights_root)
    grid = PatchGrid(spacing_deg=e.grid_spacing_deg, max_cmd_deg=e.max_cmd_deg, max_lat_deg=e.max_lat_deg)
    averaging = AveragingConfig(
        window_s=e.window_minutes * 60.0,
        stride_s=e.stride_minutes * 60.0,
        min_fraction=e.min_fraction,
        max_gap_s=e.max_gap_hours * 3600.0,
    )
    mtot_info = forecaster.mtot.info
    return EmergenceProduct(
        forecaster=forecaster,
        catalogue=catalogue,
        outputs=outputs,
        rules=rules,
        grid=grid,
        averaging=averaging,
        method=e.method,
        threshold=e.threshold,
        min_windows=e.min_windows,
        known_region_deg=e.known_region_deg,
        verify_hours=e.verify_hours,
        model_info={"fcn": fcn.info, "mtot": {"kind": "mtot-lda", "threshold": forecaster.mtot.threshold, **mtot_info}},
        synthetic_model=bool(fcn.info.get("synthetic", True) or mtot_info.get("synthetic", True)),
        exports=export_settings(cfg),
    )


def jets_product(cfg: Config, options: RuntimeOptions, *, rules: Rules, outputs: Path) -> JetsProduct:
    """The jet product of the configuration: its detectors, windows and calibration tables."""
    j = cfg.jets
    encoder = head = None
    if "convlstm" in j.detectors:
        encoder, head = open_runtime("jet-encoder", options), open_runtime("jet-head", options)
    threshold = j.threshold
    if not threshold:
        card_t = (head.card.get("threshold") or {}).get("value") if head is not None else None
        threshold = float(card_t) if isinstance(card_t, int | float) else 0.5
    params = StreamParams(
        spacing_s=j.spacing_s,
        length=j.window_frames,
        min_frames=min(j.min_frames, j.window_frames),
        max_gap=j.max_gap_frames,
        threshold=threshold,
        close_after_s=j.close_after_s,
        network_alone_min_p=j.network_alone_min_p,
        network_max_windows=j.network_max_windows,
        reorder_hold_s=j.reorder_hold_s,
        stride=j.tile_stride,
    )
    return JetsProduct(
        params=params,
        encoder=encoder,
        head=head,
        outputs=outputs,
        rules=rules,
        use_baseline="baseline" in j.detectors,
        tables=CalibrationTables(cfg.aia_tables_dir),
        fetch_tables=j.fetch_calibration_tables and cfg.jsoc.server != "replay",
        register="aiapy" if j.register == "aiapy" else "pooled",
        exports=export_settings(cfg),
    )


def jsoc_client(cfg: Config, *, server: str | None = None, email: str | None = None, observer: Any = None) -> JsocClient:
    """The one JSOC client of a configuration (``server``/``email`` override it: a replay's stand-in)."""
    j = cfg.jsoc
    return JsocClient(
        server if server is not None else j.server,
        email=email if email is not None else j.email.reveal(),
        timeout_s=j.timeout_s,
        retry=RetryPolicy(retries=j.retries, base_s=j.backoff_base_s, max_s=j.backoff_max_s),
        observer=observer,
        max_file_bytes=int(j.max_file_mb * 1024 * 1024),
        export_wait_s=j.export_wait_s,
    )


def build(cfg: Config, *, once: bool = False, fault: str | None = None) -> App:
    """Build a heliowatch from its configuration (start-up steps in order).

    Raises
    ------
    ConfigError
        When a configured series or keyword does not exist at the JSOC.
    UsageError
        For a bad replay archive or fault spec.
    """
    cfg.daemon.state_dir.mkdir(parents=True, exist_ok=True)
    outputs = cfg.daemon.outputs.resolve()
    outputs.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()
    standin: StandinServer | None = None
    replay_clock: ReplayClock | None = None
    clock: Clock = SystemClock()
    speed = 1.0
    server, email = cfg.jsoc.server, cfg.jsoc.email.reveal()
    if server == "replay":
        r = cfg.replay
        standin, replay_clock = open_replay(
            r.archive,
            latency_s=r.latency_s,
            speed=r.speed,
            max_gap_s=r.max_gap_s,
            fault=fault,
            latency_jitter_s=r.latency_jitter_s,
        )
        if once:
            replay_clock.jump_to_end()
        server, clock, speed = standin.url, replay_clock, r.speed
        email = email or REPLAY_EMAIL
        log.info(
            "replay_started", archive=r.archive, url=server, speed=speed, records=sum(map(len, standin.archive.records.values()))
        )
    state = StateStore(cfg.state_url, clock=clock)
    store = ProductStore(cfg.store.url or state.engine, clock=clock)
    alerts = alert_center(cfg, state, metrics=metrics)
    rules = Rules(**cfg.alerts.rules.__dict__)
    j = cfg.jsoc
    client = jsoc_client(cfg, server=server, email=email, observer=metrics)
    srcs = sources(cfg)
    if standin is not None:
        present = set(standin.archive.series_names())
        for s in [s for s in srcs if s.series not in present]:
            log.warning("source_not_in_archive", series=s.series)
        srcs = [s for s in srcs if s.series in present]
    _check_sources(client, srcs)
    metrics.init_series([s.name for s in srcs])
    catalogue = Catalogue()
    events = _events(cfg, standin, clock)
    if events is None and cfg.flares.enabled:
        log.warning("flare_events_unavailable", source=cfg.flares.event_source, effect="forecasts marked degraded")
    options = runtime_options(cfg, observer=metrics)
    products = build_products(
        cfg,
        options=options,
        catalogue=catalogue,
        rules=rules,
        outputs=outputs,
        events=events,
        srs=_srs_feed(cfg, standin),
        clock=clock,
    )
    metrics.init_products([p.name for p in products])
    ledger = LedgerStore(state.engine)
    verifier = Verifier(Ledger(ledger), events, days=cfg.flares.verification_days) if cfg.flares.enabled else None
    fanout = FanOut(products, store=store, keys=state, outputs=outputs, alerts=alerts, ledger=ledger, observer=metrics)
    frames_dir = cfg.daemon.state_dir / "frames"
    ingestors = [
        Ingestor(
            s,
            client,
            state,
            frames_dir,
            clock=clock,
            observer=metrics,
            lookback_hours=j.lookback_hours,
            max_records=j.max_records_per_poll,
            first_start=replay_clock.start - 3600 if replay_clock is not None else None,
            ingest_log=outputs / "ingest.jsonl",
            backoff=RetryBackoff(speed=speed),
        )
        for s in srcs
    ]
    app = App(
        cfg=cfg,
        clock=clock,
        speed=speed,
        metrics=metrics,
        state=state,
        store=store,
        alerts=alerts,
        rules=rules,
        catalogue=catalogue,
        products=products,
        fanout=fanout,
        verifier=verifier,
        client=client,
        sources=srcs,
        ingestors=ingestors,
        standin=standin,
        replay_clock=replay_clock,
        product_by_name={p.name: p for p in products},
    )
    _watch(app)
    if replay_clock is not None:
        replay_clock.restart()
    return app


def _watch(app: App) -> None:
    """Scrape-time metrics from the products' snapshots."""
    m = app.metrics
    for p in app.products:
        if isinstance(p, RegionsProduct):
            m.watch_regions(partial(_regions_snapshot, p))
        elif isinstance(p, FlaresProduct):
            m.watch_flares(partial(_flares_snapshot, p))
        elif isinstance(p, JetsProduct):
            m.watch_jets(partial(_jets_snapshot, p), clock=app.clock)
        elif isinstance(p, EmergenceProduct):
            m.watch_emergence(partial(_emergence_snapshot, p))
    if app.verifier is not None:
        m.watch_verification(app.verifier)
    if app.alerts is not None:
        m.watch_outbox(app.alerts.pending)
        m.init_alerts(app.alerts.channels)


def _regions_snapshot(p: RegionsProduct) -> RegionsSnapshot:
    return p.latest


def _flares_snapshot(p: FlaresProduct) -> FlaresSnapshot:
    return p.snapshot


def _jets_snapshot(p: JetsProduct) -> JetsSnapshot:
    return p.latest


def _emergence_snapshot(p: EmergenceProduct) -> EmergenceSnapshot:
    return p.latest


def build_worker_products(cfg: Config, *, archive: Path | None = None) -> list[Product]:
    """The products as a backfill worker builds them for their pure steps (``analyse``, ``finish``).

    The flare history comes from the replay archive's event list (``archive``) or the configured
    event files and the SWPC feed's cache; a backfill sees every event, which is no look-ahead:
    the forecasts only use events before their issue time.
    """
    files: list[Path] = []
    if archive is not None:
        files += sorted((archive / "events").glob("*.json"))
    files += [Path(p) for p in cfg.flares.event_files]
    cache = cfg.daemon.state_dir / "events" / "swpc-xray-flares.json"
    if cache.exists():
        files.append(cache)
    events = EventSource(files=files, clock=FixedClock(4.0e9)) if files else None
    srs = None  # naming by the SRS happens in the driver's advance step
    return build_products(
        cfg,
        options=runtime_options(cfg),
        catalogue=Catalogue(),
        rules=Rules(**cfg.alerts.rules.__dict__),
        outputs=cfg.daemon.outputs.resolve(),
        events=events,
        srs=srs,
        clock=SystemClock(),
    )


def _check_sources(client: JsocClient, srcs: list[Source]) -> None:
    """series_struct check at start-up: a missing series or keyword is a config error."""
    field_of = {"magnetogram": "magnetogram_series", "sharp": "sharp_series", "aia": "aia_series"}
    for s in {s.series: s for s in srcs}.values():
        try:
            client.check_series(s.series, keys=["T_REC", "QUALITY"], segments=s.segments)
        except SourceUnavailable as e:
            if "lacks" in str(e) or "does not exist" in str(e):
                raise ConfigError(str(e), ("jsoc", field_of[s.kind])) from e
            # The JSOC is down: keep going; polls retry and the metrics show it.
            log.warning("startup_check_deferred", series=s.series, error=str(e)[:300])
