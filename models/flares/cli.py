"""``heliowatch train`` and ``heliowatch evaluate``: the flare models here, the region models in
:mod:`heliowatch.pipelines.regions_cli`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from heliowatch.daemon.cli import progress_bar
from heliowatch.daemon.errors import UsageError

__all__ = ["add_evaluate_parser", "add_train_parser", "default_events"]


def default_events(data: Path) -> list[Path]:
    """The GOES event lists under a shared-data root (SWPC list + HEK GOES list)."""
    cands = [data / "hayes-flare-ar" / "swpc_flarelist_20100101-20210810.csv", data / "noaa-srs" / "00_All_GOES_SUNPY.csv"]
    found = [c for c in cands if c.exists()]
    if not found:
        msg = f"no GOES event list under {data} (give --events FILE)"
        raise UsageError(msg)
    return found


_NEEDS_DATA = ("flare-features", "flare-climatology", "flare-cnn1", "flare-cnn2")


def _cmd_train(a: argparse.Namespace) -> int:
    from heliowatch.models.registry import MODELS, init_weights, weights_dir  # noqa: PLC0415

    out = Path(a.out) if a.out else weights_dir()
    if a.model not in (*_NEEDS_DATA, *MODELS):
        msg = f"unknown model {a.model!r}; trainable: {', '.join(dict.fromkeys([*_NEEDS_DATA, *MODELS]))}"
        raise UsageError(msg)
    if a.model in ("region-detector", "region-classifier"):
        from heliowatch.pipelines.regions_cli import train_regions  # noqa: PLC0415

        return train_regions(a, out)
    if a.model not in _NEEDS_DATA:  # a registry model without a recipe: seeded initial weights
        print(init_weights(a.model, root=out))
        return 0
    if not a.data:
        msg = f"train {a.model} needs --data"
        raise UsageError(msg)
    data = Path(a.data)
    if a.model == "flare-features":
        from heliowatch.models.flares.train import train_feature_models  # noqa: PLC0415

        for p in train_feature_models(data, out, progress=lambda n: print(f"trained {n}", file=sys.stderr)):
            print(p)
    elif a.model == "flare-climatology":
        from heliowatch.models.flares.train import train_climatology  # noqa: PLC0415

        events = (
            [Path(e) for e in a.events] if a.events else default_events(data.parent if data.name == "hayes-flare-ar" else data)
        )
        hayes = data if (data / "AR_flare_ml_23_24.csv").exists() else data / "hayes-flare-ar"
        print(train_climatology(hayes, events, out / "flare-region-climatology.json", cutoff=a.until or "2018-12-31"))
    else:
        from heliowatch.models.flares.cnn import train_cnn  # noqa: PLC0415

        print(train_cnn(a.model, data, out, epochs=a.epochs, until=a.until))
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    if a.model == "regions":
        from heliowatch.pipelines.regions_cli import evaluate_regions_cmd  # noqa: PLC0415

        return evaluate_regions_cmd(a)
    if a.model != "flares":
        msg = f"evaluate {a.model!r} is not available; evaluable: flares, regions"
        raise UsageError(msg)
    from heliowatch.models.flares.evaluate import evaluate_flares, format_report, save_report  # noqa: PLC0415

    res = evaluate_flares(Path(a.data), progress=progress_bar("evaluate flares"))
    print(format_report(res))
    for p in save_report(res, Path(a.out)):
        print(f"wrote {p}", file=sys.stderr)
    return 0


def add_train_parser(sub: Any) -> None:
    """Register ``heliowatch train MODEL --data DIR``."""
    p = sub.add_parser("train", help="retrain a model from its recipe; writes weights + model card")
    p.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    p.add_argument(
        "model",
        help="flare-features | flare-climatology | flare-cnn1 | flare-cnn2 | region-detector | region-classifier"
        " | a registry model (seeded init)",
    )
    p.add_argument("--data", help="data directory (e.g. ../shared/data/sun2022-sharp-seq); the region models need none")
    p.add_argument("--frames", type=int, help="region models: synthetic training disks (default 240 / 60)")
    p.add_argument("--until", help="training cutoff date (YYYY-MM-DD)")
    p.add_argument("--events", action="append", help="GOES event list(s)")
    p.add_argument("--epochs", type=int, default=8, help="CNN epochs")
    p.add_argument("--out", help="where to write (default: the package's models/weights)")
    p.set_defaults(func=_cmd_train)


def add_evaluate_parser(sub: Any) -> None:
    """Register ``heliowatch evaluate MODEL --data DIR``."""
    p = sub.add_parser("evaluate", help="skill scores (TSS, HSS, BSS, AUC, reliability) on real data")
    p.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    p.add_argument("model", help="flares | regions")
    p.add_argument("--data", required=True, help="flares: ../shared/data/sun2022-sharp-seq; regions: ../shared/data")
    p.add_argument("--frames", type=int, default=8, help="regions: semi-real and synthetic frames each")
    p.add_argument("--out", default="heliowatch-eval", help="directory for the report, JSON and reliability diagram")
    p.set_defaults(func=_cmd_evaluate)
