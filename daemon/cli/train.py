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
from heliowatch.daemon.wiring import jsoc_client
from heliowatch.models.core import jsonio
from heliowatch.models.core.errors import UsageError
from heliowatch.models.flares.cnn import train_cnn
from heliowatch.models.flares.train import train_climatology, train_feature_models, train_region_models
from heliowatch.models.region_cnn import train_region_classifier
from heliowatch.models.region_detector import train_region_detector
from heliowatch.models.registry import MODELS, init_weights
from heliowatch.pipelines.datasets.emergence import (
    build_emergence_dataset,
    find_lists,
    is_emergence_set,
    is_region_list,
    load_emergence_dataset,
    recorded_options,
)
from heliowatch.pipelines.datasets.jets import MANIFEST, build_jet_dataset, load_jet_dataset

__all__ = ["register"]

_NEEDS_DATA = ("flare-features", "flare-climatology", "flare-regions", "flare-cnn1", "flare-cnn2")
_SYNTHETIC_ONLY = ("region-detector", "region-classifier")
_JETS = ("jet-convlstm", "jet-encoder", "jet-head")  # one training run writes all three


def _train_jets(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    from heliowatch.models.jets.train import train_jet_model  # noqa: PLC0415  (imports torch)

    real = None
    description = ""
    if a.data:
        data = Path(a.data)
        if not (data / MANIFEST).exists():
            if not any(data.glob("Jet_clusters*.csv")):
                msg = f"{data}: neither a built jet set ({MANIFEST}) nor the Solar Jet Hunter catalogue (Jet_clusters*.csv)"
                raise UsageError(msg)
            cfg = config_of(a)
            target = Path(a.dataset_dir) if a.dataset_dir else cfg.daemon.state_dir / "datasets" / "jets"
            manifest = build_jet_dataset(jsoc_client(cfg), data, target, limit=a.limit, progress=progress_bar("build jet set"))
            print(
                f"built {len(manifest['samples'])} sequences into {target} ({len(manifest['skipped'])} skipped)", file=sys.stderr
            )
            data = target
        real = load_jet_dataset(data)
        description = f"real AIA 304 A cutout sequences of the Solar Jet Hunter catalogue and HEK non-jets (set {data})"
    return train_jet_model(
        out,
        sequences=a.sequences,
        epochs=a.epochs,
        seed=a.seed,
        head_epochs=a.head_epochs,
        e2e_steps=a.e2e_steps,
        progress=progress_bar("train jet-convlstm"),
        real=real,
        real_description=description,
    )


def _train_emergence(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    """``--data``: a built set trains on it; the emerging-region lists build the set from the JSOC first (resuming
    one in ``--dataset-dir`` with the parameters it was started with); any other directory is the semi-real recipe's."""
    from heliowatch.models.emergence.train import train_emergence_fcn  # noqa: PLC0415  (imports torch)

    data = Path(a.data) if a.data else None
    if data is None or not (is_emergence_set(data) or is_region_list(data)):
        return train_emergence_fcn(out, data=data, regions=a.regions, epochs=a.epochs, seed=a.seed)
    if not is_emergence_set(data):
        cfg = config_of(a)
        target = Path(a.dataset_dir) if a.dataset_dir else cfg.daemon.state_dir / "datasets" / "emergence"
        opts = recorded_options(target)
        if a.cadence_s is not None:
            opts["cadence_s"] = a.cadence_s
        if a.births is not None:
            opts["births"] = a.births
        manifest = build_emergence_dataset(
            jsoc_client(cfg), find_lists(data), target, limit=a.limit, progress=progress_bar("build emergence set"), **opts
        )
        print(
            f"built {len(manifest['samples'])} windows into {target} ({len(manifest['dropped'])} dropped,"
            f" {len(manifest['skipped'])} series to retry)",
            file=sys.stderr,
        )
        data = target
    real = load_emergence_dataset(data)
    return train_emergence_fcn(
        out,
        epochs=a.epochs,
        seed=a.seed,
        progress=progress_bar("train emergence-fcn"),
        real=real,
        real_description="tracked hmi.M_720s patches before the listed emergences and controls a rotation away",
    )


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
    if a.model in _JETS:
        print(jsonio.dumps(_train_jets(a, out), indent=2))
        return 0
    if a.model == "emergence-fcn":
        print(jsonio.dumps(_train_emergence(a, out), indent=2))
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
    elif a.model == "flare-regions":
        cache = Path(a.cache_dir) if a.cache_dir else config_of(a).daemon.state_dir / "cache"
        done = lambda n: print(f"trained {n}", file=sys.stderr)  # noqa: E731
        for p in train_region_models(data, out, until=a.until or "2015-12-31", cache_dir=cache, progress=done):
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
        help="flare-features | flare-climatology | flare-regions (--data ../shared/data) | flare-cnn1 | flare-cnn2"
        " | region-detector | region-classifier"
        " | jet-convlstm (--data: a built set or the jet catalogue, built from the JSOC) | emergence-fcn (--data: a built set,"
        " the emerging-region lists, built from the JSOC, or the shared data for the semi-real set) | a registry model",
    )
    p.add_argument("--data", help="data directory (e.g. ../shared/data/sun2022-sharp-seq); the region models need none")
    p.add_argument("--frames", type=int, help="region models: synthetic training disks (default 240 / 60)")
    p.add_argument("--until", help="training cutoff date (YYYY-MM-DD)")
    p.add_argument("--events", action="append", help="GOES event list(s)")
    p.add_argument("--epochs", type=int, default=8, help="epochs (CNNs, the jet encoder, the emergence FCN)")
    p.add_argument("--seed", type=int, default=0, help="jet and emergence models: seed of data, split and initialisation")
    p.add_argument("--sequences", type=int, default=480, help="jet models: synthetic training sequences")
    p.add_argument("--head-epochs", type=int, default=150, help="jet models: epochs of the recurrent head on cached features")
    p.add_argument("--e2e-steps", type=int, default=150, help="jet models: end-to-end steps of encoder + head")
    p.add_argument("--regions", type=int, default=240, help="emergence-fcn: emerging series per kind of data")
    p.add_argument(
        "--limit",
        type=int,
        help="jet models with --data CATALOGUE: build only this many samples (half jets), earliest first;"
        " emergence-fcn with --data LISTS: only this many regions",
    )
    p.add_argument(
        "--dataset-dir",
        help="jet / emergence models: where the real set is built (default <state_dir>/datasets/jets or .../emergence)",
    )
    p.add_argument(
        "--cadence-s",
        type=float,
        help="emergence-fcn with --data LISTS: frames used inside a window, a multiple of 720 s (default 720: all)",
    )
    p.add_argument(
        "--births",
        choices=("refine", "add", "off"),
        help="emergence-fcn with --data LISTS: Debrecen births sharpen the emergence times (refine, default), also add"
        " the on-disk SDO-era births as regions (add), or are ignored (off)",
    )
    p.add_argument("--cache-dir", help="flare-regions: cache of the built region-day table (default <state_dir>/cache)")
    p.add_argument("--out", help="where to write (default: models.weights_dir of the config)")
    p.set_defaults(func=_cmd_train)
