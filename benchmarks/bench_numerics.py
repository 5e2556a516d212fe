#!/usr/bin/env python3
"""What the portable kernels cost: training-step time pinned against the machine's own kernels.

    python benchmarks/bench_numerics.py [--rounds 7] [--steps 20] [--threads 2] [--settings ...]

The kernels are chosen when NumPy loads, so each mode needs its own process: every round starts
one process with GROKKING_NUMERICS=portable and one with =native, in alternating order, and each
times the same training steps (forward, backward, AdamW, as ``bench_engine.py``) of every setting
after a warm-up. Prints the median ms per step of each mode over the rounds, the median of the
rounds' ratios (portable / native) with their range, and both numeric environments. On a machine
whose own kernels are the portable ones (AVX2 without AVX-512) the two modes run the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTINGS = {  # name: (preset, minibatch)
    "mod_add_grokking": ("mod_add_grokking", False),
    "perm_s5_grokking": ("perm_s5_grokking", False),
    "fig1_div_transformer minibatch 512": ("fig1_div_transformer", True),
    "fig1_div_transformer full batch": ("fig1_div_transformer", False),
}


def child(names: list[str], steps: int, threads: int, repeats: int) -> None:
    sys.path.insert(0, str(HERE))
    from bench_engine import Setup, median_ms  # imports grokking before NumPy

    from grokking import numerics
    from grokking.model import engine_threads

    out = {"environment": numerics.environment()["id"], "ms": {}}
    for name in names:
        preset, minibatch = SETTINGS[name]
        s = Setup(preset, minibatch=minibatch)
        with engine_threads(threads):
            out["ms"][name] = statistics.median(median_ms(s.numpy_step, steps, repeats, settle=0.5))
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20, help="steps per timed repeat (full-batch transformer: a fifth)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per process (their median counts)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated subset of: " + ", ".join(SETTINGS))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = args.settings.split(",")
    if args.child:
        child(names, args.steps, args.threads, args.repeats)
        return
    ms = {mode: {n: [] for n in names} for mode in ("portable", "native")}
    envs = {}
    for r in range(args.rounds):
        for mode in ("portable", "native") if r % 2 == 0 else ("native", "portable"):
            env = {**os.environ, "GROKKING_NUMERICS": mode}
            for key in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES"):  # the machine's own choice
                env.pop(key, None) if mode == "native" else None
            for name in names:  # one process per setting: the full-batch transformer takes fewer steps
                steps = max(2, args.steps // 5) if name.endswith("full batch") else args.steps
                p = subprocess.run([sys.executable, __file__, "--child", "--settings", name, "--steps", str(steps),
                                    "--threads", str(args.threads), "--repeats", str(args.repeats)],
                                   env=env, capture_output=True, text=True, check=True)
                result = json.loads(p.stdout)
                envs[mode] = result["environment"]
                ms[mode][name].append(result["ms"][name])
        print(f"round {r + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    sys.path.insert(0, str(HERE))
    from bench_engine import cpu_name

    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores, {args.threads} engine threads; {args.rounds} rounds")
    for mode, env in envs.items():
        print(f"{mode}: {env}")
    print("\n| setting | portable ms/step | native ms/step | portable / native (median, range over rounds) |")
    print("|---|---|---|---|")
    for name in names:
        a, b = ms["portable"][name], ms["native"][name]
        ratios = sorted(x / y for x, y in zip(a, b))
        print(f"| {name} | {statistics.median(a):.2f} | {statistics.median(b):.2f} | "
              f"{statistics.median(ratios):.3f} ({ratios[0]:.3f}-{ratios[-1]:.3f}) |")


if __name__ == "__main__":
    main()
