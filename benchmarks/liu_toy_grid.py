#!/usr/bin/env python3
"""Liu et al. 2022's Fig. 5b phase diagram, rerun with grokking.toy and compared cell by cell with
the per-cell steps their repository ships (benchmarks/data/liu2022_fig5b_steps.csv).

    nice -n 10 python benchmarks/liu_toy_grid.py [--workers 2] [--steps 10000]
        [--out benchmarks/data/liu_toy_grid_ours.csv] [--figure docs/img/liu_toy_phases.png]
    python benchmarks/liu_toy_grid.py --compare-only   # from --out, without training

Prints the share of cells whose phase (their notebook's rule, grokking.toy.liu_phase) matches
theirs, the confusion matrix of phases, how often the steps themselves agree where both runs
reached 0.9, how grokking.phases.classify's reading differs from their rule, and the wall time;
writes our cells to --out and draws ours next to theirs.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import Counter
from pathlib import Path

# Each run is small single-threaded arithmetic; BLAS threads would only fight the other worker.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import grokking  # noqa: E402,F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np  # noqa: E402

from grokking import toy  # noqa: E402
# The comparison and the figure are the registry's (run_claims --claims liu_toy_phases): one code for both.
from grokking.toy_claim import COLUMNS, compare, draw  # noqa: E402

THEIRS = ROOT / "benchmarks" / "data" / "liu2022_fig5b_steps.csv"


def report(cmp: dict, ours: list[dict]) -> None:
    print(f"phase agreement (their rule): {cmp['agree']}/{cmp['cells']} = {cmp['agree'] / cmp['cells']:.1%}")
    print("ours: " + ", ".join(f"{p} {cmp['ours'][p]}" for p in toy.PHASES))
    print("theirs: " + ", ".join(f"{p} {cmp['theirs'][p]}" for p in toy.PHASES))
    print("confusion matrix (rows ours, columns theirs):")
    print("  " + " " * 14 + "".join(f"{p[:13]:>14s}" for p in toy.PHASES))
    for a in toy.PHASES:
        print(f"  {a:14s}" + "".join(f"{cmp['matrix'][a][b]:14d}" for b in toy.PHASES))
    for split, s in cmp["steps"].items():
        print(f"{split}: both reached in {s['both_reached']} cells, both never in {s['both_never']}, one only in "
              f"{s['one_only']}; of the reached: equal {s['equal']}, within 1 step {s['within_1']}, within 10 "
              f"{s['within_10']}, within 10% {s['within_10pct']}, median |difference| {s['median_abs']}")
    print("cells whose phase differs (eta_dec, wd: ours train/test, theirs train/test):")
    for e, w, ot, oe, tt, te, a, b in cmp["mismatches"]:
        print(f"  {e:.3g}, {w:g}: {ot}/{oe} {a} vs {tt}/{te} {b}")
    project = [(c["phase"], c["project_phase"]) for c in ours if c["phase"] != c["project_phase"]]
    print(f"grokking.phases.classify differs from their rule on {len(project)} of our cells: "
          + (", ".join(f"{n} x {a} -> {b}" for (a, b), n in sorted(Counter(project).items())) or "none"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=toy.STEPS)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "data" / "liu_toy_grid_ours.csv"))
    ap.add_argument("--figure", default=str(ROOT / "docs" / "img" / "liu_toy_phases.png"))
    ap.add_argument("--compare-only", action="store_true", help="read --out instead of training")
    args = ap.parse_args(argv)
    if args.workers < 1 or args.steps < 2:
        print("error: --workers must be >= 1 and --steps >= 2", file=sys.stderr)
        return 2
    theirs = toy.read_steps(THEIRS)
    if args.compare_only:
        with open(args.out, newline="") as f:
            ours = [{k: (v if k.endswith("phase") else float(v) if k in ("eta_dec", "weight_decay", "seconds")
                         else int(v)) for k, v in r.items()} for r in csv.DictReader(f)]
    else:
        start = time.perf_counter()
        ours = toy.grid(steps=args.steps, workers=args.workers)
        wall = time.perf_counter() - start
        print(f"grid of {len(ours)} runs x {args.steps} steps: {wall:.0f} s wall on {args.workers} workers, "
              f"{sum(c['seconds'] for c in ours):.0f} s of runs (median {np.median([c['seconds'] for c in ours]):.1f} s)")
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows({**c, "eta_dec": repr(c["eta_dec"]), "seconds": f"{c['seconds']:.2f}"} for c in ours)
    cmp = compare(ours, theirs, args.steps)
    report(cmp, ours)
    print(f"figure: {draw(ours, theirs, cmp, Path(args.figure), args.steps)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
