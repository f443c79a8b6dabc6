"""``heliowatch status``, ``heliowatch products`` and ``heliowatch alerts test``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from heliowatch.daemon.cli.common import add_config, config_of
from heliowatch.daemon.config import Config
from heliowatch.daemon.secrets import mask_url
from heliowatch.daemon.state import StateStore
from heliowatch.daemon.wiring import alert_center
from heliowatch.models.core import jsonio
from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import SystemClock, iso_utc
from heliowatch.pipelines.alerts import Alert, AlertCenter
from heliowatch.pipelines.errors import SourceUnavailable
from heliowatch.pipelines.store.products import PRODUCTS, ProductStore

__all__ = ["register"]


def _state(cfg: Config) -> StateStore:
    db = cfg.daemon.state_dir / "state.sqlite"
    if not cfg.state.url and not db.exists():
        msg = f"no state database at {db.absolute()}: the daemon has not run with this configuration"
        raise UsageError(msg)
    return StateStore(cfg.state_url)


def _cmd_status(args: argparse.Namespace) -> int:
    cfg = config_of(args)
    st = _state(cfg)
    try:
        out: dict[str, Any] = {
            "state_dir": str(cfg.daemon.state_dir.resolve()),
            "high_water": st.high_waters(),
            "records_per_series": st.frame_counts(),
            "latest_frames": [
                {k: f[k] for k in ("series", "record", "segment", "t_rec_utc", "ingested_utc", "latency_s")}
                for f in st.frames(limit=10)
            ],
            "rejected": st.reject_summary()[:20],
            "product_failures": st.product_failures()[:20],
        }
    finally:
        st.close()
    summary = cfg.daemon.outputs / "run-summary.json"
    if summary.exists():
        last = json.loads(summary.read_text())
        # A summary written by an older heliowatch may still hold the password in clear.
        if isinstance(last, dict) and isinstance(last.get("state_url"), str):
            last["state_url"] = mask_url(last["state_url"])
        out["last_run"] = last
    print(jsonio.dumps({"schema_version": jsonio.SCHEMA_VERSION, **out}, indent=2, default=str))
    return 0


def _cmd_products(args: argparse.Namespace) -> int:
    cfg = config_of(args)
    if args.product and args.product not in PRODUCTS:
        msg = f"unknown product {args.product!r}; known: {', '.join(PRODUCTS)}"
        raise UsageError(msg)
    store = ProductStore(cfg.store.url) if cfg.store.url else ProductStore(_state(cfg).engine)
    print(
        jsonio.dumps(
            {
                "schema_version": jsonio.SCHEMA_VERSION,
                "counts": store.counts(),
                "products": store.latest(args.product, limit=args.limit, region=args.region),
            },
            indent=2,
        )
    )
    return 0


def _cmd_alerts(args: argparse.Namespace) -> int:
    cfg = config_of(args)
    if cfg.alerts.transport == "none" and not cfg.alerts.webhook.enabled:
        msg = "alerts.transport is 'none' and alerts.webhook is not enabled: nothing to test"
        raise UsageError(msg)
    # The outbox lives in the state database: a missing state directory means the wrong --config
    # (or a working directory without the demo's state), not one to create quietly.
    if not cfg.state.url and not cfg.daemon.state_dir.is_dir():
        msg = f"no state directory {cfg.daemon.state_dir.absolute()}: run the daemon with this configuration first"
        raise UsageError(msg)
    st = StateStore(cfg.state_url)
    try:
        center = alert_center(cfg, st)
        assert center is not None
        now = SystemClock().now()
        stamp = iso_utc(now)
        test = Alert(
            "test", "[heliowatch] test alert", f"A test message from heliowatch at {stamp.replace('T', ' ')[:19]} UTC.", key=stamp
        )
        center.raise_alerts([test])
        sent, failed = center.deliver()
        where = _alerts_where(cfg, center)
        if failed or not sent:
            last = next(iter(center.outbox.recent(1)), {})
            err, status = last.get("last_error"), last.get("status")
            if status in ("refused", "partial"):
                msg = f"test alert refused by {where} ({err}); check the URL and its credentials (not retried)"
            else:
                msg = f"test alert not delivered to {where} ({err}); it stays in the outbox and will be retried by the daemon"
            raise SourceUnavailable(msg)
    finally:
        st.close()
    to = ", ".join(cfg.alerts.recipients) if cfg.alerts.transport != "none" else "the webhook"
    print(f"test alert delivered to {to} via {where}")
    return 0


def _alerts_where(cfg: Config, center: AlertCenter) -> str:
    """Each channel and where it delivers (a webhook by host only: its URL may hold a token)."""
    out = []
    if cfg.alerts.transport == "maildir":
        out.append(f"maildir ({cfg.maildir.resolve()})")
    elif cfg.alerts.transport == "smtp":
        out.append(f"smtp ({cfg.alerts.smtp.host}:{cfg.alerts.smtp.port})")
    if center.webhook is not None:
        out.append(f"webhook ({center.webhook.host})")
    return " and ".join(out)


def register(sub: Any) -> None:
    """``status``, ``alerts`` and ``products``."""
    st = sub.add_parser("status", help="what the daemon last did (JSON)")
    add_config(st)
    st.set_defaults(func=_cmd_status)

    al = sub.add_parser("alerts", help="the mailing list: `alerts test` sends a test message")
    add_config(al)
    al.add_argument("action", choices=["test"])
    al.set_defaults(func=_cmd_alerts)

    pr = sub.add_parser("products", help="latest products from the store (JSON)")
    add_config(pr)
    pr.add_argument("--product", help=", ".join(PRODUCTS))
    pr.add_argument("--region", help="e.g. 'NOAA 11158'")
    pr.add_argument("--limit", type=int, default=20)
    pr.set_defaults(func=_cmd_products)
