"""``heliowatch train MODEL``: retrain a model from its recorded recipe; writes weights + model card.

Weights go to the configured weights directory (``models.weights_dir``, ``<state_dir>/weights``
by default), never into the installed package; the daemon loads a model from there before the
shipped one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from heliowatch.daemon.cli.common import add_config, config_of, progress_bar
from heliowatch.daemon.cli.forecast import default_events
from heliowatch.models.core import jsonio
from heliowatch.models.core.errors import UsageError
from heliowatch.models.flares.cnn import train_cnn
from heliowatch.models.flares.train import train_climatology, train_feature_models
from heliowatch.models.region_cnn import train_region_classifier
from heliowatch.models.region_detector import train_region_detector
from heliowatch.models.registry import MODELS, init_weights

__all__ = ["register"]

_NEEDS_DATA = ("flare-features", "flare-climatology", "flare-cnn1", "flare-cnn2")
_SYNTHETIC_ONLY = ("region-detector", "region-classifier")


def _cmd_train(a: argparse.Namespace) -> int:
    if a.model not in (*_NEEDS_DATA, *MODELS):
        msg = f"unknown model {a.model!r}; trainable: {', '.join(dict.fromkeys([*_NEEDS_DATA, *MODELS]))}"
        raise UsageError(msg)
    out = Path(a.out) if a.out else config_of(a).weights_dir
    if a.model in _SYNTHETIC_ONLY:  # the region models train on synthetic disks they generate: no --data
        if a.model == "region-detector":
            res = train_region_detector(
                out, frames=a.frames or 240, epochs=a.epochs, progress=progress_bar("train region-detector")
            )
        else:
            res = train_region_classifier(out, frames=a.frames or 60, epochs=a.epochs)
        print(jsonio.dumps(res, indent=2))
        return 0
    if a.model not in _NEEDS_DATA:  # a registry model without a recipe: seeded initial weights
        print(init_weights(a.model, root=out))
        return 0
    if not a.data:
        msg = f"train {a.model} needs --data"
        raise UsageError(msg)
    data = Path(a.data)
    if a.model == "flare-features":
        for p in train_feature_models(data, out, progress=lambda n: print(f"trained {n}", file=sys.stderr)):
            print(p)
    elif a.model == "flare-climatology":
        events = (
            [Path(e) for e in a.events] if a.events else default_events(data.parent if data.name == "hayes-flare-ar" else data)
        )
        hayes = data if (data / "AR_flare_ml_23_24.csv").exists() else data / "hayes-flare-ar"
        print(train_climatology(hayes, events, out / "flare-region-climatology.json", cutoff=a.until or "2018-12-31"))
    else:
        print(train_cnn(a.model, data, out, epochs=a.epochs, until=a.until))
    return 0


def register(sub: Any) -> None:
    """``heliowatch train MODEL [--data DIR]``."""
    p = sub.add_parser("train", help="retrain a model from its recipe; writes weights + model card")
    add_config(p)
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
    p.add_argument("--out", help="where to write (default: models.weights_dir of the config)")
    p.set_defaults(func=_cmd_train)
