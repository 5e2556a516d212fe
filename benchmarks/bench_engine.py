#!/usr/bin/env python3
"""Training-engine benchmark: this NumPy engine against the same MLP in PyTorch eager, one process.

    python benchmarks/bench_engine.py [--threads 2] [--repeats 7] [--out docs/performance-table.md]

For the MLP of each preset it prints milliseconds per full training step (forward, backward,
AdamW) for both engines, alternating in the same process, the ratio, the share of training time
spent evaluating at the preset's schedule, and the achieved FLOP rate (FLOPs of a dense
formulation of the step) beside this machine's float32 matmul rate. Then the wall time until each
grokking preset reaches 99% validation accuracy (seed 0). torch is optional (pip install torch).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402

from grokking import resolve_config, run_experiment  # noqa: E402
from grokking.experiment import build_model, build_optimizer, eval_schedule  # noqa: E402
from grokking.model import Batch, engine_threads  # noqa: E402
from grokking.optimizer import flatten  # noqa: E402
from grokking.tasks import build_table, split_indices  # noqa: E402

PRESETS = ("mod_add_grokking", "perm_s5_grokking")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_ms(fn, steps: int, repeats: int, settle: float = 0.0) -> list[float]:
    """Per-step milliseconds of ``steps`` calls, once per repeat, each after ``settle`` seconds of
    untimed calls.

    Settling matters when engines alternate: torch's OpenMP threads keep spinning on the cores for
    a while after its last step (our steps measured 13% slower right after a PyTorch turn), and
    threads woken from sleep take a few steps to get going, so each turn is timed only once the
    machine is in that engine's steady state.
    """
    out = []
    for _ in range(repeats):
        end = time.perf_counter() + settle
        while time.perf_counter() < end:
            fn()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        out.append((time.perf_counter() - t0) / steps * 1e3)
    return out


def matmul_gflops(threads: int) -> float:
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ a
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - t0)
    return 2 * 2048 ** 3 / statistics.median(times) / 1e9


class Setup:
    """The preset's task, split, model and optimizer, built as run_experiment builds them."""

    def __init__(self, preset: str):
        self.config = c = resolve_config(preset)
        t = c.task
        self.table = build_table(t.operation, t.p, t.n)
        split_seq, init_seq, _ = np.random.SeedSequence(c.training.seed).spawn(3)
        self.train, self.val = split_indices(len(self.table), t.train_fraction, np.random.default_rng(split_seq))
        self.model = build_model(c, self.table.n_tokens, self.table.n_classes)
        self.params = flatten(self.model.init_params(np.random.default_rng(init_seq)))
        self.initial = {k: v.copy() for k, v in self.params.items()}
        self.optimizer = build_optimizer(c, self.params)
        tb = self.table
        self.batch = Batch(tb.x[self.train], tb.y[self.train], tb.labels[self.train],
                           tb.n_tokens, self.model.dtype)

    def numpy_step(self):
        _, _, grads = self.model.loss_and_grads(self.params, self.batch)
        self.optimizer.step(self.params, grads, self.config.optimizer.lr)

    def evaluation(self):
        tb = self.table
        for idx in (self.train, self.val):
            self.model.evaluate(self.params, tb.x[idx], tb.y[idx], tb.labels[idx])

    def dense_step_flops(self) -> float:
        """Multiply-adds x 2 of forward + backward of the dense formulation (concat -> W1 -> W_out)."""
        m, n = self.model, len(self.train)
        dims = [(2 * m.d_embed, m.d_hidden)] + [(m.d_hidden, m.d_hidden)] * (m.n_layers - 1)
        dims.append((m.d_hidden, m.n_classes))
        return 3 * 2 * n * sum(a * b for a, b in dims)  # forward, grad of weights, grad of inputs

    def torch_step_fn(self):
        import torch

        m, c = self.model, self.config.optimizer
        p = self.initial

        class TorchMLP(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = torch.nn.Embedding(m.n_tokens, m.d_embed)
                sizes = [2 * m.d_embed] + [m.d_hidden] * m.n_layers
                self.hidden = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
                self.out = torch.nn.Linear(m.d_hidden, m.n_classes)

            def forward(self, x, y):
                h = torch.cat([self.embed(x), self.embed(y)], dim=1)
                for layer in self.hidden:
                    h = torch.relu(layer(h))
                return self.out(h)

        net = TorchMLP()
        with torch.no_grad():  # the same initial weights, so both engines train the same model
            net.embed.weight.copy_(torch.from_numpy(p["embed"]))
            for k, layer in enumerate(net.hidden, start=1):
                layer.weight.copy_(torch.from_numpy(p[f"W{k}"].T))
                layer.bias.copy_(torch.from_numpy(p[f"b{k}"]))
            net.out.weight.copy_(torch.from_numpy(p["W_out"].T))
            net.out.bias.copy_(torch.from_numpy(p["b_out"]))
        opt = torch.optim.AdamW(net.parameters(), lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps,
                                weight_decay=c.weight_decay)
        b = self.batch
        x, y, labels = (torch.from_numpy(np.ascontiguousarray(a)) for a in (b.x, b.y, b.labels))

        def step():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x, y), labels).backward()
            opt.step()

        return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20, help="steps per timed repeat")
    ap.add_argument("--settle", type=float, default=0.3,
                    help="seconds of untimed steps before each engine's turn (see median_ms)")
    ap.add_argument("--skip-end-to-end", action="store_true")
    ap.add_argument("--out", help="also write the markdown table to this file")
    args = ap.parse_args()

    try:
        import torch

        torch.set_num_threads(args.threads)
        # Once the model memorizes, softmax underflows into subnormals, which slow x86 ~10x; our engine
        # floors its exponent, and torch gets the standard remedy, so neither engine is handicapped.
        torch.set_flush_denormal(True)
        torch_version = torch.__version__
    except ImportError:
        torch = None
        torch_version = "not installed"
    from threadpoolctl import threadpool_info

    blas = ", ".join(f"{i['internal_api']} {i.get('version', '')} ({i.get('architecture', '')})"
                     for i in threadpool_info() if i["user_api"] == "blas")
    peak = matmul_gflops(args.threads)
    lines = [
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; {args.threads} threads for both engines. "
        f"Python {platform.python_version()}, NumPy {np.__version__} ({blas}), torch {torch_version}. "
        f"{datetime.date.today().isoformat()}.",
        "",
        f"float32 matmul rate of this machine (2048^3 np.matmul, {args.threads} threads): {peak:.0f} GFLOP/s",
        "",
        "| preset MLP | rows/step | NumPy ms/step | PyTorch ms/step | PyTorch / NumPy | eval share | NumPy GFLOP/s (dense-equivalent) |",
        "|---|---|---|---|---|---|---|",
    ]
    for preset in PRESETS:
        s = Setup(preset)
        torch_step = s.torch_step_fn() if torch is not None else None
        ours, theirs = [], []
        # Alternate the engines so both see the same machine state. Ours runs inside engine_threads
        # (its BLAS held to one thread per chunk worker), torch outside it with its own threads.
        for _ in range(args.repeats + 1):
            with engine_threads(args.threads):
                ours += median_ms(s.numpy_step, args.steps, 1, args.settle)
            if torch_step:
                theirs += median_ms(torch_step, args.steps, 1, args.settle)
        ours, theirs = ours[1:], theirs[1:]  # the first round warms up both
        with engine_threads(args.threads):
            eval_ms = statistics.median(median_ms(s.evaluation, 1, args.repeats))
        ms = statistics.median(ours)
        tr = s.config.training
        share = len(eval_schedule(tr.steps, tr.eval_interval)) * eval_ms / (tr.steps * ms)
        t_ms = statistics.median(theirs) if theirs else None
        ratio = f"{t_ms / ms:.2f}x" if t_ms else "-"
        lines.append(f"| {preset} | {len(s.train)} | {ms:.2f} | {f'{t_ms:.2f}' if t_ms else '-'} | {ratio} | "
                     f"{share:.1%} | {s.dense_step_flops() / ms / 1e6:.0f} |")
        print(lines[-1], flush=True)
    if not args.skip_end_to_end:
        lines += ["", "| preset (seed 0) | steps to val 99% | wall time to val 99% | whole run |", "|---|---|---|---|"]
        for preset in PRESETS:
            with tempfile.TemporaryDirectory() as tmp:
                config = resolve_config(preset, None, ["output.curves=false", "output.progress=false"])
                summary = run_experiment(config, Path(tmp) / "run", name=preset, log=lambda *_: None,
                                         threads=args.threads)
            lines.append(f"| {preset} | {summary['steps_to_val_99']} | {summary['time_to_val_99_s']:.1f} s | "
                         f"{summary['wall_time_s']:.1f} s |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
