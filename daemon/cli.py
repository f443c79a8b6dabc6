"""The ``heliowatch`` command line (the contract in DESIGN.md).

Every command takes ``--config``. Bad input (config, files, options) ends with one line on
stderr and exit status 2; an unavailable data source with exit status 3; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from heliowatch.daemon.errors import ConfigError, HeliowatchError, SourceUnavailable, UsageError

__all__ = ["main", "progress_bar", "register"]

#: Sub-command registrars; later subpackages add theirs with :func:`register`.
_REGISTRARS: list[Callable[[Any], None]] = []
#: Commands with their own parser, matched on the leading words (``forecast backtest``).
_COMMANDS: dict[tuple[str, ...], Callable[[], argparse.ArgumentParser]] = {}


def register(fn: Callable[[Any], None]) -> Callable[[Any], None]:
    """Decorator: ``fn(subparsers)`` adds a sub-command."""
    _REGISTRARS.append(fn)
    return fn


def register_command(words: tuple[str, ...], build: Callable[[], argparse.ArgumentParser]) -> None:
    """A command whose leading words select a parser of its own (e.g. ``forecast backtest``)."""
    _COMMANDS[words] = build


def progress_bar(label: str) -> Callable[[int, int, str], None]:
    """A ``(done, total, what)`` callback drawing a tqdm bar on stderr (a new bar when ``total`` changes)."""
    from tqdm import tqdm  # noqa: PLC0415

    bar: dict[str, Any] = {}

    def cb(done: int, total: int, what: str) -> None:
        if "b" not in bar or bar["b"].total != total:  # a new phase (e.g. synthesising, then epochs)
            if "b" in bar:
                bar["b"].close()
            bar["b"] = tqdm(total=total, desc=label, file=sys.stderr, leave=False)
        bar["b"].set_postfix_str(what)
        bar["b"].update(done - bar["b"].n)

    return cb


def _load(args: argparse.Namespace) -> Any:
    from heliowatch.daemon.config import load_config  # noqa: PLC0415

    return load_config(Path(args.config) if args.config else None)


def _setup_logging(cfg: Any) -> None:
    from heliowatch.daemon.logs import configure_logging  # noqa: PLC0415

    lg = cfg.logging
    configure_logging(lg.level, lg.format, journald_prefix=lg.journald_priority_prefix)


# -- run --------------------------------------------------------------------------------------
def _cmd_run(args: argparse.Namespace) -> int:
    from heliowatch.daemon.service import Daemon  # noqa: PLC0415

    cfg = _load(args)
    changes: dict[str, dict[str, Any]] = {}
    if args.replay:
        changes["jsoc"] = {"server": "replay"}
        changes["replay"] = {"archive": args.replay}
    if args.speed is not None:
        if args.speed <= 0:
            msg = "--speed must be > 0"
            raise UsageError(msg)
        changes.setdefault("replay", {})["speed"] = args.speed
    if changes:
        cfg = cfg.replace(**changes)
    _setup_logging(cfg)
    daemon = Daemon(cfg, once=args.once, fault=args.fault, keep_running=args.keep_running)
    summary = daemon.run()
    total = sum(summary.ingested.values())
    lines = [
        f"heliowatch: {total} record(s) ingested in {summary.polls} poll(s): "
        + ", ".join(f"{k}={v}" for k, v in sorted(summary.ingested.items())),
        f"  skipped for QUALITY: {sum(summary.skipped_quality.values())}, "
        f"rejected (will retry): {sum(summary.rejected.values())}",
        f"  frames:        {summary.frames_dir}",
        f"  ingest log:    {summary.ingest_log}",
        f"  metrics:       {summary.metrics_file}",
        f"  run summary:   {Path(summary.metrics_file).parent / 'run-summary.json'}",
        f"  forecasts:     {Path(summary.metrics_file).parent / 'forecasts'}",
        f"  alerts:        {cfg.maildir.resolve() if cfg.alerts.transport == 'maildir' else cfg.alerts.transport}",
        f"  state:         {cfg.daemon.state_dir.resolve() / 'state.sqlite'}"
        if not cfg.state.url
        else "  state:         (configured URL)",
    ]
    print("\n".join(lines), file=sys.stderr)
    return 0


# -- jsoc-standin ------------------------------------------------------------------------------
def _cmd_standin(args: argparse.Namespace) -> int:
    from heliowatch.daemon.service import demo_archive_path  # noqa: PLC0415
    from heliowatch.pipelines.standin.archive import Archive, ReplayClock  # noqa: PLC0415
    from heliowatch.pipelines.standin.faults import FaultSpec  # noqa: PLC0415
    from heliowatch.pipelines.standin.server import StandinServer  # noqa: PLC0415

    root = demo_archive_path() if args.archive == "demo" else Path(args.archive)
    if not root.is_dir():
        msg = f"archive {root} is not a directory"
        raise UsageError(msg)
    try:
        faults = FaultSpec.parse(args.fault)
    except ValueError as e:
        raise UsageError(str(e)) from e
    arch = Archive(root, latency_s=args.latency, aia_out_of_order_s=faults.aia_out_of_order, seed=faults.seed)
    clock = ReplayClock(arch.visibility_times(), speed=args.speed, max_gap_s=args.max_gap) if args.speed else None
    try:
        srv = StandinServer(arch, faults=faults, clock=clock, host=args.host, port=args.port)
    except OSError as e:
        msg = f"cannot listen on {args.host}:{args.port}: {e.strerror}"
        raise UsageError(msg) from e
    n = sum(map(len, arch.records.values()))
    print(f"heliowatch jsoc-standin: serving {n} record(s) of {', '.join(arch.series_names())} at {srv.url}", file=sys.stderr)
    print(f"  drms: ServerConfig(cgi_baseurl='{srv.url}cgi-bin/ajax/', http_download_baseurl='{srv.url}', ...)", file=sys.stderr)
    sys.stderr.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()
    return 0


# -- status -----------------------------------------------------------------------------------
def _cmd_status(args: argparse.Namespace) -> int:
    from heliowatch.daemon.state import StateStore  # noqa: PLC0415

    cfg = _load(args)
    db = cfg.daemon.state_dir / "state.sqlite"
    if not cfg.state.url and not db.exists():
        msg = f"no state database at {db}: the daemon has not run with this configuration"
        raise UsageError(msg)
    st = StateStore(cfg.state_url)
    try:
        import sqlalchemy as sa  # noqa: PLC0415

        from heliowatch.daemon.state import high_water  # noqa: PLC0415

        with st.engine.connect() as c:
            hw = [dict(r._mapping) for r in c.execute(sa.select(high_water))]
        out = {
            "state_dir": str(cfg.daemon.state_dir.resolve()),
            "high_water": hw,
            "records_per_series": st.frame_counts(),
            "latest_frames": [
                {k: f[k] for k in ("series", "record", "segment", "t_rec_utc", "ingested_utc", "latency_s")}
                for f in st.frames(limit=10)
            ],
            "rejected": st.reject_summary()[:20],
        }
    finally:
        st.close()
    summary = cfg.daemon.outputs / "run-summary.json"
    if summary.exists():
        out["last_run"] = json.loads(summary.read_text())
    print(json.dumps(out, indent=2, default=str))
    return 0


# -- alerts / products ------------------------------------------------------------------------
def _cmd_alerts(args: argparse.Namespace) -> int:
    import datetime as dt  # noqa: PLC0415

    from heliowatch.daemon.service import Daemon  # noqa: PLC0415
    from heliowatch.daemon.state import StateStore  # noqa: PLC0415
    from heliowatch.pipelines.alerts import Alert  # noqa: PLC0415

    cfg = _load(args)
    if cfg.alerts.transport == "none":
        msg = "alerts.transport is 'none': nothing to test"
        raise UsageError(msg)
    cfg.daemon.state_dir.mkdir(parents=True, exist_ok=True)
    d = Daemon(cfg, once=True)
    d.state = StateStore(cfg.state_url)
    d._setup_products()
    assert d.alert_center is not None
    now = dt.datetime.now(dt.UTC)
    test = Alert(
        "test", "[heliowatch] test alert", f"A test message from heliowatch at {now:%Y-%m-%d %H:%M:%S} UTC.", key=now.isoformat()
    )
    d.alert_center.raise_alerts([test], now=now)
    sent, failed = d.alert_center.deliver(now=now)
    where = cfg.maildir.resolve() if cfg.alerts.transport == "maildir" else f"{cfg.alerts.smtp.host}:{cfg.alerts.smtp.port}"
    if failed or not sent:
        import sqlalchemy as sa  # noqa: PLC0415

        from heliowatch.pipelines.alerts import outbox  # noqa: PLC0415

        with d.state.engine.connect() as c:
            err = c.execute(sa.select(outbox.c.last_error).order_by(outbox.c.id.desc()).limit(1)).scalar()
        msg = f"test alert not delivered to {where} ({err}); it stays in the outbox and will be retried by the daemon"
        raise SourceUnavailable(msg)
    print(f"test alert delivered to {', '.join(cfg.alerts.recipients)} via {cfg.alerts.transport} ({where})")
    return 0


def _cmd_products(args: argparse.Namespace) -> int:
    from heliowatch.daemon.state import StateStore  # noqa: PLC0415
    from heliowatch.pipelines.store import PRODUCTS, ProductStore  # noqa: PLC0415

    cfg = _load(args)
    if args.product and args.product not in PRODUCTS:
        msg = f"unknown product {args.product!r}; known: {', '.join(PRODUCTS)}"
        raise UsageError(msg)
    db = cfg.daemon.state_dir / "state.sqlite"
    if not cfg.store.url and not cfg.state.url and not db.exists():
        msg = f"no state database at {db}: the daemon has not run with this configuration"
        raise UsageError(msg)
    store = ProductStore(cfg.store.url or StateStore(cfg.state_url).engine)
    print(
        json.dumps(
            {"counts": store.counts(), "products": store.latest(args.product, limit=args.limit, region=args.region)}, indent=2
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered sub-command."""
    p = argparse.ArgumentParser(prog="heliowatch", description="Near-real-time SDO monitoring daemon.")
    p.add_argument("--config", metavar="PATH", help="configuration file (default: built-in offline defaults)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run the daemon")
    r.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    r.add_argument("--replay", metavar="DIR|demo", help="replay a local archive through the JSOC stand-in")
    r.add_argument("--once", action="store_true", help="process what is available now and exit 0")
    r.add_argument("--speed", type=float, help="replay clock speed (archive seconds per second)")
    r.add_argument("--fault", metavar="SPEC", help="inject stand-in faults in a replay (see jsoc-standin --help)")
    r.add_argument("--keep-running", action="store_true", help="in a replay, keep polling after the archive ends")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser(
        "jsoc-standin",
        help="serve a FITS archive as a JSOC stand-in (drms works against it unmodified)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__import__("heliowatch.pipelines.standin.faults", fromlist=["x"]).__doc__,
    )
    s.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    s.add_argument("--archive", required=True, metavar="DIR|demo")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8111)
    s.add_argument("--fault", metavar="SPEC")
    s.add_argument("--latency", type=float, default=0.0, help="simulated JSOC latency after T_REC (s)")
    s.add_argument("--speed", type=float, default=0.0, help="replay clock speed; 0 serves every record at once")
    s.add_argument("--max-gap", type=float, default=3600.0, help="compress gaps longer than this (s)")
    s.set_defaults(func=_cmd_standin)

    st = sub.add_parser("status", help="what the daemon last did (JSON)")
    st.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    st.set_defaults(func=_cmd_status)

    al = sub.add_parser("alerts", help="the mailing list: `alerts test` sends a test message")
    al.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    al.add_argument("action", choices=["test"])
    al.set_defaults(func=_cmd_alerts)

    pr = sub.add_parser("products", help="latest products from the store (JSON)")
    pr.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    pr.add_argument("--product", help="region, flare_forecast, flare_region, emergence, jet, data_health")
    pr.add_argument("--region", help="e.g. 'NOAA 11158'")
    pr.add_argument("--limit", type=int, default=20)
    pr.set_defaults(func=_cmd_products)

    # Under `python -m heliowatch.daemon.cli` this module is __main__; plugins register on
    # the importable module, so read the registry from there.
    from heliowatch.daemon import cli as canonical  # noqa: PLC0415

    for reg in canonical._REGISTRARS:
        reg(sub)
    return p


def _load_plugins() -> None:
    """Import the modules whose sub-commands register themselves."""
    import importlib  # noqa: PLC0415

    for mod in ("heliowatch.models.cli", "heliowatch.pipelines.cli", "heliowatch.pipelines.regions_cli"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``heliowatch`` command."""
    _load_plugins()
    from heliowatch.daemon import cli as canonical  # noqa: PLC0415

    argv = list(sys.argv[1:] if argv is None else argv)
    special = next((w for w in canonical._COMMANDS if tuple(argv[: len(w)]) == w), None)
    if special is not None:
        args = canonical._COMMANDS[special]().parse_args(argv[len(special) :])
        args.command = " ".join(special)
    else:
        args = build_parser().parse_args(argv)
    if args.command != "run":
        # Tools print their results on stdout; their log lines go to stderr, warnings and up.
        from heliowatch.daemon.logs import configure_logging  # noqa: PLC0415

        configure_logging("warning", "console", stream=sys.stderr)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # The reader went away (`| head`): not an error worth a traceback.
        import os  # noqa: PLC0415

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ConfigError as e:
        print(f"heliowatch: config error: {e}", file=sys.stderr)
        return 2
    except SourceUnavailable as e:
        print(f"heliowatch: unavailable: {e}", file=sys.stderr)
        return 3
    except HeliowatchError as e:
        print(f"heliowatch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
