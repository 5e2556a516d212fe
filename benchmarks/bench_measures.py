#!/usr/bin/env python3
"""What the progress measures cost: a preset's wall time with ``output.measures=all`` against
without, alternating in one process, median over repeats.

    python benchmarks/bench_measures.py [--presets mod_add_grokking,fig1_div_transformer]
        [--repeats 3] [--transformer-steps 2500] [--out docs/measures-table.md]

Each run is the preset as a user runs it (seed 0, every core, no curves); the transformer's budget
is cut to ``--transformer-steps`` (its evaluations keep the preset's schedule, so the measures' share
is that of the whole run, apart from the early log-spaced evaluations).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from grokking import resolve_config, run_experiment  # noqa: E402


def wall_time(preset: str, measures: str, steps: int | None) -> float:
    overrides = ["output.curves=false", "output.progress=false", f"output.measures={measures}"]
    if steps:
        overrides.append(f"training.steps={steps}")
    with tempfile.TemporaryDirectory() as tmp:
        return run_experiment(resolve_config(preset, overrides=overrides), Path(tmp) / "run",
                              log=lambda *_: None)["wall_time_s"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="mod_add_grokking,fig1_div_transformer")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--transformer-steps", type=int, default=2500)
    ap.add_argument("--out", help="also write the markdown table to this file")
    args = ap.parse_args(argv)
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}; median of {args.repeats} alternating runs each.", "",
             "| preset | steps | measures | wall time without | wall time with all | added |",
             "|---|---|---|---|---|---|"]
    for preset in args.presets.split(","):
        config = resolve_config(preset)
        steps = args.transformer_steps if config.model.type == "transformer" else None
        names = resolve_config(preset, overrides=["output.measures=all"]).output.measures
        times = {"": [], "all": []}
        for _ in range(args.repeats):
            for measures in times:
                times[measures].append(wall_time(preset, measures, steps))
        without, with_all = statistics.median(times[""]), statistics.median(times["all"])
        from grokking.measures import parse_measures

        lines.append(f"| {preset} | {steps or config.training.steps} | {', '.join(parse_measures(names, config.task))} "
                     f"| {without:.1f} s | {with_all:.1f} s | {with_all / without - 1:+.1%} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
