#!/usr/bin/env python3
"""Speed of the dense model (``model.type=dense``): this NumPy engine against the same model in
PyTorch eager, one process, for the training step of each dense preset.

    python benchmarks/bench_dense.py [--presets sparse_parity,digits_omnigrok] [--threads 1,2]
        [--repeats 11] [--steps 200] [--settle 0.3] [--out table.md]

For each preset and thread count it times a training step (forward, backward, optimizer update)
of three kinds, alternating in the same process, and prints medians over ``--repeats`` turns:

* NumPy: ``model.loss_and_grads`` + ``optimizer.step`` on a fixed batch (the run's first
  minibatch), as bench_engine.py times the MLP;
* NumPy run step: ``experiment._Run.step`` itself, which also draws the next minibatch from the
  BatchOrder and gathers its rows, what a run pays per step;
* PyTorch: ``torch_reference.torch_dense`` with the same initial weights, F.cross_entropy or
  F.mse_loss, and torch.optim.SGD or AdamW with its default implementation, on the same fixed
  batch, ``torch.set_num_threads`` set to the same count.

Both in float32, the presets' dtype. The eval share is the time the preset's evaluation schedule
spends on both whole splits, as a share of its training time. The machine, versions and date are
printed with the table. torch is optional (without it the PyTorch column is "-").
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import grokking  # noqa: E402,F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np  # noqa: E402

from bench_engine import cpu_name, median_ms  # noqa: E402
from grokking import resolve_config  # noqa: E402
from grokking.engine import Batch  # noqa: E402
from grokking.experiment import _Run, eval_schedule  # noqa: E402
from grokking.model import engine_threads  # noqa: E402

try:
    import torch
    import torch.nn.functional as F

    from torch_reference import torch_dense
except ImportError:
    torch = None

PRESETS = ("sparse_parity", "digits_omnigrok")


class Setup:
    """A preset's run as _Run builds it, its first minibatch, and the PyTorch copy."""

    def __init__(self, preset: str):
        config = resolve_config(preset, None, ["output.measures="])
        with tempfile.TemporaryDirectory() as tmp:  # _Run writes nothing until asked
            self.run = run = _Run(config, Path(tmp) / "run", preset)
        self.initial = {k: v.copy() for k, v in run.params.items()}
        self.rows = run.batch_order.next() if run.batch_order is not None else run.train_idx
        tb = run.table
        self.batch = Batch(tb.x[self.rows], tb.y[self.rows], tb.labels[self.rows], tb.n_tokens, run.model.dtype)
        self.lr = config.optimizer.lr
        self.step_count = 0

    def numpy_step(self):
        run = self.run
        _, _, grads = run.model.loss_and_grads(run.params, self.batch)
        run.optimizer.step(run.params, grads, self.lr)

    def run_step(self):
        self.step_count += 1
        self.run.step(self.step_count)

    def evaluation(self):
        run = self.run
        run.model.evaluate(run.params, *run.train_rows)
        run.model.evaluate(run.params, *run.val_rows)

    def torch_step_fn(self):
        run = self.run
        o = run.config.optimizer
        net = torch_dense(run.model, self.initial, torch.float32)
        if o.name == "sgd":
            opt = torch.optim.SGD(net.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        else:
            cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
            opt = cls(net.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay)
        x = torch.from_numpy(np.ascontiguousarray(self.batch.x, dtype=np.float32))
        labels = torch.from_numpy(np.ascontiguousarray(self.batch.labels))
        if run.config.model.loss == "mse":
            target = F.one_hot(labels, run.table.n_classes).float()
            loss = lambda z: F.mse_loss(z, target)  # noqa: E731
        else:
            loss = lambda z: F.cross_entropy(z, labels)  # noqa: E731

        def step():
            opt.zero_grad(set_to_none=True)
            loss(net(x)).backward()
            opt.step()

        return step


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated (both engines)")
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--steps", type=int, default=200, help="steps per timed turn")
    ap.add_argument("--settle", type=float, default=0.3,
                    help="seconds of untimed steps before each turn (see bench_engine.median_ms)")
    ap.add_argument("--out", help="also write the markdown table to this file")
    args = ap.parse_args(argv)
    if torch is not None:
        # As bench_engine: neither engine may be slowed by subnormal floats (ours floors its softmax).
        torch.set_flush_denormal(True)
    from threadpoolctl import threadpool_info

    blas = ", ".join(f"{i['internal_api']} {i.get('version', '')} ({i.get('architecture', '')})"
                     for i in threadpool_info() if i["user_api"] == "blas")
    lines = [
        f"Machine: {cpu_name()}, {os.cpu_count()} cores. Python {platform.python_version()}, NumPy "
        f"{np.__version__} ({blas}), torch {torch.__version__ if torch else 'not installed'}. "
        f"{datetime.date.today().isoformat()}. float32, {args.repeats} turns of {args.steps} steps per engine, "
        "alternating, medians.",
        "",
        "| preset | rows/step | threads | NumPy ms/step | NumPy run step ms | PyTorch ms/step | PyTorch / NumPy | eval share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print(lines[0], flush=True)
    for preset in args.presets.split(","):
        for threads in map(int, args.threads.split(",")):
            s = Setup(preset)
            if torch is not None:
                torch.set_num_threads(threads)
            torch_step = s.torch_step_fn() if torch is not None else None
            ours, run, theirs = [], [], []
            for _ in range(args.repeats + 1):  # the first round warms up all three
                with engine_threads(threads), np.errstate(all="ignore"):
                    ours += median_ms(s.numpy_step, args.steps, 1, args.settle)
                    run += median_ms(s.run_step, args.steps, 1, args.settle)
                if torch_step:
                    theirs += median_ms(torch_step, args.steps, 1, args.settle)
            ms, run_ms = statistics.median(ours[1:]), statistics.median(run[1:])
            t_ms = statistics.median(theirs[1:]) if theirs else None
            with engine_threads(threads):
                eval_ms = statistics.median(median_ms(s.evaluation, 1, args.repeats))
            tr = s.run.config.training
            share = len(eval_schedule(tr.steps, tr.eval_interval)) * eval_ms / (tr.steps * run_ms)
            torch_cols = f"{t_ms:.3f} | {t_ms / ms:.2f}x" if t_ms else "- | -"
            lines.append(f"| {preset} | {len(s.rows)} | {threads} | {ms:.3f} | {run_ms:.3f} | {torch_cols} | "
                         f"{share:.1%} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
