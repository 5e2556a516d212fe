"""One experiment: build the task, train the model, evaluate on schedule, write the run directory.

``run_experiment`` is the single library call behind both command lines, the sweeps and the tests.
The loop keeps a fixed order each step: learning rate, batch, forward/backward, optimizer update,
and, on the evaluation schedule, whole-split evaluation appended to metrics.csv.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__
from .artifacts import prepare_out_dir, write_json
from .config import Config, validate
from .model import MLP, Batch, weight_norm
from .optimizer import SGD, AdamW, learning_rate
from .tasks import build_table, split_indices

METRIC_COLUMNS = ("step", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "weight_norm")
THRESHOLD = 0.99  # "steps until 99% accuracy", the paper's metric (Power et al. Sec. 3.1.1)


def eval_schedule(steps: int, eval_interval: int) -> list[int]:
    """Steps after which both splits are evaluated.

    Every ``eval_interval`` steps and at the last step, plus about 12 log-spaced steps below the
    first interval, because grokking curves are read on a log-x axis.
    """
    early = np.unique(np.round(np.geomspace(1, eval_interval, 12)).astype(int))
    regular = range(eval_interval, steps + 1, eval_interval)
    return sorted({int(s) for s in early if s <= steps} | set(regular) | {steps})


def versions() -> dict:
    return {"grokking": __version__, "python": platform.python_version(), "numpy": np.__version__}


def build_model(config: Config, n_tokens: int, n_classes: int) -> MLP:
    m = config.model
    return MLP(n_tokens, n_classes, d_embed=m.d_embed, d_hidden=m.d_hidden, n_layers=m.n_layers,
               activation=m.activation, init_scale=m.init_scale, dtype=m.dtype)


def build_optimizer(config: Config, params):
    o = config.optimizer
    if o.name == "sgd":
        return SGD(params, momentum=o.momentum, weight_decay=o.weight_decay)
    return AdamW(params, beta1=o.beta1, beta2=o.beta2, eps=o.eps, weight_decay=o.weight_decay)


def _batches(train_idx: np.ndarray, batch_size: int, rng: np.random.Generator):
    """Epochs of shuffled minibatches of training-row indices (the last of an epoch may be smaller)."""
    while True:
        order = train_idx[rng.permutation(len(train_idx))]
        for i in range(0, len(order), batch_size):
            yield order[i:i + batch_size]


def _fmt(value) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


class _Progress:
    """A tqdm bar on a terminal; silent otherwise (logs and CI stay clean)."""

    def __init__(self, total: int, enabled: bool, name: str):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=name or "train", unit="step", leave=False)

    def update(self, step: int, **postfix) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_experiment(config: Config, out, *, force: bool = False, name: str = "",
                   log=print) -> dict:
    """Train one run described by ``config`` and write its artifacts to ``out``; return the summary.

    Raises ConfigError (before anything is written) for a config no run can use or an ``out``
    that already holds a run and ``force`` is false.
    """
    validate(config)
    t, tr = config.task, config.training
    table = build_table(t.operation, t.p, t.n)
    out = prepare_out_dir(Path(out), force)

    # Named random streams from one seed: the split, the initialization and the batch order.
    split_seq, init_seq, batch_seq = np.random.SeedSequence(tr.seed).spawn(3)
    train_idx, val_idx = split_indices(len(table), t.train_fraction, np.random.default_rng(split_seq))
    model = build_model(config, table.n_tokens, table.n_classes)
    params = model.init_params(np.random.default_rng(init_seq))
    optimizer = build_optimizer(config, params)
    n_params = int(sum(p.size for p in params.values()))

    write_json(out / "config.json", {**config.to_dict(), "meta": versions()})
    write_json(out / "split.json", {
        "rows": "row-major over (x, y); see grokking.tasks.build_table",
        "train": train_idx.tolist(), "val": val_idx.tolist()})

    def split(idx):
        return table.x[idx], table.y[idx], table.labels[idx]

    train_rows, val_rows = split(train_idx), split(val_idx)
    full_batch = tr.batch_size == 0 or tr.batch_size >= len(train_idx)
    if full_batch:
        fixed = Batch(*train_rows, table.n_tokens, model.dtype)  # one-hot built once per run
    else:
        batch_rng = np.random.default_rng(batch_seq)
        batches = _batches(train_idx, tr.batch_size, batch_rng)

    schedule = eval_schedule(tr.steps, tr.eval_interval)
    next_eval = 0
    status = "completed"
    best = {"train_acc": 0.0, "val_acc": 0.0, "train_loss": math.inf, "val_loss": math.inf}
    first99 = {"train": None, "val": None}
    time_to_val_99 = None
    last = {}
    eval_time = 0.0
    progress = _Progress(tr.steps, config.output.progress, name)
    start = time.perf_counter()
    done = 0
    with open(out / "metrics.csv", "w", newline="", buffering=1) as metrics:
        metrics.write(",".join(METRIC_COLUMNS) + "\n")
        for step in range(1, tr.steps + 1):
            lr = learning_rate(step, config.optimizer.lr, config.optimizer.warmup_steps)
            batch = fixed if full_batch else Batch(*split(next(batches)), table.n_tokens, model.dtype)
            loss, _, grads = model.loss_and_grads(params, batch)
            diverged = not math.isfinite(loss)
            if not diverged:
                optimizer.step(params, grads, lr)
            done = step
            if diverged or step == schedule[next_eval]:
                next_eval += 1
                t0 = time.perf_counter()
                train_loss, train_acc = model.evaluate(params, *train_rows)
                val_loss, val_acc = model.evaluate(params, *val_rows)
                eval_time += time.perf_counter() - t0
                last = {"step": step, "train_loss": train_loss, "train_acc": train_acc,
                        "val_loss": val_loss, "val_acc": val_acc, "lr": lr,
                        "weight_norm": weight_norm(params)}
                metrics.write(",".join(_fmt(last[c]) for c in METRIC_COLUMNS) + "\n")
                diverged = diverged or not (math.isfinite(train_loss) and math.isfinite(val_loss))
                for key in ("train_acc", "val_acc"):
                    best[key] = max(best[key], last[key])
                for key in ("train_loss", "val_loss"):
                    if math.isfinite(last[key]):
                        best[key] = min(best[key], last[key])
                if first99["train"] is None and train_acc >= THRESHOLD:
                    first99["train"] = step
                if first99["val"] is None and val_acc >= THRESHOLD:
                    first99["val"] = step
                    time_to_val_99 = time.perf_counter() - start
                progress.update(step, train_acc=f"{train_acc:.3f}", val_acc=f"{val_acc:.3f}")
            if diverged:
                status = "diverged"
                break
    progress.close()
    wall = time.perf_counter() - start

    s99, v99 = first99["train"], first99["val"]
    summary = {
        "name": name,
        "status": status,
        "steps": done,
        "final_train_acc": last["train_acc"], "final_val_acc": last["val_acc"],
        "final_train_loss": last["train_loss"], "final_val_loss": last["val_loss"],
        "best_train_acc": best["train_acc"], "best_val_acc": best["val_acc"],
        "best_train_loss": _finite_or_none(best["train_loss"]),
        "best_val_loss": _finite_or_none(best["val_loss"]),
        "steps_to_train_99": s99,
        "steps_to_val_99": v99,
        "grok_delay": v99 / s99 if s99 and v99 else None,
        "grokked": v99 is not None,
        "time_to_val_99_s": time_to_val_99,
        "wall_time_s": wall,
        "eval_time_s": eval_time,
        "steps_per_s": done / wall if wall > 0 else None,
        "n_params": n_params,
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
    }
    summary = {k: _finite_or_none(v) if isinstance(v, float) else v for k, v in summary.items()}
    if config.output.curves:
        _draw_curves(out, summary, name, log)
    write_json(out / "summary.json", summary)  # last: its presence marks a finished run
    log(one_line(summary))
    return summary


def _finite_or_none(value):
    return value if math.isfinite(value) else None


def _draw_curves(out: Path, summary: dict, name: str, log) -> None:
    try:
        from .plotting import plot_curves

        plot_curves(out / "metrics.csv", summary, out / "curves.png", title=name)
    except ImportError:
        print("note: matplotlib is not installed; skipping curves.png", file=sys.stderr)


def one_line(s: dict) -> str:
    """The result of a run in one line, for the terminal."""
    def at(step):
        return f"step {step}" if step else "never"

    delay = f" (grok delay {s['grok_delay']:.1f}x)" if s["grok_delay"] else ""
    return (f"{s['name'] or 'run'}: {s['status']} after {s['steps']} steps in {s['wall_time_s']:.1f} s; "
            f"train 99% at {at(s['steps_to_train_99'])}, val 99% at {at(s['steps_to_val_99'])}{delay}; "
            f"best val acc {s['best_val_acc']:.3f}")
