#!/usr/bin/env python3
"""Whole training trajectories: this NumPy transformer against an independent PyTorch one.

    python benchmarks/trajectory_vs_pytorch.py [--preset fig1_div_transformer] [--steps 6000]
        [--seed 0] [--dtype float64] [--every 250] [--override key=value ...] [--out trajectory.csv]

Both models start from the same initial weights (drawn by this framework and copied into PyTorch)
and see the same minibatches (drawn by PyTorch's own sampler, ``RandomSampler`` + ``BatchSampler``,
as a DataLoader with shuffle=True draws them, and handed to both). The PyTorch side is built from
``torch.nn`` modules (``nn.TransformerEncoderLayer``: post-LN, causal mask, ReLU feed-forward;
attention biases zeroed and frozen, as this framework's model has none) and trained with
``torch.optim.AdamW`` and a ``LambdaLR`` warmup. Only the weights and the batch indices cross over.

Every step it compares the two training losses; every ``--every`` steps the parameters (largest
relative difference over the tensors) and the accuracies on the whole splits. In float64 the two
agree to rounding until the dynamics amplify rounding differences; the first step where they part
by more than rounding is printed. torch is needed (pip install torch); it is no dependency.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import grokking  # noqa: E402,F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np  # noqa: E402

from grokking import resolve_config  # noqa: E402
from grokking.experiment import build_model, build_optimizer, init_streams  # noqa: E402
from grokking.engine import Batch  # noqa: E402
from grokking.model import engine_threads  # noqa: E402
from grokking.optimizer import flatten, learning_rate  # noqa: E402
from grokking.tasks import build_table, split_indices  # noqa: E402

try:
    import torch
    from torch import nn

    from torch_reference import torch_model, torch_params
except ImportError:
    torch = None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="fig1_div_transformer")
    ap.add_argument("--override", action="append", default=[], help="a config override, repeatable")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    ap.add_argument("--every", type=int, default=250, help="compare parameters and accuracy this often")
    ap.add_argument("--threads", type=int, default=1, help="threads of each engine")
    ap.add_argument("--out", help="write the per-step comparison to this CSV file")
    args = ap.parse_args(argv)
    if torch is None:
        print("trajectory_vs_pytorch: needs torch (pip install torch)", file=sys.stderr)
        return 2
    config = resolve_config(args.preset, None, [*args.override, f"training.seed={args.seed}",
                                                f"model.dtype={args.dtype}"])
    if config.model.type != "transformer" or config.model.dropout or config.optimizer.name != "adamw" \
            or config.optimizer.decay_toward != "zero" or config.optimizer.grad_noise or \
            config.optimizer.weight_noise:
        print("trajectory_vs_pytorch: compares the transformer with plain AdamW only", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    tdtype = torch.float64 if args.dtype == "float64" else torch.float32
    t, o = config.task, config.optimizer

    # This framework's side: the split and the initial weights of the run this config describes.
    table = build_table(t.operation, t.p, t.n)
    streams = init_streams(config.training.seed)
    train_idx, val_idx = split_indices(len(table), t.train_fraction, np.random.default_rng(streams.split))
    model = build_model(config, table.n_tokens, table.n_classes)
    params = flatten(model.init_params(np.random.default_rng(streams.init)))
    optimizer = build_optimizer(config, params)

    # PyTorch's side: the same weights, its own optimizer, warmup and sampler.
    net = torch_model(model, params, tdtype)
    trainable = [p for p in net.parameters() if p.requires_grad]
    topt = torch.optim.AdamW(trainable, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                             weight_decay=o.weight_decay)
    warm = o.warmup_steps
    sched = torch.optim.lr_scheduler.LambdaLR(topt, lambda k: min(1.0, (k + 1) / warm) if warm else 1.0)
    batch_size = config.training.batch_size or len(train_idx)
    sampler = torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(range(len(train_idx)),
                                       generator=torch.Generator().manual_seed(args.seed)),
        batch_size, drop_last=False)
    tokens = torch.tensor(model.tokens(table.x, table.y))
    labels = torch.tensor(table.labels)

    def torch_eval(idx):
        with torch.no_grad():
            logits = net(tokens[idx])
            return (float(nn.functional.cross_entropy(logits, labels[idx])),
                    float((logits.argmax(1) == labels[idx]).double().mean()))

    columns = ["step", "loss_numpy", "loss_torch", "loss_diff", "max_rel_param_diff",
               "train_acc_numpy", "train_acc_torch", "val_acc_numpy", "val_acc_torch"]
    out = open(args.out, "w", newline="") if args.out else None  # written as it goes: a long run can be read early
    writer = csv.DictWriter(out, columns, restval="") if out else None
    if writer:
        writer.writeheader()
    parted = None
    tol = 1e-9 if args.dtype == "float64" else 1e-4
    step, t0 = 0, time.perf_counter()
    print(f"{'step':>6} {'loss numpy':>12} {'loss torch':>12} {'|dloss|':>9} {'max rel dW':>10} "
          f"{'val numpy':>9} {'val torch':>9}")
    with engine_threads(args.threads):
        while step < args.steps:
            for local in sampler:
                step += 1
                idx = train_idx[np.asarray(local)]
                lr = learning_rate(step, o.lr, o.warmup_steps)
                loss, _, grads = model.loss_and_grads(
                    params, Batch(table.x[idx], table.y[idx], table.labels[idx], table.n_tokens, model.dtype))
                optimizer.step(params, grads, lr)
                topt.zero_grad(set_to_none=True)
                tloss = nn.functional.cross_entropy(net(tokens[idx]), labels[idx])
                tloss.backward()
                topt.step()
                sched.step()
                tloss = float(tloss.detach())
                row = {"step": step, "loss_numpy": loss, "loss_torch": tloss,
                       "loss_diff": abs(loss - tloss) / max(abs(tloss), 1e-30)}
                if parted is None and row["loss_diff"] > tol:
                    parted = step
                    print(f"step {step}: the training losses differ by {row['loss_diff']:.1e} (relative)", flush=True)
                if step % args.every == 0 or step == args.steps:
                    tp = torch_params(model, net)
                    row["max_rel_param_diff"] = max(
                        float(np.linalg.norm(params[k] - tp[k]) / max(np.linalg.norm(tp[k]), 1e-30))
                        for k in params)
                    row["val_acc_numpy"] = model.evaluate(params, table.x[val_idx], table.y[val_idx],
                                                          table.labels[val_idx])[1]
                    row["val_acc_torch"] = torch_eval(torch.tensor(val_idx))[1]
                    row["train_acc_numpy"] = model.evaluate(params, table.x[train_idx], table.y[train_idx],
                                                            table.labels[train_idx])[1]
                    row["train_acc_torch"] = torch_eval(torch.tensor(train_idx))[1]
                    print(f"{step:>6} {loss:>12.6g} {tloss:>12.6g} {row['loss_diff']:>9.1e} "
                          f"{row['max_rel_param_diff']:>10.1e} {row['val_acc_numpy']:>9.4f} "
                          f"{row['val_acc_torch']:>9.4f}", flush=True)
                if writer:
                    writer.writerow(row)
                    if "max_rel_param_diff" in row:
                        out.flush()
                if step >= args.steps:
                    break
    print(f"{args.steps} steps in {time.perf_counter() - t0:.0f} s; training losses first differ by more "
          f"than {tol:g} (relative) at " + (f"step {parted}" if parted else "no step"))
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
