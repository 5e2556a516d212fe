"""Liu et al.'s toy model of addition (Liu, Kitouni, Nolte, Michaud, Tegmark & Williams 2022,
"Towards understanding grokking: an effective theory of representation learning", NeurIPS;
Sec. 3 and the phase diagram of Fig. 5b), in NumPy, as their toy/train_add.py sets it up.

    data        p = 10 numbers, each pair a <= b (55 of them) a sample; its label is the template of
                a + b, one of 2p - 1 = 19 random vectors in R^30; 45 pairs train, 10 test
    model       a learned 1-D representation per number; Dec(E_a + E_b), an MLP 1-200-200-30 (tanh)
    loss        MSE against the template; a prediction is the nearest template
    training    AdamW on the representations (lr 1e-3, no decay) and on the decoder (eta_dec,
                weight_decay), full batch of 45, 10^4 steps

The random draws are theirs, bit for bit: the templates and the split come from NumPy's legacy
generator seeded 58 (np.random.seed), and the initial weights from PyTorch's CPU generator
seeded 58, which ``TorchUniform`` replays with NumPy (both are MT19937 seeded by init_genrand).
So a run here starts from the weights their run started from, and sees its batch orders.

Their measurement convention, kept: at loop step s the training loss and the test predictions
come from the weights before update s, the training predictions from the weights after it; a
split's step is the first s with accuracy >= 0.9, and s = steps - 1 (9999) when never (so a split
reaching 0.9 at the very last step reads as never, as in theirs). ``liu_phase`` is the rule of
their notebook toy/Figure5.ipynb; ``phases.classify`` is this project's reading of it, which
differs where training never gets there but test does, and where test leads by more than the gap.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from . import layers
from .optimizer import Adam
from .parallel import engine_threads

P = 10
OUTPUT_DIM = 30
WIDTH = 200
TRAIN_NUM = 45
SEED = 58
STEPS = 10_000
ETA_REPRS = 1e-3
THRESHOLD = 0.9
GAP = 1000  # Fig. 5b's (their notebook uses 2000 for Fig. 5a)
# The Fig. 5b grid: decoder learning rate x decoder weight decay.
ETA_DECS = tuple(float(e) for e in 10 ** np.linspace(-5, -2, 10))
WEIGHT_DECAYS = tuple(float(w) for w in range(11))
PHASES = ("comprehension", "grokking", "memorization", "confusion")


class TorchUniform:
    """torch.manual_seed(seed) followed by Tensor.uniform_ draws on float32 tensors (CPU), replayed.

    PyTorch's CPU generator is MT19937 seeded by init_genrand, as is NumPy's legacy RandomState
    seeded with an int; a float32 uniform takes the low 24 bits of one 32-bit output, x = bits *
    2^-24, and returns x * (to - from) + from in double, from and to first rounded to float32.
    """

    def __init__(self, seed: int):
        self._mt = np.random.RandomState(seed)

    def uniform(self, shape: tuple, low: float, high: float) -> np.ndarray:
        bits = self._mt.randint(0, 2 ** 32, size=math.prod(shape), dtype=np.uint32)
        x = (bits & np.uint32((1 << 24) - 1)) * 2.0 ** -24
        low32, high32 = np.float32(low), np.float32(high)
        return (x * np.float64(high32 - low32) + np.float64(low32)).astype(np.float32).reshape(shape)


def make_data(seed: int = SEED, p: int = P, output_dim: int = OUTPUT_DIM, train_num: int = TRAIN_NUM) -> dict:
    """The templates (2p - 1, output_dim) float32, the pairs (a, b) with a <= b, their sums, the
    training and test ids into the pairs, and the generator left where their loop starts drawing
    batch orders from it (their np.random.seed stream, as a RandomState of its own)."""
    rng = np.random.RandomState(seed)
    templates = rng.normal(0, 1, size=(2 * p - 1, output_dim)).astype(np.float32)
    pairs = np.array([(i, j) for i in range(p) for j in range(i, p)])
    train = rng.choice(len(pairs), train_num, replace=False)
    # Theirs is a set difference in whatever order the set iterates; only the test loss's
    # summation order depends on it.
    test = np.setdiff1d(np.arange(len(pairs)), train)
    return {"templates": templates, "pairs": pairs, "sums": pairs.sum(axis=1), "train": train, "test": test,
            "rng": rng}


def init_params(seed: int = SEED, dtype="float32", p: int = P, output_dim: int = OUTPUT_DIM,
                width: int = WIDTH) -> dict:
    """Their initial weights: representations torch.rand(p, 1) - 1/2, then nn.Linear's default
    (kaiming_uniform_ with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias the
    same) for the three layers in order. Weights are stored (in, out), for x @ W."""
    gen = TorchUniform(seed)
    params = {"reprs": gen.uniform((p, 1), 0.0, 1.0) - np.float32(0.5)}
    gain = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))
    for k, (n_in, n_out) in enumerate(((1, width), (width, width), (width, output_dim)), start=1):
        bound = math.sqrt(3.0) * gain / math.sqrt(n_in)
        params[f"W{k}"] = gen.uniform((n_out, n_in), -bound, bound).T.copy()
        params[f"b{k}"] = gen.uniform((n_out,), -1 / math.sqrt(n_in), 1 / math.sqrt(n_in))
    return {k: v.astype(dtype) for k, v in params.items()}


def forward(params: dict, pairs: np.ndarray, cache: bool = False):
    """Dec(E_a + E_b) for each pair (a, b): the outputs, and with ``cache`` what backward needs."""
    x = layers.embedding(params["reprs"], pairs[:, 0]) + layers.embedding(params["reprs"], pairs[:, 1])
    a1, _ = layers.activation("tanh", layers.linear(x, params["W1"], params["b1"]))
    a2, _ = layers.activation("tanh", layers.linear(a1, params["W2"], params["b2"]))
    out = layers.linear(a2, params["W3"], params["b3"])
    return (out, (pairs, x, a1, a2)) if cache else out


def backward(params: dict, d_out: np.ndarray, cache) -> dict:
    """The gradients of every parameter from d(loss)/d(outputs)."""
    pairs, x, a1, a2 = cache
    g = {}
    d_a2, g["W3"], g["b3"] = layers.linear_backward(a2, params["W3"], d_out)
    d_a1, g["W2"], g["b2"] = layers.linear_backward(a1, params["W2"], layers.activation_backward("tanh", a2, d_a2))
    d_x, g["W1"], g["b1"] = layers.linear_backward(x, params["W1"], layers.activation_backward("tanh", a1, d_a1))
    reprs = params["reprs"]
    g["reprs"] = layers.embedding_backward(d_x, pairs[:, 0], reprs) + layers.embedding_backward(d_x, pairs[:, 1], reprs)
    return g


def mse(out: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """torch.mean((out - target) ** 2) and its gradient with respect to out."""
    diff = out - target
    return float(np.mean(diff * diff)), diff * np.asarray(2.0 / diff.size, diff.dtype)


def nearest_template(out: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """The index of the template nearest each output (squared distance; the first on a tie)."""
    diff = out[:, None, :] - templates[None, :, :]
    return np.argmin(np.sum(diff * diff, axis=2), axis=1)


def run(eta_dec: float, weight_decay: float, *, seed: int = SEED, steps: int = STEPS, dtype="float32",
        eta_reprs: float = ETA_REPRS, params: dict | None = None, threshold: float = THRESHOLD) -> dict:
    """One training run. Returns 'train_step' and 'test_step' in their convention (the first loop
    step with accuracy >= threshold, steps - 1 when never), per step 'loss_train', 'loss_test'
    (before the update), 'acc_train' (after it) and 'acc_test' (before it), and the final params.
    ``params`` (copied) replaces their initial weights."""
    # One BLAS thread: a run's last bits, and so near a threshold its steps, depend on how many
    # (eta_dec = 0.01 reaches train 0.9 at step 245 on one, 246 on two), and these matrices are
    # too small to gain from more.
    with engine_threads(1):
        return _run(eta_dec, weight_decay, seed, steps, dtype, eta_reprs, params, threshold)


def _run(eta_dec, weight_decay, seed, steps, dtype, eta_reprs, params, threshold) -> dict:
    data = make_data(seed)
    rng, pairs, train, test = data["rng"], data["pairs"], data["train"], data["test"]
    templates = data["templates"].astype(dtype)
    labels = templates[data["sums"]]
    params = {k: np.array(v, dtype=dtype) for k, v in (params or init_params(seed, dtype)).items()}
    reprs = {"reprs": params["reprs"]}
    decoder = {k: v for k, v in params.items() if k != "reprs"}
    opt_reprs = Adam(reprs, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)
    opt_dec = Adam(decoder, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=weight_decay)
    train_pairs, test_pairs, test_sums = pairs[train], pairs[test], data["sums"][test]
    train_sums = data["sums"][train]
    loss_train, loss_test = np.empty(steps), np.empty(steps)
    acc_train, acc_test = np.empty(steps), np.empty(steps)
    for step in range(steps):
        # Their "random batch" of all 45: a permutation (np.random.choice without replacement),
        # which changes only the order the loss and gradients are summed in.
        batch = train[rng.choice(np.arange(len(train)), len(train), replace=False)]
        out, cache = forward(params, pairs[batch], cache=True)
        loss_train[step], d_out = mse(out, labels[batch])
        out_test = forward(params, test_pairs)
        loss_test[step], _ = mse(out_test, labels[test])
        grads = backward(params, d_out, cache)
        opt_reprs.step(reprs, {"reprs": grads["reprs"]}, eta_reprs)
        opt_dec.step(decoder, grads, eta_dec)
        acc_train[step] = np.mean(nearest_template(forward(params, train_pairs), templates) == train_sums)
        acc_test[step] = np.mean(nearest_template(out_test, templates) == test_sums)
    return {"eta_dec": eta_dec, "weight_decay": weight_decay, "seed": seed, "steps": steps,
            "train_step": _first(acc_train, threshold, steps), "test_step": _first(acc_test, threshold, steps),
            "loss_train": loss_train, "loss_test": loss_test, "acc_train": acc_train, "acc_test": acc_test,
            "params": params}


def _first(acc: np.ndarray, threshold: float, steps: int) -> int:
    hits = np.flatnonzero(acc >= threshold)
    return int(hits[0]) if hits.size else steps - 1


def liu_phase(train_step: int, test_step: int, steps: int = STEPS, gap: int = GAP) -> str:
    """The phase by their notebook's rule (toy/Figure5.ipynb): steps - 1 means never. Both reached
    and test - train > gap: grokking; both and anything else (test leading, or within the gap):
    comprehension; train only: memorization; neither: confusion; test only: comprehension, as all
    four of their indicator terms are 0 there and 0 is comprehension's index."""
    never = steps - 1
    if train_step < never and test_step < never:
        return "grokking" if test_step - train_step > gap else "comprehension"
    if train_step < never:
        return "memorization"
    return "confusion" if test_step == never else "comprehension"


def project_phase(result: dict) -> str:
    """The phase by this project's ``phases.classify``, read from the run's per-step accuracies."""
    from .phases import classify

    steps = list(range(result["steps"]))
    return classify({"step": steps, "train_acc": list(result["acc_train"]), "val_acc": list(result["acc_test"])},
                    gap=GAP)["phase"]


def cell(eta_dec: float, weight_decay: float, steps: int = STEPS, seed: int = SEED, dtype="float32") -> dict:
    """One cell of a grid: its steps, both phases, and its seconds."""
    start = time.perf_counter()
    r = run(eta_dec, weight_decay, seed=seed, steps=steps, dtype=dtype)
    return {"eta_dec": eta_dec, "weight_decay": weight_decay, "train_step": r["train_step"],
            "test_step": r["test_step"], "phase": liu_phase(r["train_step"], r["test_step"], steps),
            "project_phase": project_phase(r), "seconds": time.perf_counter() - start}


def grid(eta_decs=ETA_DECS, weight_decays=WEIGHT_DECAYS, *, steps: int = STEPS, seed: int = SEED,
         dtype="float32", workers: int = 1) -> list[dict]:
    """Fig. 5b's grid, a ``cell`` per (eta_dec, weight_decay), weight decay outermost as their
    notebook reads their files; ``workers`` processes (each run is single-threaded arithmetic)."""
    args = [(eta, wd, steps, seed, dtype) for wd in weight_decays for eta in eta_decs]
    if workers <= 1:
        return [cell(*a) for a in args]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(cell, *zip(*args)))


def read_steps(path) -> list[dict]:
    """Per-cell steps from a CSV with columns eta_dec, weight_decay, train_step, test_step ('#'
    lines are comments), such as benchmarks/data/liu2022_fig5b_steps.csv, their published ones."""
    import csv

    with open(path, newline="") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return [{"eta_dec": float(r["eta_dec"]), "weight_decay": float(r["weight_decay"]),
                 "train_step": int(r["train_step"]), "test_step": int(r["test_step"])} for r in rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grokking.toy", description="One run of Liu et al.'s toy model "
                                 "of addition: the steps where train and test accuracy reach 0.9, and the phase.")
    ap.add_argument("--eta-dec", type=float, default=1e-3, help="the decoder's AdamW learning rate")
    ap.add_argument("--weight-decay", type=float, default=0.0, help="the decoder's AdamW weight decay")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = ap.parse_args(argv)
    if args.steps < 2 or args.eta_dec <= 0 or args.weight_decay < 0:
        print("error: --steps must be >= 2, --eta-dec > 0 and --weight-decay >= 0", file=sys.stderr)
        return 2
    r = run(args.eta_dec, args.weight_decay, seed=args.seed, steps=args.steps, dtype=args.dtype)
    print(f"train_step {r['train_step']}  test_step {r['test_step']}  phase {liu_phase(r['train_step'], r['test_step'], args.steps)}"
          f"  (phases.classify: {project_phase(r)})  final loss {r['loss_train'][-1]:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
