#!/usr/bin/env python3
"""Training-engine benchmark: this NumPy engine against the same models in PyTorch eager, one process.

    python benchmarks/bench_engine.py [--threads 2] [--repeats 7] [--models mlp,transformer]
        [--skip-end-to-end] [--out docs/performance-table.md]

For the MLP of each preset, and for the transformer of fig1_div_transformer at its minibatch (the
run's first) and at full batch, it prints milliseconds per training step (forward, backward,
AdamW) for both engines, alternating in the same process, the ratio, and the share of training
time spent evaluating at the preset's schedule. For the MLP, the achieved FLOP rate of a dense
formulation of the step; for the transformer, the FLOPs the engine computes, their rate, and the
floor they set at this machine's float32 matmul rate, beside the FLOPs of a dense implementation.
Then the wall time until each grokking preset reaches 99% validation accuracy (seed 0).
torch is optional (pip install torch).
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

import grokking  # noqa: E402,F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np  # noqa: E402

from grokking import resolve_config, run_experiment  # noqa: E402
from grokking.checkpoint import BatchOrder  # noqa: E402
from grokking.experiment import build_model, build_optimizer, eval_schedule, init_streams  # noqa: E402
from grokking.engine import Batch  # noqa: E402
from grokking.model import engine_threads  # noqa: E402
from grokking.optimizer import flatten  # noqa: E402
from grokking.tasks import build_table, split_indices  # noqa: E402

PRESETS = ("mod_add_grokking", "perm_s5_grokking")
SEQ = 4  # tokens per example of the transformer: x op y =
TRANSFORMER = "fig1_div_transformer"


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

    def __init__(self, preset: str, minibatch: bool = False):
        self.config = c = resolve_config(preset)
        t = c.task
        self.table = build_table(t.operation, t.p, t.n)
        streams = init_streams(c.training.seed)
        self.train, self.val = split_indices(len(self.table), t.train_fraction,
                                             np.random.default_rng(streams.split))
        self.model = build_model(c, self.table.n_tokens, self.table.n_classes)
        self.params = flatten(self.model.init_params(np.random.default_rng(streams.init)))
        self.initial = {k: v.copy() for k, v in self.params.items()}
        self.optimizer = build_optimizer(c, self.params)
        tb = self.table
        # The run's first minibatch, or the whole training split.
        self.rows = BatchOrder(self.train, c.training.batch_size, np.random.default_rng(streams.batch)).next() \
            if minibatch else self.train
        self.batch = Batch(tb.x[self.rows], tb.y[self.rows], tb.labels[self.rows], tb.n_tokens, self.model.dtype)

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

    def transformer_step_flops(self) -> tuple[float, float]:
        """FLOPs of the matmuls of one training step (forward, weight and input gradients): as this
        engine computes it (positions 0-1 once per distinct x, the first layer's q, k, v once per
        distinct y, the last layer at position 3 only, the per-x and per-y gradient sums), and as a
        dense implementation computes it (every position in every layer)."""
        m, b = self.model, self.batch
        d, f, L, C, n = m.d_model, m.d_ff, m.n_layers, m.n_classes, len(b)
        nx, ny = len(np.unique(b.x)), len(np.unique(b.y))
        qkv, rest = 3 * d * d, d * d + 2 * d * f  # per row: q, k, v; then W_o and the feed-forward
        attention = 4 * 2 * d  # scores and weighted values against 4 keys, per query row
        forward = (ny + 1) * qkv + n * d * C  # the first layer's q, k, v at positions 2-3; the output
        for i in range(L):
            last = i == L - 1
            forward += 2 * nx * (qkv + (0 if last else rest))  # prefix rows: keys and values only, last
            forward += 2 * n * qkv * (i > 0)  # suffix rows (the first layer's came per y)
            forward += (1 if last else 2) * n * (rest + attention)  # the last layer at position 3 only
        sums = L * nx * n * 4 * d + ny * n * 4 * d  # the one-hot sums of the backward pass
        dense = n * SEQ * (qkv + rest + attention) * L + n * d * C
        return 2 * (3 * forward + sums), 2 * 3 * dense

    def torch_transformer_step_fn(self):
        import torch

        from torch_reference import torch_model

        c = self.config.optimizer
        net = torch_model(self.model, self.initial, torch.float32)
        opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=c.lr,
                                betas=(c.beta1, c.beta2), eps=c.eps, weight_decay=c.weight_decay)
        tokens = torch.from_numpy(self.model.tokens(self.batch.x, self.batch.y))
        labels = torch.from_numpy(np.ascontiguousarray(self.batch.labels))

        def step():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(tokens), labels).backward()
            opt.step()

        return step

    def torch_step_fn(self):
        if self.config.model.type == "transformer":
            return self.torch_transformer_step_fn()
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
    ap.add_argument("--models", default="mlp,transformer", help="which rows: mlp, transformer or both")
    ap.add_argument("--skip-end-to-end", action="store_true")
    ap.add_argument("--transformer-steps", type=int,
                    help="end to end, train the transformer this many steps (default: the preset's 15,000)")
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
    def alternate(s: Setup) -> tuple[float, float | None]:
        """Median ms per step of both engines. They alternate so that both see the same machine
        state; ours runs inside engine_threads (its BLAS held to one thread per chunk worker), torch
        outside it with its own threads."""
        torch_step = s.torch_step_fn() if torch is not None else None
        ours, theirs = [], []
        for _ in range(args.repeats + 1):
            with engine_threads(args.threads):
                ours += median_ms(s.numpy_step, args.steps, 1, args.settle)
            if torch_step:
                theirs += median_ms(torch_step, args.steps, 1, args.settle)
        ours, theirs = ours[1:], theirs[1:]  # the first round warms up both
        return statistics.median(ours), statistics.median(theirs) if theirs else None

    def ratio(ms, t_ms):
        return (f"{t_ms:.2f}", f"{t_ms / ms:.2f}x") if t_ms else ("-", "-")

    models = args.models.split(",")
    for preset in PRESETS if "mlp" in models else ():
        s = Setup(preset)
        ms, t_ms = alternate(s)
        with engine_threads(args.threads):
            eval_ms = statistics.median(median_ms(s.evaluation, 1, args.repeats))
        tr = s.config.training
        share = len(eval_schedule(tr.steps, tr.eval_interval)) * eval_ms / (tr.steps * ms)
        lines.append(f"| {preset} | {len(s.rows)} | {ms:.2f} | {' | '.join(ratio(ms, t_ms))} | "
                     f"{share:.1%} | {s.dense_step_flops() / ms / 1e6:.0f} |")
        print(lines[-1], flush=True)
    lines += ["", "| transformer (fig1_div_transformer) | rows/step | NumPy ms/step | PyTorch ms/step | "
              "PyTorch / NumPy | eval share | NumPy GFLOP/s | FLOP floor ms | NumPy GFLOP / dense GFLOP |",
              "|---|---|---|---|---|---|---|---|---|"]
    for minibatch in (True, False) if "transformer" in models else ():
        s = Setup(TRANSFORMER, minibatch=minibatch)
        ms, t_ms = alternate(s)
        with engine_threads(args.threads):
            eval_ms = statistics.median(median_ms(s.evaluation, 1, args.repeats))
        tr = s.config.training
        share = len(eval_schedule(tr.steps, tr.eval_interval)) * eval_ms / (tr.steps * ms)
        flops, dense = s.transformer_step_flops()
        lines.append(f"| {'minibatch' if minibatch else 'full batch'} | {len(s.rows)} | {ms:.2f} | "
                     f"{' | '.join(ratio(ms, t_ms))} | {share:.1%} | {flops / ms / 1e6:.0f} | "
                     f"{flops / peak / 1e6:.2f} | {flops / 1e9:.2f} / {dense / 1e9:.2f} |")
        print(lines[-1], flush=True)
    if not args.skip_end_to_end:
        lines += ["", "| preset (seed 0) | steps to val 99% | wall time to val 99% | whole run | steps |", "|---|---|---|---|---|"]
        for preset in (*(PRESETS if "mlp" in models else ()), *((TRANSFORMER,) if "transformer" in models else ())):
            with tempfile.TemporaryDirectory() as tmp:
                steps = [f"training.steps={args.transformer_steps}"] if preset == TRANSFORMER and \
                    args.transformer_steps else []
                config = resolve_config(preset, None, ["output.curves=false", "output.progress=false", *steps])
                summary = run_experiment(config, Path(tmp) / "run", name=preset, log=lambda *_: None,
                                         threads=args.threads)
            t99 = summary["time_to_val_99_s"]
            lines.append(f"| {preset} | {summary['steps_to_val_99'] or 'never'} | "
                         f"{f'{t99:.1f} s' if t99 else '-'} | {summary['wall_time_s']:.1f} s | {summary['steps']} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
