#!/usr/bin/env python3
"""Liu et al.'s toy model: grokking.toy (NumPy) against their own PyTorch code, whole trajectories.

    python benchmarks/liu_toy_vs_torch.py [--cells 1e-4,0 2.1544e-5,0 1e-2,5] [--steps 10000]
        [--their-code /path/to/train_add.py] [--out trajectories.csv]

Their toy/train_add.py is read from the mirror of github.com/ejmichaud/grokking-squared (or
--their-code) and executed unchanged: its ``train_add`` draws its own templates, split and initial
weights from seed 58 and returns the loss of every step. Before anything is trained, the initial
weights PyTorch draws from torch.manual_seed(58) (their order: torch.rand for the representations,
then the three nn.Linear) are checked equal, bit for bit, to grokking.toy.init_params', so both start
from the same weights and (their np.random stream) see the same batch orders.

Per cell, four trajectories:
    numpy32  grokking.toy in float32            theirs32  their train_add (torch, float32)
    numpy64  grokking.toy in float64            torch64   a PyTorch replica of their model (below),
                                                          in float64, from the same weights
and, per pair, the relative difference of the training loss every step: its median over windows
of the run, and the first step it exceeds 1e-3. numpy32 vs theirs32 is the implementation plus
float32 rounding in two orders; numpy64 vs torch64 is the implementation alone (rounding ~1e-16);
numpy32 vs numpy64 is what float32 rounding alone does to one implementation.
torch is needed (pip install torch); it is no dependency.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import grokking  # noqa: E402,F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np  # noqa: E402

from grokking import toy  # noqa: E402

MIRROR = Path("/work/.mirror/ejmichaud+grokking-squared/repo")
THEIR_COMMIT = "0229df94de69b8384e560367280a43a238112bf5"


def their_train_add(path: str | None):
    """Their train_add function, from a file or from the mirror's commit."""
    source = Path(path).read_text() if path else subprocess.check_output(
        ["git", "-C", str(MIRROR), "show", f"{THEIR_COMMIT}:toy/train_add.py"], text=True)
    namespace = {"__name__": "train_add"}
    exec(compile(source, "train_add.py", "exec"), namespace)
    return namespace["train_add"]


def torch_initial_weights(torch) -> dict:
    """What their train_add draws after torch.manual_seed(58), in grokking.toy's layout."""
    torch.manual_seed(toy.SEED)
    reprs = torch.rand(toy.P, 1) - 1 / 2
    layers = [torch.nn.Linear(1, toy.WIDTH), torch.nn.Linear(toy.WIDTH, toy.WIDTH),
              torch.nn.Linear(toy.WIDTH, toy.OUTPUT_DIM)]
    out = {"reprs": reprs.numpy()}
    for k, layer in enumerate(layers, start=1):
        out[f"W{k}"] = layer.weight.detach().numpy().T
        out[f"b{k}"] = layer.bias.detach().numpy()
    return out


def torch_replica(torch, eta_dec, wd, params, steps, dtype):
    """Their model and loop (train_add's, without the analyses), from ``params``, in ``dtype``:
    the training loss each step, and the steps of train/test 0.9 in their convention."""
    tdt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    data = toy.make_data(toy.SEED)
    rng, pairs, train, test = data["rng"], data["pairs"], data["train"], data["test"]
    templates = torch.tensor(data["templates"], dtype=tdt)
    sums = torch.tensor(data["sums"])
    reprs = torch.nn.Parameter(torch.tensor(params["reprs"], dtype=tdt))
    dec = [torch.nn.Parameter(torch.tensor(params[f"{n}{k}"].T if n == "W" else params[f"{n}{k}"], dtype=tdt))
           for k in (1, 2, 3) for n in ("W", "b")]

    def model(ids):
        x = reprs[ids[:, 0]] + reprs[ids[:, 1]]
        x = torch.tanh(torch.nn.functional.linear(x, dec[0], dec[1]))
        x = torch.tanh(torch.nn.functional.linear(x, dec[2], dec[3]))
        return torch.nn.functional.linear(x, dec[4], dec[5])

    def correct(out, ids):
        pred = torch.argmin(((out.unsqueeze(1) - templates.unsqueeze(0)) ** 2).sum(2), dim=1)
        return (pred == sums[ids]).double().mean().item()

    opt1 = torch.optim.AdamW([reprs], lr=toy.ETA_REPRS, weight_decay=0.0)
    opt2 = torch.optim.AdamW(dec, lr=eta_dec, weight_decay=wd, betas=(0.9, 0.999))
    tp, ep = torch.tensor(pairs[train]), torch.tensor(pairs[test])
    losses, acc_train, acc_test = np.empty(steps), np.empty(steps), np.empty(steps)
    for step in range(steps):
        opt1.zero_grad()
        opt2.zero_grad()
        order = rng.choice(np.arange(len(train)), len(train), replace=False)
        batch = train[order]
        loss = torch.mean((model(torch.tensor(pairs[batch])) - templates[sums[batch]]) ** 2)
        with torch.no_grad():
            out_test = model(ep)
        losses[step] = loss.item()
        loss.backward()
        opt1.step()
        opt2.step()
        with torch.no_grad():
            acc_train[step] = correct(model(tp), train)
        acc_test[step] = correct(out_test, test)
    return {"loss_train": losses, "train_step": toy._first(acc_train, toy.THRESHOLD, steps),
            "test_step": toy._first(acc_test, toy.THRESHOLD, steps)}


def rel(a, b):
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-30)


def summary(name, a, b, steps):
    r = rel(a, b)
    over = np.flatnonzero(r > 1e-3)
    windows = [0, 10, 100, 1000, 3000, steps]
    med = "  ".join(f"[{lo},{hi}) {np.median(r[lo:hi]):.1e}" for lo, hi in zip(windows, windows[1:]) if lo < steps)
    first = int(over[0]) if over.size else None
    print(f"    {name:20s} first step > 1e-3: {first}; median rel. diff {med}")
    return first


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", nargs="+", default=["1e-4,0", "2.1544346900318823e-05,0", "0.01,5"],
                    help="eta_dec,weight_decay pairs")
    ap.add_argument("--steps", type=int, default=toy.STEPS)
    ap.add_argument("--their-code", help="their toy/train_add.py (default: the mirror's, at %s)" % THEIR_COMMIT[:10])
    ap.add_argument("--out", help="per-step training losses of all four, as CSV")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("error: this benchmark needs torch (pip install torch)", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    train_add = their_train_add(args.their_code)
    ours, theirs = toy.init_params(), torch_initial_weights(torch)
    same = all(np.array_equal(ours[k], theirs[k]) and ours[k].dtype == theirs[k].dtype for k in ours)
    print(f"initial weights: grokking.toy.init_params == torch.manual_seed(58) draws, bit for bit: {same}")
    if not same:
        return 1
    rows = []
    for cell in args.cells:
        eta, wd = (float(v) for v in cell.split(","))
        runs, seconds = {}, {}
        for name in ("numpy32", "numpy64", "theirs32", "torch64"):
            start = time.perf_counter()
            if name.startswith("numpy"):
                runs[name] = toy.run(eta, wd, steps=args.steps, dtype="float" + name[-2:])
            elif name == "theirs32":
                with contextlib.redirect_stdout(io.StringIO()):
                    d = train_add(eta_dec=eta, weight_decay_dec=wd, steps=args.steps, eff_steps=1)
                runs[name] = {"loss_train": d["loss_train"], "train_step": d["iter_train"], "test_step": d["iter_test"]}
            else:
                runs[name] = torch_replica(torch, eta, wd, toy.init_params(dtype="float64"), args.steps, "float64")
            seconds[name] = time.perf_counter() - start
        print(f"eta_dec={eta:.4g} weight_decay={wd:g}:")
        for name, r in runs.items():
            print(f"    {name:9s} train_step {r['train_step']:5d}  test_step {r['test_step']:5d}  "
                  f"final loss {r['loss_train'][-1]:.6g}  ({seconds[name]:.1f} s)")
        summary("numpy32 vs theirs32", runs["numpy32"]["loss_train"], runs["theirs32"]["loss_train"], args.steps)
        summary("numpy64 vs torch64", runs["numpy64"]["loss_train"], runs["torch64"]["loss_train"], args.steps)
        summary("numpy32 vs numpy64", runs["numpy32"]["loss_train"], runs["numpy64"]["loss_train"], args.steps)
        summary("theirs32 vs torch64", runs["theirs32"]["loss_train"], runs["torch64"]["loss_train"], args.steps)
        for s in range(args.steps):
            rows.append([eta, wd, s] + [repr(float(runs[n]["loss_train"][s])) for n in runs])
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["eta_dec", "weight_decay", "step", "numpy32", "numpy64", "theirs32", "torch64"])
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
