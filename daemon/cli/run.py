"""``heliowatch run`` (the daemon) and ``heliowatch jsoc-standin`` (the JSOC stand-in server)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from heliowatch.daemon.cli.common import add_config, config_of, setup_logging
from heliowatch.daemon.service import Daemon, summary_lines
from heliowatch.daemon.wiring import build
from heliowatch.models.core.errors import UsageError
from heliowatch.pipelines.standin import faults as faults_doc
from heliowatch.pipelines.standin.archive import Archive, ReplayClock, demo_archive_path
from heliowatch.pipelines.standin.faults import FaultSpec
from heliowatch.pipelines.standin.server import StandinServer

__all__ = ["register"]


def _cmd_run(args: argparse.Namespace) -> int:
    cfg = config_of(args)
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
    setup_logging(cfg)
    app = build(cfg, once=args.once, fault=args.fault)
    summary = Daemon(app, once=args.once, keep_running=args.keep_running).run()
    alerts_to = str(cfg.maildir.resolve()) if cfg.alerts.transport == "maildir" else cfg.alerts.transport
    state = str(cfg.daemon.state_dir.resolve() / "state.sqlite") if not cfg.state.url else "(configured URL)"
    print("\n".join(summary_lines(summary, alerts_to=alerts_to, state=state)), file=sys.stderr)
    return 0


def _cmd_standin(args: argparse.Namespace) -> int:
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


def register(sub: Any) -> None:
    """``run`` and ``jsoc-standin``."""
    r = sub.add_parser("run", help="run the daemon", description="Run the daemon (the embedded default: an offline replay).")
    add_config(r)
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
        epilog=faults_doc.__doc__,
    )
    add_config(s)
    s.add_argument("--archive", required=True, metavar="DIR|demo")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8111)
    s.add_argument("--fault", metavar="SPEC")
    s.add_argument("--latency", type=float, default=0.0, help="simulated JSOC latency after T_REC (s)")
    s.add_argument("--speed", type=float, default=0.0, help="replay clock speed; 0 serves every record at once")
    s.add_argument("--max-gap", type=float, default=3600.0, help="compress gaps longer than this (s)")
    s.set_defaults(func=_cmd_standin)
