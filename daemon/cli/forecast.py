"""``heliowatch forecast SHARP_FITS...`` and its nested subcommand ``heliowatch forecast backtest``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from heliowatch.daemon.cli.common import add_config, config_of
from heliowatch.daemon.wiring import export_settings
from heliowatch.models.core import jsonio
from heliowatch.models.core.errors import UsageError
from heliowatch.models.flares.backtest import keyword_fit, run_backtest, write_disk_model
from heliowatch.models.flares.events import load_events
from heliowatch.models.flares.forecaster import EventHistory, FlareForecaster, SharpInput
from heliowatch.models.flares.region_days import build_region_days
from heliowatch.models.registry import resolve_root
from heliowatch.pipelines.flare_exports import write_exports
from heliowatch.pipelines.sharp import read_sharp_record

__all__ = ["default_events", "register"]


def default_events(data: Path) -> list[Path]:
    """The GOES event lists under a shared-data root (SWPC list + HEK GOES list)."""
    cands = [data / "hayes-flare-ar" / "swpc_flarelist_20100101-20210810.csv", data / "noaa-srs" / "00_All_GOES_SUNPY.csv"]
    found = [c for c in cands if c.exists()]
    if not found:
        msg = f"no GOES event list under {data} (give --events FILE)"
        raise UsageError(msg)
    return found


def _cmd_backtest(a: argparse.Namespace) -> int:
    data = Path(a.data)
    events = [Path(e) for e in a.events] if a.events else default_events(data)
    keywords, fit = None, None
    if a.region_model != "climatology":
        keywords = build_region_days(data, cache_dir=Path(a.cache_dir) if a.cache_dir else None, event_files=events)
        fit = keyword_fit("gbm" if a.region_model == "keywords-gbm" else "logistic")
    try:
        res = run_backtest(
            data / "hayes-flare-ar",
            events,
            start=a.start,
            end=a.end,
            train_until=a.train_until,
            out_csv=Path(a.out),
            keywords=keywords,
            keyword_fit=fit,
        )
    except ValueError as e:
        raise UsageError(str(e)) from e
    print(res.table())
    scores = Path(a.out).with_suffix(".scores.json")
    body = {"region_model": a.region_model, "train_until": a.train_until, "scores": res.scores, "limb": res.limb}
    scores.write_text(jsonio.dumps(body, indent=2, default=float))
    print(f"wrote {a.out} ({len(res.forecasts)} days) and {scores}", file=sys.stderr)
    if a.disk_model_out:
        path = write_disk_model(res.limb, Path(a.disk_model_out), region_model=a.region_model, scores=res.scores)
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _cmd_forecast(a: argparse.Namespace) -> int:
    files = list(getattr(a, "files", None) or [])
    if not files:
        msg = "give SHARP FITS files (or `forecast backtest ...`)"
        raise UsageError(msg)
    cfg = config_of(a)
    history = EventHistory(load_events([Path(e) for e in a.events])) if a.events else None
    fc = FlareForecaster(resolve_root("flare-sharp-logistic", (cfg.weights_dir,)))
    seen: dict[tuple[Any, str], SharpInput] = {}
    for f in files:
        p = Path(f)
        if not p.exists():
            msg = f"{p} does not exist"
            raise UsageError(msg)
        inp = read_sharp_record(p)
        seen.setdefault((inp.harpnum, inp.t_rec_utc), inp)  # one forecast per record, whatever the segment
    out = [fc.forecast_region(inp, history, pd.Timestamp(inp.t_rec_utc[:19])) for inp in seen.values()]
    if a.json:
        # A list, as DESIGN.md fixes the shape; the version rides on every entry.
        print(jsonio.dumps([{"schema_version": jsonio.SCHEMA_VERSION, **asdict(r)} for r in out], indent=2))
    else:
        print(f"{'file':<58}{'HARP':>6}{'NOAA':>7}{'P(>=C)':>8}{'P(>=M)':>8}{'P(>=X)':>8}  method")
        for r in out:
            flag = " (degraded: " + "; ".join(r.missing) + ")" if r.degraded else ""
            ids = f"{Path(r.file).name[:57]:<58}{r.harpnum or '-':>6}{r.noaa_ar or '-':>7}"
            print(f"{ids}{r.p_c:>8.4f}{r.p_m:>8.4f}{r.p_x:>8.4f}  {r.method}{flag}")  # 4 decimals: a floor never reads 0
    if a.out:
        issue = pd.Timestamp(max(r.t_rec_utc for r in out)[:19])
        for p in write_exports(fc.full_disk(out, history, issue), Path(a.out), export_settings(cfg)):
            print(f"wrote {p}", file=sys.stderr)
    return 0


def _forecast_options(p: argparse.ArgumentParser, *, default: Any = None) -> None:
    p.add_argument(
        "--json",
        action="store_true",
        default=default,
        help="JSON list: [{schema_version, file, harpnum, noaa_ar, p_c, p_m, p_x, degraded, models, ...}]",
    )
    p.add_argument("--events", action="append", default=default, help="GOES event list for flare history (repeatable)")
    p.add_argument("--out", default=default, help="write the issue's JSON and its CCMC Flare Scoreboard files here")


class _AnyName(dict[str, argparse.ArgumentParser]):
    """The sub-command table, but every word passes argparse's choice check."""

    def __contains__(self, key: object) -> bool:
        return True


class _FilesOrAction(argparse._SubParsersAction):
    """The sub-commands of ``forecast`` (``backtest``); anything else is the list of SHARP files.

    ``heliowatch forecast a.fits b.fits --json`` keeps working next to the real nested
    ``heliowatch forecast backtest --start ...``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.choices = _AnyName(self._name_parser_map)  # a file name is a valid first word too

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: Any = None
    ) -> None:
        vals = list(values)
        if vals and vals[0] in self._name_parser_map.keys():
            super().__call__(parser, namespace, vals, option_string)
            return
        files = argparse.ArgumentParser(prog="heliowatch forecast", add_help=False)
        files.add_argument("files", nargs="*")
        _forecast_options(files, default=argparse.SUPPRESS)
        files.parse_args(vals, namespace)


def register(sub: Any) -> None:
    """``heliowatch forecast`` and ``heliowatch forecast backtest``."""
    p = sub.add_parser("forecast", help="flare probabilities for SHARP patches; `forecast backtest` for the daily backtest")
    add_config(p)
    _forecast_options(p)
    p.set_defaults(func=_cmd_forecast, files=[])
    p.register("action", "files_or", _FilesOrAction)
    s = p.add_subparsers(dest="forecast_action", action="files_or", metavar="SHARP_FITS... | backtest")
    b = s.add_parser(
        "backtest",
        help="daily full-disk backtest (Leka et al. 2019 protocol)",
        description="daily full-disk backtest (Leka et al. 2019 protocol)",
    )
    add_config(b)
    b.add_argument("--start", required=True)
    b.add_argument("--end", required=True)
    b.add_argument("--train-until", required=True)
    b.add_argument("--out", required=True, help="CSV: VALID_DATE,C1+,M1+")
    b.add_argument("--data", default=str(Path("..") / "shared" / "data"), help="shared data root (hayes-flare-ar, noaa-srs)")
    b.add_argument("--events", action="append", help="GOES event list(s); default: the SWPC and HEK lists under --data")
    b.add_argument(
        "--region-model",
        choices=("climatology", "keywords", "keywords-gbm"),
        default="climatology",
        help="per-region model: the SRS region-class climatology only (default), or the SHARP-keyword region model"
        " (logistic; keywords-gbm: boosted trees) on the keyword records before each issue,"
        " the climatology where a region has none",
    )
    b.add_argument("--cache-dir", help="keep the SHARP keyword region-day table here (built from --data in about 20 s otherwise)")
    b.add_argument("--disk-model-out", help="also write the fitted full-disk model (JSON with its card) here")
    b.set_defaults(func=_cmd_backtest)
