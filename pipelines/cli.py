"""``heliowatch forecast`` (SHARP files, and the daily backtest)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from heliowatch.daemon.cli import register, register_command
from heliowatch.daemon.errors import UsageError

__all__ = ["add_forecast_parser", "build_backtest_parser"]


def _cmd_backtest(a: argparse.Namespace) -> int:
    from heliowatch.models.flares.backtest import run_backtest  # noqa: PLC0415
    from heliowatch.models.flares.cli import default_events  # noqa: PLC0415

    data = Path(a.data)
    events = [Path(e) for e in a.events] if a.events else default_events(data)
    try:
        res = run_backtest(
            data / "hayes-flare-ar", events, start=a.start, end=a.end, train_until=a.train_until, out_csv=Path(a.out)
        )
    except ValueError as e:
        raise UsageError(str(e)) from e
    print(res.table())
    scores = Path(a.out).with_suffix(".scores.json")
    scores.write_text(json.dumps({"scores": res.scores, "limb": res.limb}, indent=2, default=float))
    print(f"wrote {a.out} ({len(res.forecasts)} days) and {scores}", file=sys.stderr)
    return 0


def _cmd_forecast(a: argparse.Namespace) -> int:
    from heliowatch.pipelines.events import load_events  # noqa: PLC0415
    from heliowatch.pipelines.flares import EventHistory, FlareForecaster, read_sharp_record, write_exports  # noqa: PLC0415

    if not a.files:
        msg = "give SHARP FITS files (or `forecast backtest ...`)"
        raise UsageError(msg)
    history = EventHistory(load_events([Path(e) for e in a.events])) if a.events else None
    fc = FlareForecaster()
    seen: dict[tuple[Any, str], Any] = {}
    for f in a.files:
        p = Path(f)
        if not p.exists():
            msg = f"{p} does not exist"
            raise UsageError(msg)
        inp = read_sharp_record(p)
        seen.setdefault((inp.harpnum, inp.t_rec_utc), inp)  # one forecast per record, whatever the segment
    out = []
    for inp in seen.values():
        issue = pd.Timestamp(inp.t_rec_utc[:19])
        out.append(fc.forecast_region(inp, history, issue))
    if a.json:
        print(json.dumps([asdict(r) for r in out], indent=2))
    else:
        print(f"{'file':<58}{'HARP':>6}{'NOAA':>7}{'P(>=C)':>8}{'P(>=M)':>8}{'P(>=X)':>8}  method")
        for r in out:
            flag = " (degraded: " + "; ".join(r.missing) + ")" if r.degraded else ""
            ids = f"{Path(r.file).name[:57]:<58}{r.harpnum or '-':>6}{r.noaa_ar or '-':>7}"
            print(f"{ids}{r.p_c:>8.3f}{r.p_m:>8.3f}{r.p_x:>8.3f}  {r.method}{flag}")
    if a.out:
        issue = pd.Timestamp(max(r.t_rec_utc for r in out)[:19])
        for p in write_exports(fc.full_disk(out, history, issue), Path(a.out)):
            print(f"wrote {p}", file=sys.stderr)
    return 0


def add_forecast_parser(sub: Any) -> None:
    """Register ``heliowatch forecast``."""
    p = sub.add_parser("forecast", help="flare probabilities for SHARP patches; `forecast backtest` for the daily backtest")
    p.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    p.add_argument("files", nargs="*", metavar="SHARP_FITS", help="SHARP CEA segment files (any segment of a record)")
    p.add_argument("--json", action="store_true", help="JSON list (file, harpnum, noaa_ar, p_c, p_m, p_x, degraded, models, ...)")
    p.add_argument("--events", action="append", help="GOES event list for flare history (repeatable)")
    p.add_argument("--out", help="write the issue's JSON and CCMC exports here")
    p.set_defaults(func=_cmd_forecast)


def build_backtest_parser() -> argparse.ArgumentParser:
    """The parser of ``heliowatch forecast backtest``."""
    b = argparse.ArgumentParser(
        prog="heliowatch forecast backtest", description="daily full-disk backtest (Leka et al. 2019 protocol)"
    )
    b.add_argument("--config", metavar="PATH")
    b.add_argument("--start", required=True)
    b.add_argument("--end", required=True)
    b.add_argument("--train-until", required=True)
    b.add_argument("--out", required=True, help="CSV: VALID_DATE,C1+,M1+")
    b.add_argument("--data", default=str(Path("..") / "shared" / "data"), help="shared data root (hayes-flare-ar, noaa-srs)")
    b.add_argument("--events", action="append", help="GOES event list(s); default: the SWPC and HEK lists under --data")
    b.set_defaults(func=_cmd_backtest)
    return b


register(add_forecast_parser)
register_command(("forecast", "backtest"), build_backtest_parser)
