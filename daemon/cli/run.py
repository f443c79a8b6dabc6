"""``heliowatch run`` (the daemon) and ``heliowatch jsoc-standin`` (the JSOC stand-in server).

``run`` logs on stderr and prints its summary on stdout. Before anything slow it checks that
the metrics port is free (a second heliowatch, such as the demo started beside the service,
ends at once with one line), and it exports the models a first run lacks with a progress
line per model, so the first minute is not silent. Before those it takes the state directory's
single-instance lock (:mod:`heliowatch.daemon.lock`): a second daemon on the same directory, or a
read-only one, ends with one line and exit status 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

import structlog

from heliowatch.daemon.cli.common import add_config, config_of, setup_logging
from heliowatch.daemon.config import Config
from heliowatch.daemon.errors import ConfigError
from heliowatch.daemon.lock import StateDirLock
from heliowatch.daemon.secrets import mask_url
from heliowatch.daemon.service import Daemon, heliowatch_version, summary_lines
from heliowatch.daemon.wiring import build, models_in_use, runtime_options
from heliowatch.models import registry
from heliowatch.models.core.errors import ModelError, UsageError
from heliowatch.models.runtime.export import export_model, export_needed
from heliowatch.models.runtime.runtime import ALIASES, available_backends
from heliowatch.pipelines.standin import faults as faults_doc
from heliowatch.pipelines.standin.archive import Archive, ReplayClock, demo_archive_path
from heliowatch.pipelines.standin.faults import FaultSpec
from heliowatch.pipelines.standin.server import StandinServer

__all__ = ["register"]

log = structlog.get_logger(__name__)

#: Backends that load the ONNX export (the others run the torch module from the weights).
_ONNX_BACKENDS = ("tensorrt", "onnxruntime-cuda", "onnxruntime-cpu")


def _check_metrics_port(cfg: Config) -> None:
    """A ConfigError naming the port when it is taken, before minutes of start-up are spent."""
    m = cfg.metrics
    if not m.enabled:
        return
    try:
        socket.getaddrinfo(m.host, m.port or None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        msg = f"cannot resolve {m.host!r} ({getattr(e, 'strerror', None) or e}): use an address such as 127.0.0.1"
        raise ConfigError(msg, ("metrics", "host")) from e
    if m.port == 0:
        return
    # Bound like the status server's http.server socket (SO_REUSEADDR), so a port in TIME_WAIT
    # after a restart counts as free, and a listening one as busy.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((m.host, m.port))
        except OSError as e:
            msg = (
                f"cannot listen on {m.host}:{m.port} ({e.strerror or e}): is another heliowatch running? "
                "stop it, or set metrics.port to a free port (0 picks one)"
            )
            raise ConfigError(msg, ("metrics", "port")) from e


def _is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback one (``localhost``, 127.0.0.0/8, ::1)."""
    try:
        addrs = {str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def _check_replay(cfg: Config, fault: str | None) -> None:
    """The replay's archive and fault spec, checked before the first log line (one-line errors)."""
    if cfg.jsoc.server != "replay":
        return
    root = demo_archive_path() if cfg.replay.archive == "demo" else Path(cfg.replay.archive)
    if not root.is_dir():
        msg = f"replay archive {root} is not a directory (use 'demo' for the bundled one)"
        raise UsageError(msg)
    try:
        FaultSpec.parse(fault)
    except ValueError as e:
        raise UsageError(str(e)) from e


def _export_models(cfg: Config) -> None:
    """Export the models the products will load through ONNX and lack (a first run), one log line each."""
    options = runtime_options(cfg)
    wanted = ALIASES.get(options.backend, options.backend)
    first = available_backends()[0] if wanted == "auto" else wanted
    if first not in _ONNX_BACKENDS:
        return
    todo = []
    for name in models_in_use(cfg):
        root = registry.resolve_root(name, options.weights_dirs)
        reason = export_needed(name, options.export_dir, weights_root=root)
        if reason is not None:
            todo.append((name, root, reason))
    t0 = time.monotonic()
    for i, (name, root, reason) in enumerate(todo, 1):
        log.info("exporting_model", model=name, progress=f"{i}/{len(todo)}", reason=reason)
        try:
            export_model(name, options.export_dir, weights_root=root)
        except ModelError as e:
            # The runtime tries again and falls back to torch: the daemon still starts.
            log.warning("model_export_failed", model=name, error=str(e)[:300])
    if todo:
        log.info("models_exported", models=len(todo), seconds=round(time.monotonic() - t0, 1))


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
    # Bad input found before logging starts is the only line on stderr; what fails later
    # (a series missing at the JSOC) ends the log with its one line.
    _check_replay(cfg, args.fault)
    # One daemon per state directory, held until the run ends; also the check that it is writable.
    # Taken before the port check: a second daemon on this directory is told which pid holds it.
    lock = StateDirLock(cfg.daemon.state_dir).acquire()
    try:
        _check_metrics_port(cfg)
        setup_logging(cfg)
        if cfg.metrics.enabled and not _is_loopback(cfg.metrics.host):
            log.warning(
                "metrics_not_loopback",
                host=cfg.metrics.host,
                port=cfg.metrics.port,
                hint="/metrics and the status page have no authentication: keep them on 127.0.0.1 behind a firewall",
            )
        log.info(
            "starting",
            version=heliowatch_version(),
            config=getattr(args, "config", None) or "built-in defaults",
            replay=cfg.replay.archive if cfg.jsoc.server == "replay" else None,
            once=args.once,
        )
        _export_models(cfg)
        app = build(cfg, once=args.once, fault=args.fault)
        summary = Daemon(app, once=args.once, keep_running=args.keep_running).run()
    finally:
        lock.release()
    alerts_to = str(cfg.maildir.resolve()) if cfg.alerts.transport == "maildir" else cfg.alerts.transport
    if app.alerts is not None and app.alerts.webhook is not None:
        alerts_to += f" + webhook ({app.alerts.webhook.host})"  # the host only: the URL may hold a token
    state = str(cfg.daemon.state_dir.resolve() / "state.sqlite") if not cfg.state.url else mask_url(cfg.state.url)
    print("\n".join(summary_lines(summary, alerts_to=alerts_to, state=state)))
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


def _plain(rst: str) -> str:
    """reStructuredText as plain text for ``--help``: table rows re-aligned, no rules, quotes or roles."""
    out = []
    for ln in rst.strip().splitlines():
        if re.fullmatch(r"[=\- ]+", ln):
            continue
        row = re.fullmatch(r"``([^`]+)``\s+(.*)", ln)
        out.append(f"  {row[1]:<20} {row[2]}" if row else ln)
    return re.sub(r":\w+:`([^`]*)`", r"\1", "\n".join(out).replace("``", ""))


def register(sub: Any) -> None:
    """``run`` and ``jsoc-standin``."""
    r = sub.add_parser(
        "run",
        help="run the daemon",
        description="Run the daemon: poll the JSOC (or replay an archive), run every product, raise alerts. "
        "Logs go to stderr, the run summary to stdout.",
    )
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
        description="Serve a directory of JSOC-named FITS files (or the bundled demo) over HTTP as a stand-in\n"
        "for the JSOC's CGI and download endpoints; drms works against it unmodified.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fault spec (--fault):\n" + _plain(faults_doc.__doc__ or "").split("\n", 1)[1].strip(),
    )
    add_config(s)
    s.add_argument("--archive", required=True, metavar="DIR|demo", help="directory of JSOC-named FITS files, or 'demo'")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    s.add_argument("--port", type=int, default=8111, help="TCP port (default: %(default)s)")
    s.add_argument("--fault", metavar="SPEC", help="faults to inject (below)")
    s.add_argument("--latency", type=float, default=0.0, help="simulated JSOC latency after T_REC (s)")
    s.add_argument("--speed", type=float, default=0.0, help="replay clock speed; 0 serves every record at once")
    s.add_argument("--max-gap", type=float, default=3600.0, help="compress gaps longer than this (s)")
    s.set_defaults(func=_cmd_standin)
