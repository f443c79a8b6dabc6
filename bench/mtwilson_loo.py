"""Mt. Wilson classes on the real labelled patches, leave one region out: before and after the
SRS priors and the fitted temperature.

Every real SHARP patch in the data root with NOAA's class for its day
(:func:`heliowatch.pipelines.regions.load_labelled_patches`: HARP 377, HARP 7115 twice, HARP 115,
856 and 4781) is classified by the rules as they were (scores normalised, no prior) and by the
calibration fitted on the other regions only (:func:`heliowatch.models.regions.calibration.leave_one_region_out`),
for the shipped ``within-delta`` priors and, for comparison, the ``joint`` ones. Prints a Markdown
table per patch and the exact-class accuracy and mean probability of the true class.

Usage: ``python bench/mtwilson_loo.py [--data ../shared/data] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from heliowatch.models.regions.calibration import leave_one_region_out
from heliowatch.pipelines.regions import load_labelled_patches


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args()
    patches = load_labelled_patches(Path(a.data))
    out = {}
    for mode in ("within-delta", "joint"):
        rows = leave_one_region_out(patches, prior_mode=mode)
        out[mode] = rows
        print(f"\nprior_mode = {mode}\n")
        print("| patch | region | SRS class | before: class (p true) | after: class (p true, max p) | T fitted |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            b, f = r["before"], r["after"]
            print(
                f"| {r['name']} | {r['region']} | {r['label']} | {b['class']} ({b['p_true']:.3f}) |"
                f" {f['class']} ({f['p_true']:.3f}, {max(f['probs'].values()):.3f}) | {r['temperature']:.2f} |"
            )
        for k in ("before", "after"):
            acc = sum(r[k]["class"] == r["label"] for r in rows)
            mean = sum(r[k]["p_true"] for r in rows) / len(rows)
            print(f"{k}: exact class {acc}/{len(rows)}, mean p(true class) {mean:.3f}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
