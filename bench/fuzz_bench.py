"""Long-run fuzz benchmark: hostile FITS files and configs through heliowatch's readers (issue 11).

Three targets, each fed ``--cases`` Hypothesis examples (the same strategies as the bounded CI
fuzz tests in ``tests/pipelines/test_fits_fuzz.py`` and ``tests/daemon/test_config_fuzz.py``):

- ``fits``:     mutated header cards and odd data through ``read_fits``;
- ``geometry``: the same files through ``read_fits`` and the disk geometry of ``detect``
                (``prepare_disk``), the header -> geometry path;
- ``config``:   random TOML documents, raw files and env overrides through ``load_config``.

Each case must end in a result or the reader's typed reject (``DataRejected``, ``UsageError``,
``ConfigError``); anything else is a crash. Prints, per target: cases, accepted, rejects,
crashes (with the first few), the slowest case and the process's peak RSS.

Usage::

    python bench/fuzz_bench.py --cases 10000            # the issue's long run (about an hour here)
    python bench/fuzz_bench.py --cases 50 --targets fits # a quick check
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heliowatch.daemon.config import load_config
from heliowatch.daemon.errors import ConfigError
from heliowatch.models.core.errors import UsageError
from heliowatch.models.regions.frame import prepare_disk
from heliowatch.pipelines.errors import DataRejected
from heliowatch.pipelines.fitsio import read_fits
from tests.fuzz_strategies import config_documents, config_texts, data_file, data_specs, dump_toml, env_overrides, header_edits
from tests.hostile_fits import MAGNETOGRAM, SHARP, edit_cards


class Tally:
    """Counts of one target's outcomes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.outcomes: Counter[str] = Counter()
        self.crashes: list[str] = []
        self.max_s = 0.0
        self.slowest = ""

    def run(self, label: str, fn: Callable[[], Any], expected: tuple[type[BaseException], ...]) -> None:
        t0 = time.perf_counter()
        try:
            fn()
            self.outcomes["accepted"] += 1
        except expected as e:
            self.outcomes[f"rejected:{getattr(e, 'reason', type(e).__name__)}"] += 1
        except Exception as e:
            self.outcomes["crash"] += 1
            if len(self.crashes) < 5:
                self.crashes.append(f"{label}: {type(e).__name__}: {str(e)[:200]} @ {traceback.extract_tb(e.__traceback__)[-1]}")
        dt = time.perf_counter() - t0
        if dt > self.max_s:
            self.max_s, self.slowest = dt, label

    def report(self) -> dict[str, Any]:
        cases = sum(self.outcomes.values())
        rejects = sum(n for k, n in self.outcomes.items() if k.startswith("rejected"))
        return {
            "target": self.name,
            "cases": cases,
            "accepted": self.outcomes["accepted"],
            "rejects": rejects,
            "crashes": self.outcomes["crash"],
            "reasons": {k: n for k, n in sorted(self.outcomes.items()) if k.startswith("rejected")},
            "max_case_s": round(self.max_s, 3),
            "slowest_case": self.slowest[:200],
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "first_crashes": self.crashes,
        }


def _settings(n: int) -> settings:
    return settings(
        max_examples=n, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck), print_blob=False
    )


def _fits_case(tmp: Path, case: Any) -> Path:
    kind, payload = case
    if kind == "data":
        return data_file(tmp / "x.fits", payload)
    src = MAGNETOGRAM if kind == "mag" else SHARP
    return edit_cards(src, tmp / src.name, payload)


_fits_cases = st.one_of(
    st.tuples(st.just("mag"), header_edits()),
    st.tuples(st.just("sharp"), header_edits()),
    st.tuples(st.just("data"), data_specs()),
)


def fuzz_fits(n: int, *, geometry: bool) -> Tally:
    tally = Tally("geometry" if geometry else "fits")
    tmp = Path(tempfile.mkdtemp(prefix="hw-fuzz-"))

    def target(f: Path) -> None:
        frame = read_fits(f)
        if geometry:
            prepare_disk(frame, name=f.name)  # the FitsFrame itself, as pipelines/regions.py passes it

    @_settings(n)
    @given(case=_fits_cases)
    def one(case: Any) -> None:
        try:
            f = _fits_case(tmp, case)
        except Exception:  # astropy will not write this combination: not a case
            return
        tally.run(repr(case)[:200], lambda: target(f), (DataRejected, UsageError))

    one()
    return tally


def fuzz_config(n: int) -> Tally:
    tally = Tally("config")
    tmp = Path(tempfile.mkdtemp(prefix="hw-fuzz-"))
    f = tmp / "config.toml"
    cases = st.one_of(
        st.tuples(st.just("doc"), config_documents()),
        st.tuples(st.just("raw"), config_texts()),
        st.tuples(st.just("env"), env_overrides()),
    )

    @_settings(n)
    @given(case=cases)
    def one(case: Any) -> None:
        kind, payload = case
        environ: dict[str, str] = payload if kind == "env" else {}
        content = dump_toml(payload).encode("utf-8", "surrogatepass") if kind == "doc" else payload if kind == "raw" else b""
        f.write_bytes(content)
        tally.run(repr(case)[:200], lambda: load_config(f, environ=environ), (ConfigError,))

    one()
    return tally


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10_000, help="examples per target (default 10,000)")
    ap.add_argument("--targets", default="fits,geometry,config", help="comma-separated: fits, geometry, config")
    ap.add_argument("--json", action="store_true", help="one JSON object per target instead of the table")
    a = ap.parse_args()
    reports = []
    for name in a.targets.split(","):
        t0 = time.perf_counter()
        tally = fuzz_config(a.cases) if name == "config" else fuzz_fits(a.cases, geometry=name == "geometry")
        rep = tally.report()
        rep["wall_s"] = round(time.perf_counter() - t0, 1)
        reports.append(rep)
        if a.json:
            print(json.dumps(rep), flush=True)
        else:
            print(
                f"{rep['target']:9s} cases {rep['cases']:6d}  accepted {rep['accepted']:6d}  rejects {rep['rejects']:6d}  "
                f"crashes {rep['crashes']:3d}  max/case {rep['max_case_s']:.3f} s  peak RSS {rep['peak_rss_mib']:.0f} MiB  "
                f"wall {rep['wall_s']:.0f} s",
                flush=True,
            )
            for c in rep["first_crashes"]:
                print(f"  crash: {c}")
    sys.exit(1 if any(r["crashes"] for r in reports) else 0)


if __name__ == "__main__":
    main()
