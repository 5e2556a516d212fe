#!/usr/bin/env python3
"""Where a transformer training step's time goes: wall time of each phase, and page faults per step.

    python benchmarks/transformer_phases.py [--threads 1,2] [--steps 60] [--default-malloc]
        [--suffix-rows N] [--one-prefix-piece]

The step of fig1_div_transformer on the run's first minibatch (512), as bench_engine.py builds it.
A step runs its work in five maps over the engine's threads, in this order; the time between
them is on the calling thread alone. ``--default-malloc`` leaves glibc's malloc as it is instead of
``keep_freed_memory``, to see what keeping freed memory saves (run each way in its own process:
the setting is process-wide). ``--suffix-rows`` and ``--one-prefix-piece`` cut the batch
otherwise than the engine does (it changes the last bits of the sums), to time other cuts.
"""

from __future__ import annotations

import argparse
import collections
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import TRANSFORMER, Setup, cpu_name  # noqa: E402

import grokking.parallel as parallel  # noqa: E402
from grokking import transformer  # noqa: E402

PHASES = ("prefix pieces forward and the first layer's per-y part",
          "the chunks, forward and backward",
          "prefix pieces backward and the per-y part's",
          "adding the gradients' parts",
          "AdamW")


def measure(setup: Setup, threads: int, steps: int) -> tuple[dict, float, float]:
    """Milliseconds per step of each phase and of the whole step, and minor page faults per step."""
    spent = collections.defaultdict(float)
    calls = []
    plain_map = parallel.THREADS.map

    def timed_map(fn, items):
        t0 = time.perf_counter()
        result = plain_map(fn, items)
        i = len(calls) % len(PHASES)
        calls.append(i)
        spent[PHASES[i]] += time.perf_counter() - t0
        return result

    with parallel.engine_threads(threads):
        for _ in range(20):
            setup.numpy_step()
        parallel.THREADS.map = timed_map
        try:
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            for _ in range(steps):
                setup.numpy_step()
            total = (time.perf_counter() - t0) / steps * 1e3
            faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps
        finally:
            del parallel.THREADS.map  # back to the class's method
    if len(calls) != steps * len(PHASES):
        raise SystemExit(f"a step made {len(calls) / steps} maps, not {len(PHASES)}: update PHASES")
    return {k: v / steps * 1e3 for k, v in spent.items()}, total, faults


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--default-malloc", action="store_true", help="leave glibc's malloc thresholds as they are")
    ap.add_argument("--suffix-rows", type=int, help=f"examples per chunk, about (the engine's: {transformer.SUFFIX_ROWS})")
    ap.add_argument("--one-prefix-piece", action="store_true", help="the distinct x in one piece, not two")
    args = ap.parse_args()
    if args.suffix_rows:
        transformer.SUFFIX_ROWS = args.suffix_rows  # _chunks reads it at each call
    if args.one_prefix_piece:
        plan = transformer._Plan.__init__

        def one_piece(self, *a, **k):
            plan(self, *a, **k)
            self.pieces = [slice(0, len(self.xs))]
        transformer._Plan.__init__ = one_piece
    if args.default_malloc:
        parallel.keep_freed_memory = lambda: False  # engine_threads looks it up at each call
    threads = [int(t) for t in args.threads.split(",")]
    setup = Setup(TRANSFORMER, minibatch=True)
    results = {n: measure(setup, n, args.steps) for n in threads}
    print(f"{TRANSFORMER}, minibatch 512, {args.steps} steps; {cpu_name()}; "
          f"malloc {'default' if args.default_malloc else 'keeping freed memory'}; "
          f"{len(transformer._chunks(512))} chunks, {'one prefix piece' if args.one_prefix_piece else 'prefix pieces as the engine'}\n")
    print("| phase | " + " | ".join(f"{n} thread{'s' * (n > 1)}, ms" for n in threads) + " |")
    print("|---|" + "---|" * len(threads))
    for phase in PHASES:
        print(f"| {phase} | " + " | ".join(f"{results[n][0][phase]:.2f}" for n in threads) + " |")
    rest = {n: results[n][1] - sum(results[n][0].values()) for n in threads}
    print("| the rest, on the calling thread (plan, gathers, sums over chunks) | "
          + " | ".join(f"{rest[n]:.2f}" for n in threads) + " |")
    print("| step | " + " | ".join(f"{results[n][1]:.2f}" for n in threads) + " |")
    print("| page faults per step | " + " | ".join(f"{results[n][2]:.0f}" for n in threads) + " |")


if __name__ == "__main__":
    main()
