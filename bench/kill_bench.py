"""Crash-consistency benchmark: N runs of the replay killed with SIGKILL at random moments.

Usage::

    python bench/kill_bench.py [--trials 30] [--seed 1] [--archive synthetic|demo] [--disks 3]
                               [--transport maildir|smtp] [--work DIR] [--json FILE]

A control run and a reference run of ``heliowatch run --replay <archive> --once``, then N
trials, each started in a fresh state directory, killed with SIGKILL at a moment drawn by a
seeded RNG over the reference's duration (one draw per equal slice, counted from the run's
``starting`` log line) and restarted, unkilled, until it exits 0. Every trial's products,
processed keys, frames, alerts, deliveries, ledger rows and delivered mail are compared with the
reference; one line per trial, then the totals. The harness is :mod:`tests.kill_harness`
(``tests/e2e/test_kill.py`` runs it with 10 kills in CI).

``--archive demo`` replays the bundled demo archive with every source (the experiment of issue
11: ~60 s a run here); the default is a small synthetic archive (~15 s a run). ``--transport
smtp`` delivers to an SMTP server in this process instead of a maildir and counts what it
receives per Message-ID (a trial is done once its outbox is delivered: the attempt a kill cut
off is resent after its 1 s backoff); a duplicate there is a kill that fell between the
server's acceptance and the outbox's commit, the documented window (docs/operations.md).

Exits 1 when anything was lost, changed or left behind, or (maildir) duplicated; with SMTP,
when more messages were duplicated than there were kills.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from tests.kill_harness import run_harness

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=30, help="killed runs (default 30)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the kill moments")
    ap.add_argument("--archive", choices=("synthetic", "demo"), default="synthetic")
    ap.add_argument("--disks", type=int, default=3, help="full disks of the synthetic archive")
    ap.add_argument("--transport", choices=("maildir", "smtp"), default="maildir")
    ap.add_argument("--work", type=Path, help="keep every run's state and log here (default: a temporary directory)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    if a.trials < 1 or a.disks < 1:
        print("kill_bench: --trials and --disks must be >= 1", file=sys.stderr)
        return 2
    print("command: python bench/kill_bench.py " + shlex.join(sys.argv[1:]), flush=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="heliowatch-kill-") as tmp:
        work = a.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        h = run_harness(
            work,
            trials=a.trials,
            seed=a.seed,
            archive=a.archive,
            disks=a.disks,
            transport=a.transport,
            say=lambda s: print(s, flush=True),
        )
    killed = sum(t.killed for t in h.trials)
    changed = sum(t.comparison.total_changed for t in h.trials if t.comparison is not None)
    stray = sum(len(t.comparison.stray) for t in h.trials if t.comparison is not None)
    by_kind: dict[str, dict[str, int]] = {"lost": {}, "duplicated": {}}
    for t in h.trials:
        if t.comparison is None:
            continue
        for name, d in (("lost", t.comparison.lost), ("duplicated", t.comparison.duplicated)):
            for k, v in d.items():
                by_kind[name][k] = by_kind[name].get(k, 0) + v
    took = time.monotonic() - t0
    print(
        f"total: {a.trials} trials ({killed} killed mid-run), {sum(t.restarts for t in h.trials)} restarts, "
        f"{took:.0f} s: lost {h.lost}, duplicated {h.duplicated}, changed {changed}, stray files {stray}"
    )
    for name, d in by_kind.items():
        print(f"  {name} by kind: " + (", ".join(f"{k}={v}" for k, v in d.items() if v) or "none"))
    if a.json:
        figures = {
            "command": "python bench/kill_bench.py " + shlex.join(sys.argv[1:]),
            "trials": a.trials,
            "killed": killed,
            "restarts": sum(t.restarts for t in h.trials),
            "seconds": round(took, 1),
            "reference_s": round(h.reference_run.seconds, 1),
            "lost": h.lost,
            "duplicated": h.duplicated,
            "changed": changed,
            "stray_files": stray,
            "by_kind": by_kind,
            "per_trial": [
                {
                    "kill_at_s": round(t.kill_at_s, 2),
                    "killed": t.killed,
                    "restarts": t.restarts,
                    "line": t.comparison.line() if t.comparison is not None else None,
                }
                for t in h.trials
            ],
        }
        a.json.write_text(json.dumps(figures, indent=2) + "\n")
    mail_dup = by_kind["duplicated"].get("mail", 0)
    # SMTP: at most one duplicate per kill (the window between acceptance and commit); all else exactly once.
    dup_ok = h.duplicated - mail_dup == 0 and (mail_dup <= killed if a.transport == "smtp" else mail_dup == 0)
    return 0 if h.lost == 0 and changed == 0 and stray == 0 and dup_ok else 1


if __name__ == "__main__":
    sys.exit(main())
