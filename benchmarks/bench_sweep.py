#!/usr/bin/env python3
"""Sweep throughput on 1 and 2 workers (a benchmark, not a test): the same runs, timed end to end.

    PYTHONPATH=src python benchmarks/bench_sweep.py [--steps 1000] [--seeds 0,1,2,3] [--workers 1,2]

Each configuration trains the same preset x seed runs into a fresh directory with run_suite, so the
time includes starting the worker processes. Prints a Markdown table for docs/sweeps.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from grokking.sweeps import run_suite  # noqa: E402


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="mod_add_grokking,perm_s5_grokking")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--workers", default="1,2")
    args = p.parse_args()
    presets = args.presets.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    n_runs = len(presets) * len(seeds)
    overrides = [f"training.steps={args.steps}"]
    results = []
    for workers in (int(w) for w in args.workers.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            rows = run_suite(presets, seeds, Path(tmp) / "sweep", overrides=overrides, curves=False,
                             workers=workers, log=lambda *_: None)
            seconds = time.perf_counter() - t0
        assert all(r["status"] == "completed" for r in rows), rows
        results.append((workers, seconds))
        print(f"{workers} worker(s): {seconds:.1f} s", file=sys.stderr)
    base = results[0][1]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{n_runs} runs ({', '.join(presets)} x seeds {args.seeds}, {args.steps} steps each, no curves); "
          f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average {load:.2f} at the end\n")
    print("| workers | seconds | runs per minute | speed-up |")
    print("|---|---|---|---|")
    for workers, seconds in results:
        print(f"| {workers} | {seconds:.1f} | {60 * n_runs / seconds:.1f} | {base / seconds:.2f}x |")


if __name__ == "__main__":
    main()
