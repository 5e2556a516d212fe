#!/usr/bin/env python3
"""Whole training trajectories: this framework's dense model (``model.type=dense``) against an
independent PyTorch implementation, from the same initial weights on the same minibatches.

    python benchmarks/dense_vs_pytorch.py [--presets sparse_parity,digits_omnigrok] [--steps 3000]
        [--every 250] [--dtype float64] [--seed 0] [--threads 1] [--override key=value ...]
        [--out trajectory.csv]

Our side is the run itself: ``experiment._Run`` builds the table (``tasks.build``), the split, the
model, its initial weights, the optimizer (``experiment.build_optimizer``) and the BatchOrder from
the run's batch stream, and ``_Run.step`` trains it, so what is compared is the code a run
executes. The only addition is a wrapper that records which training rows each step's BatchOrder
drew. PyTorch's side is ``torch_reference.torch_dense`` (nn.Linear layers and nn.ReLU) loaded with
the same initial weights, trained on the same rows with torch's own loss and optimizer; only the
initial weights and the batch indices cross over.

How PyTorch is configured to follow our update rule (src/grokking/optimizer.py):

* SGD (``sparse_parity``): ours adds wd * p to the gradient (L2), then heavy-ball momentum
  (buffer = first gradient at step 1), then p -= lr * g; torch.optim.SGD with weight_decay,
  momentum, dampening 0 and nesterov False is the same rule.
* AdamW (``digits_omnigrok``): ours decays decoupled, p *= 1 - lr * wd, as torch.optim.AdamW does,
  and corrects the bias as step_size = lr / (1 - beta1^t) and denominator
  sqrt(v) * (1 / sqrt(1 - beta2^t)) + eps; torch divides sqrt(v) by sqrt(1 - beta2^t) and adds eps
  (the same eps placement), and updates m by lerp rather than beta1 * m + (1 - beta1) * g. These
  differ by rounding only, not in the rule. ``optimizer.name=adam`` maps to torch.optim.Adam
  (L2 added to the gradient), as ours.
* Warmup (neither preset uses it): ours takes lr * step / warmup_steps for update ``step`` (1-based)
  below warmup_steps; torch gets a LambdaLR of min(1, (k + 1) / warmup_steps), k its 0-based count.
* Loss: softmax is F.cross_entropy; mse is F.mse_loss against the one-hot answers with its default
  mean over every entry, which is our mean over rows of the mean over classes of (z - onehot)^2
  (every row has n_classes entries). Accuracy: argmax == label (ours counts a tie with the answer
  as correct; ties do not occur in these runs' floats).

Every step it compares all parameters (max abs difference over every tensor); every ``--every``
steps it also gives the whole network's relative difference (Frobenius norm over all tensors),
evaluates both on the whole training and validation splits and prints a row. ``--kinks`` also
counts, on each step's rows, the hidden units whose ReLU decides differently in the two.

What it found (seed 0, AMD EPYC, 2026-12-06): in float64 the two agree to 2.4e-15 over 12,000
sparse_parity steps (through the fit and the grokking at step 7,000) and to 1.4e-12 over 10,000
digits_omnigrok steps, with no ReLU decision differing. In float32 they part: for sparse_parity at
the first differing ReLU decision (step 324), after which the gradients differ by whole terms; for
digits_omnigrok first at step 209, in W2 entries whose Adam denominator sqrt(v_hat) is 1e-8 to 3e-7 (eps is 1e-8), where
Adam turns rounding-level gradient differences into differences of order lr, and then at the first
differing ReLU decision (step 677). The accuracy curves still agree (within 0.025 and 0.018).

torch is needed (pip install torch); it is no dependency.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import grokking  # noqa: E402,F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np  # noqa: E402

from grokking import resolve_config  # noqa: E402
from grokking.experiment import _Run  # noqa: E402
from grokking.model import engine_threads  # noqa: E402

try:
    import torch
    import torch.nn.functional as F

    from torch_reference import torch_dense, torch_dense_params
except ImportError:
    torch = None

PRESETS = ("sparse_parity", "digits_omnigrok")


def check_comparable(run) -> str | None:
    """Why this run cannot be compared (None if it can): PyTorch's side knows plain SGD, Adam and
    AdamW toward zero, softmax and MSE, and no gradient transforms or weight noise."""
    c, o = run.config, run.config.optimizer
    if c.model.type != "dense":
        return "compares model.type=dense only"
    if o.name not in ("sgd", "adam", "adamw") or o.decay_toward != "zero":
        return "compares sgd, adam and adamw with decay toward zero only"
    if run.transforms.stages or o.weight_noise or o.constant_norm or run.lr_factor != 1.0:
        return "compares runs without gradient transforms, weight noise or constant norm only"
    if c.model.loss not in ("softmax", "mse") or c.model.loss_dtype not in ("", c.model.dtype):
        return "compares softmax and mse losses in the model's dtype only"
    if c.model.activation not in ("relu", "tanh"):
        return "compares relu and tanh activations only"
    return None


class TorchSide:
    """The PyTorch copy of a run: same weights, its own loss, optimizer and warmup."""

    def __init__(self, run, dtype):
        c, o = run.config, run.config.optimizer
        self.net = torch_dense(run.model, run.params, dtype)
        params = list(self.net.parameters())
        if o.name == "sgd":
            self.opt = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, dampening=0.0,
                                       weight_decay=o.weight_decay, nesterov=False)
        else:
            cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
            self.opt = cls(params, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay)
        warm = o.warmup_steps
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda k: min(1.0, (k + 1) / warm) if warm > 0 else 1.0)
        table = run.table
        self.x = torch.tensor(np.asarray(table.x, dtype=np.float64), dtype=dtype)
        self.labels = torch.tensor(table.labels)
        self.mse = c.model.loss == "mse"
        self.onehot = F.one_hot(self.labels, table.n_classes).to(dtype)

    def loss(self, logits, idx):
        if self.mse:
            return F.mse_loss(logits, self.onehot[idx])
        return F.cross_entropy(logits, self.labels[idx])

    def step(self, idx) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(self.net(self.x[idx]), idx)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return float(loss.detach())

    def relu_decisions(self, idx) -> list:
        """Each hidden layer's [pre-activation > 0] on these rows, as torch computes them."""
        out, a = [], self.x[idx]
        with torch.no_grad():
            for module in self.net:
                a = module(a)
                if isinstance(module, torch.nn.Linear):
                    out.append((a > 0).numpy())
        return out[:-1]  # the last Linear is the output layer

    def evaluate(self, idx) -> tuple[float, float]:
        with torch.no_grad():
            logits = self.net(self.x[idx])
            return float(self.loss(logits, idx)), float((logits.argmax(1) == self.labels[idx]).double().mean())


def record_batches(run) -> list:
    """Make the run's BatchOrder remember the rows it draws (the last entry: this step's)."""
    drawn = []
    order = run.batch_order
    if order is not None:
        draw = order.next

        def next_recorded():
            drawn.append(draw())
            return drawn[-1]

        order.next = next_recorded
    return drawn


def compare(preset: str, args, writer=None) -> dict:
    config = resolve_config(preset, None, [*args.override, f"training.seed={args.seed}",
                                           f"model.dtype={args.dtype}", "output.measures=",
                                           f"training.steps={args.steps}"])
    tdtype = torch.float64 if args.dtype == "float64" else torch.float32
    with tempfile.TemporaryDirectory() as tmp:  # _Run writes nothing until asked; it wants a path
        run = _Run(config, Path(tmp) / "run", preset)
    reason = check_comparable(run)
    if reason:
        raise SystemExit(f"dense_vs_pytorch: {preset}: {reason}")
    ours = TorchSide(run, tdtype)
    drawn = record_batches(run)
    splits = {"train": run.train_rows, "val": run.val_rows}
    split_idx = {"train": torch.tensor(run.train_idx), "val": torch.tensor(run.val_idx)}
    tol = 1e-10 if args.dtype == "float64" else 1e-6
    first_over, worst, worst_step = None, 0.0, 0
    acc_gap, loss_gap = 0.0, 0.0
    rows = []
    print(f"\n{preset} ({args.dtype}, seed {args.seed}, {run.model.d_hidden} wide x {run.model.n_layers}, "
          f"{config.optimizer.name}, loss {config.model.loss}, batch {config.training.batch_size}, "
          f"{args.threads} thread(s))")
    print(f"{'step':>6} {'train loss ours':>16} {'train loss torch':>16} {'val loss ours':>14} "
          f"{'val loss torch':>14} {'train acc':>13} {'val acc':>13} {'max |dW|':>9} {'max |W|':>8} "
          f"{'|dW|/|W|':>9}")
    t0 = time.perf_counter()
    # Where a hidden unit's ReLU decides differently on a training row: the gradient then jumps by a
    # whole term, not by rounding, which is how a tiny difference becomes a large one.
    flips, first_flip = 0, None
    pre = [n for n in run.model.activation_names if n.endswith("hook_pre")]
    for step in range(1, args.steps + 1):
        params_before = {k: v.copy() for k, v in run.params.items()} if args.kinks else None
        _, diverged = run.step(step)
        if diverged:
            print(f"step {step}: our loss is not finite; the run would stop here")
            break
        idx = run.train_idx if run.full_batch else drawn[-1]
        if args.kinks and run.config.model.activation == "relu":
            cache = run.model.run_with_cache(params_before, run.table.x[idx], names=pre)[1]
            n = sum(int(np.count_nonzero((cache[name] > 0) != theirs))
                    for name, theirs in zip(pre, ours.relu_decisions(torch.tensor(idx))))
            flips += n
            if n and first_flip is None:
                first_flip = step
        ours.step(torch.tensor(idx))
        theirs = torch_dense_params(run.model, ours.net)
        diff = max(float(np.max(np.abs(run.params[k] - theirs[k]))) for k in run.params)
        if diff > worst:
            worst, worst_step = diff, step
        if first_over is None and diff > tol:
            first_over = step
        if step % args.every == 0 or step == args.steps:
            # The whole network's relative difference, beside the largest single entry's: under Adam a
            # few weights with near-zero gradients can part far while the network does not.
            rel = np.sqrt(sum(float(np.sum((run.params[k] - theirs[k].astype(np.float64)) ** 2)) for k in run.params) /
                          sum(float(np.sum(theirs[k] ** 2)) for k in run.params))
            row = {"step": step, "max_abs_param_diff": diff, "rel_norm_diff": rel,
                   "max_abs_param": max(float(np.max(np.abs(p))) for p in run.params.values())}
            for split, (x, y, labels) in splits.items():
                row[f"{split}_loss_ours"], row[f"{split}_acc_ours"] = run.model.evaluate(run.params, x, y, labels)
                row[f"{split}_loss_torch"], row[f"{split}_acc_torch"] = ours.evaluate(split_idx[split])
                acc_gap = max(acc_gap, abs(row[f"{split}_acc_ours"] - row[f"{split}_acc_torch"]))
                loss_gap = max(loss_gap, abs(row[f"{split}_loss_ours"] - row[f"{split}_loss_torch"]))
            rows.append(row)
            print(f"{step:>6} {row['train_loss_ours']:>16.10g} {row['train_loss_torch']:>16.10g} "
                  f"{row['val_loss_ours']:>14.8g} {row['val_loss_torch']:>14.8g} "
                  f"{row['train_acc_ours']:>6.4f}/{row['train_acc_torch']:<6.4f} "
                  f"{row['val_acc_ours']:>6.4f}/{row['val_acc_torch']:<6.4f} {diff:>9.2e} "
                  f"{row['max_abs_param']:>8.3g} {rel:>9.2e}", flush=True)
            if writer:
                writer.writerow({"preset": preset, "dtype": args.dtype, **row})
    summary = {"preset": preset, "dtype": args.dtype, "steps": step, "seconds": time.perf_counter() - t0,
               "worst_param_diff": worst, "worst_step": worst_step, "first_over": first_over, "tol": tol,
               "acc_gap": acc_gap, "loss_gap": loss_gap, "flips": flips, "first_flip": first_flip}
    print(f"{preset} {args.dtype}: {step} steps in {summary['seconds']:.0f} s; max |dW| {worst:.2e} (step "
          f"{worst_step}); |dW| first above {tol:g} at " + (f"step {first_over}" if first_over else "no step") +
          f"; largest gap at an evaluation: accuracy {acc_gap:.4f}, loss {loss_gap:.2e}" +
          (f"; ReLU decisions that differ on a training row: {flips}, the first at step {first_flip}"
           if args.kinks else ""))
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--override", action="append", default=[], help="a config override, repeatable")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=250, help="evaluate both on the whole splits this often")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    ap.add_argument("--threads", type=int, default=1, help="threads of each engine")
    ap.add_argument("--kinks", action="store_true",
                    help="count the ReLU decisions on each step's rows where the two differ (a forward more per step)")
    ap.add_argument("--out", help="write the evaluated rows to this CSV file")
    args = ap.parse_args(argv)
    if torch is None:
        print("dense_vs_pytorch: needs torch (pip install torch)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    print(f"NumPy {np.__version__}, torch {torch.__version__}, {args.threads} thread(s) each")
    columns = ["preset", "dtype", "step", "train_loss_ours", "train_loss_torch", "train_acc_ours", "train_acc_torch",
               "val_loss_ours", "val_loss_torch", "val_acc_ours", "val_acc_torch", "max_abs_param_diff",
               "max_abs_param", "rel_norm_diff"]
    out = open(args.out, "w", newline="") if args.out else None
    writer = csv.DictWriter(out, columns) if out else None
    if writer:
        writer.writeheader()
    with engine_threads(args.threads), np.errstate(all="ignore"):  # as _Run.train runs its loop
        summaries = [compare(p, args, writer) for p in args.presets.split(",")]
    if out:
        out.close()
    print()
    for s in summaries:
        print(f"{s['preset']:<16} {s['dtype']}: max |dW| {s['worst_param_diff']:.2e} at step {s['worst_step']} "
              f"of {s['steps']}; above {s['tol']:g} first at {s['first_over'] or 'no step'}; "
              f"largest accuracy gap {s['acc_gap']:.4f}, loss gap {s['loss_gap']:.2e}" +
              (f"; {s['flips']} ReLU decisions differ, the first at step {s['first_flip']}" if args.kinks else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
