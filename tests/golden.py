"""Golden runs: short runs that cover every family of arithmetic, and the sha256 of what they write.

``golden.json`` holds the hashes, per numeric environment (``grokking.numerics``: the NumPy and
OpenBLAS builds and the kernels they run), made on one machine; ``test_golden`` recomputes them on
whatever machine runs the suite. Portable runs give one environment on every x86-64 machine with
AVX2, so one set of hashes serves Intel and AMD alike.

    python tests/golden.py                 # print this machine's hashes as JSON
    python tests/golden.py --write         # record them in golden.json (portable environment only)
    python tests/golden.py --runs mlp,tf   # just these runs
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import grokking  # noqa: E402,F401  (first, so that NumPy loads the portable kernels)
from grokking import numerics  # noqa: E402
from grokking.checkpoint import load_checkpoint  # noqa: E402
from grokking.config import resolve_config  # noqa: E402
from grokking.experiment import run_experiment  # noqa: E402

GOLDEN = Path(__file__).with_name("golden.json")
COMMON = ["output.progress=false", "output.curves=false", "training.eval_interval=10"]
# name: (preset, overrides). Each family of arithmetic the engines have: both models, float32 and
# float64, minibatch and full batch, each MLP input and activation, dropout, both position tables,
# StableMax and a float64 loss, every optimizer and gradient transform, the noises, constant norm,
# and the progress measures on both tasks.
RUNS = {
    "mlp": ("mod_add_grokking", ["training.steps=60"]),
    "mlp_float64": ("mod_add_grokking", ["training.steps=60", "model.dtype=float64"]),
    "mlp_minibatch": ("mod_add_grokking", ["training.steps=60", "training.batch_size=512"]),
    "mlp_tanh": ("mod_add_grokking", ["training.steps=60", "model.activation=tanh"]),
    "mlp_quadratic_onehot": ("mod_add_grokking", ["training.steps=60", "model.activation=quadratic",
                                                  "model.input=onehot"]),
    "mlp_twohot_stablemax": ("mod_add_grokking", ["training.steps=60", "model.input=twohot",
                                                  "model.loss=stablemax"]),
    "mlp_loss_float64": ("mod_add_grokking", ["training.steps=60", "model.loss_dtype=float64"]),
    "mlp_grokfast": ("mod_add_grokking", ["training.steps=60", "optimizer.grokfast=ema"]),
    "mlp_muon": ("mod_add_grokking", ["training.steps=60", "optimizer.name=muon"]),
    "mlp_perp_noise_norm": ("mod_add_grokking", ["training.steps=60", "optimizer.perp_grad=true",
                                                 "optimizer.grad_noise=0.01", "optimizer.weight_noise=0.001",
                                                 "optimizer.constant_norm=true"]),
    "mlp_sgd": ("mod_add_grokking", ["training.steps=60", "optimizer.name=sgd", "optimizer.momentum=0.9",
                                     "optimizer.lr=0.1"]),
    "mlp_adam_init": ("mod_add_grokking", ["training.steps=60", "optimizer.name=adam",
                                           "optimizer.weight_decay=0.01", "optimizer.decay_toward=init"]),
    "mlp_measures": ("mod_add_grokking", ["training.steps=40", "output.measures=all"]),
    "perm": ("perm_s5_grokking", ["training.steps=30"]),
    "perm_measures": ("perm_s5_grokking", ["training.steps=20", "output.measures=all"]),
    # p = 47: 1,081 training rows, so minibatches of 512 cross epochs, at a quarter of the cost.
    "transformer": ("fig1_div_transformer", ["training.steps=20", "task.p=47"]),
    "transformer_full_batch": ("fig1_div_transformer", ["training.steps=6", "training.batch_size=0", "task.p=47",
                                                        "training.eval_interval=2"]),
    "transformer_dropout_sinusoidal": ("fig1_div_transformer", ["training.steps=20", "model.dropout=0.1",
                                                                "model.positional=sinusoidal", "task.p=47"]),
    "transformer_float64": ("fig1_div_transformer", ["training.steps=10", "model.dtype=float64", "task.p=31"]),
    "transformer_stablemax_muon": ("fig1_div_transformer", ["training.steps=20", "model.loss=stablemax",
                                                            "optimizer.name=muon", "task.p=47"]),
    "transformer_measures": ("fig1_div_transformer", ["training.steps=10", "output.measures=all",
                                                      "model.n_layers=1"]),
    # Nanda et al.'s switches: no LayerNorm, "x y =", their initialization, the loss in float64, full batch
    "transformer_nanda": ("nanda_mod_add", ["training.steps=12", "task.p=31", "output.measures=all"]),
    # The MLP on input vectors: +-1 bits with SGD minibatches and the parity measures; the digits'
    # real inputs with the MSE loss and AdamW (the digits extra).
    "dense_parity": ("sparse_parity", ["training.steps=60", "model.d_hidden=64", "task.samples=400",
                                       "output.measures=all"]),
    "dense_digits_mse": ("digits_omnigrok", ["training.steps=30", "model.d_hidden=64"]),
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digests(run: Path) -> dict:
    """sha256 of metrics.csv, of measures.csv where there is one, and of the final parameters
    (names, dtypes, shapes and bytes, in name order)."""
    out = {"metrics": sha256((run / "metrics.csv").read_bytes())}
    if (run / "measures.csv").exists():
        out["measures"] = sha256((run / "measures.csv").read_bytes())
    params = load_checkpoint(run / "checkpoint.npz")[1]
    h = hashlib.sha256()
    for name in sorted(params):
        p = params[name]
        h.update(f"{name} {p.dtype.str} {p.shape}\n".encode())
        h.update(p.tobytes())
    out["params"] = h.hexdigest()
    return out


def available(name: str) -> bool:
    """Whether this machine can train the run (the digits need the digits extra, scikit-learn)."""
    from grokking.errors import ConfigError

    preset, overrides = RUNS[name]
    try:
        resolve_config(preset, None, COMMON + overrides)
    except ConfigError:
        return False
    return True


def compute(names=None) -> dict:
    """Train the golden runs (all, or ``names``) in a temporary directory; their digests by name."""
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names or RUNS:
            preset, overrides = RUNS[name]
            out = Path(tmp) / name
            run_experiment(resolve_config(preset, None, COMMON + overrides), out, log=lambda *_: None)
            result[name] = digests(out)
    return result


def recorded() -> dict:
    """golden.json: {"environments": {id: {"made_on": ..., "runs": {name: digests}}}}."""
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {"environments": {}}


def main(argv) -> int:
    import argparse

    p = argparse.ArgumentParser(description="compute (and record) the golden runs' hashes")
    p.add_argument("--write", action="store_true", help="record them in golden.json for this environment")
    p.add_argument("--runs", help="comma-separated subset of: " + ", ".join(RUNS))
    args = p.parse_args(argv)
    names = args.runs.split(",") if args.runs else None
    env = numerics.environment()
    hashes = compute(names)
    print(json.dumps({"environment": env, "runs": hashes}, indent=2))
    if args.write:
        if not env["portable"] or names:
            print("golden.py: --write records every run, in the portable environment only", file=sys.stderr)
            return 2
        golden = recorded()
        golden["environments"][env["id"]] = {"made_on": env["cpu"], "runs": hashes}
        GOLDEN.write_text(json.dumps(golden, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
