"""One experiment: build the task, train the model, evaluate on schedule, write the run directory.

``run_experiment`` is the single library call behind both command lines, the sweeps and the tests.
The loop keeps a fixed order each step: learning rate, batch, forward/backward, optimizer update,
and, on the evaluation schedule, whole-split evaluation appended to metrics.csv; on the checkpoint
schedule and at the end, checkpoint.npz, from which ``resume=True`` continues a killed run.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import __version__, loggers, rundir
from .artifacts import CHECKPOINT, prepare_out_dir, remove_stale_temps, write_json
from .checkpoint import BatchOrder, check_resumable, load_checkpoint, save_checkpoint, truncate_metrics
from .config import Config, validate
from .errors import DISK_FULL, ConfigError, WriteFailed
from .model import Batch, engine_threads, weight_norm
from .models import MODELS
from .optimizer import SGD, Adam, Noise, flatten, learning_rate
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


def build_model(config: Config, n_tokens: int, n_classes: int):
    return MODELS[config.model.type](config.model, n_tokens, n_classes)


def build_optimizer(config: Config, params):
    o = config.optimizer
    to_init = o.decay_toward == "init"
    if o.name == "sgd":
        return SGD(params, momentum=o.momentum, weight_decay=o.weight_decay, decay_to_init=to_init)
    return Adam(params, beta1=o.beta1, beta2=o.beta2, eps=o.eps, weight_decay=o.weight_decay,
                decoupled=o.name == "adamw", decay_to_init=to_init)


class Streams(NamedTuple):
    """The named random streams of a run, spawned from its one seed (spawning more streams later
    leaves these unchanged)."""
    split: np.random.SeedSequence
    init: np.random.SeedSequence
    batch: np.random.SeedSequence
    noise: np.random.SeedSequence
    dropout: np.random.SeedSequence


def init_streams(seed: int) -> Streams:
    return Streams(*np.random.SeedSequence(seed).spawn(len(Streams._fields)))


def _step_rng(seq: np.random.SeedSequence, step: int) -> np.random.Generator:
    """A generator that depends only on (stream, step): a resumed run draws what an uninterrupted
    one would, with no generator state to checkpoint."""
    return np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, step)))


def check_run_config(config: Config) -> Config:
    """validate() plus the rules of the keys only the run loop reads."""
    validate(config)
    if config.output.checkpoint_interval < 0:
        raise ConfigError("output.checkpoint_interval must be >= 0 (0: only at the end), "
                          f"got {config.output.checkpoint_interval}")
    loggers.check_installed(loggers.parse_loggers(config.output.loggers))
    return config


DROP = 0.9  # a generalized run that falls below this validation accuracy has lost what it learned


class _Record:
    """What the summary needs from the evaluated rows: the last, the best, the first at 99%, and
    how the run held up after it (evaluations below DROP, the lowest validation accuracy)."""

    def __init__(self):
        self.last = {}
        self.best = {"train_acc": 0.0, "val_acc": 0.0, "train_loss": math.inf, "val_loss": math.inf}
        self.first99 = {"train": None, "val": None}
        self.drops = 0
        self.min_val_after = None

    def add(self, row: dict) -> bool:
        """Take one metrics row; True when it is the first with validation accuracy >= 99%."""
        self.last = row
        if self.first99["val"] is not None:
            self.drops += row["val_acc"] < DROP
            self.min_val_after = row["val_acc"] if self.min_val_after is None else \
                min(self.min_val_after, row["val_acc"])
        for key in ("train_acc", "val_acc"):
            self.best[key] = max(self.best[key], row[key])
        for key in ("train_loss", "val_loss"):
            if math.isfinite(row[key]):
                self.best[key] = min(self.best[key], row[key])
        if self.first99["train"] is None and row["train_acc"] >= THRESHOLD:
            self.first99["train"] = row["step"]
        if self.first99["val"] is None and row["val_acc"] >= THRESHOLD:
            self.first99["val"] = row["step"]
            return True
        return False


def replay(metrics: dict[str, list]) -> _Record:
    """The record of a run's metrics, read back as columns (``plotting.read_metrics``)."""
    record = _Record()
    for values in zip(*metrics.values()):
        row = dict(zip(metrics, values))
        record.add({**row, "step": int(row["step"])})
    return record


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
                   log=print, threads: int | None = None, resume: bool = False) -> dict:
    """Train one run described by ``config`` and write its artifacts to ``out``; return the summary.

    ``threads`` is how many cores the engine uses (default: all); it changes speed, never results.

    With ``resume``, continue the interrupted run in ``out`` from its checkpoint: metrics.csv and
    the parameters end byte-identical to those of an uninterrupted run.

    The run holds ``out`` from start to summary (``rundir.hold``). Raises ConfigError (before
    anything is written) for a config no run can use, an ``out`` that already holds a run and
    ``force`` is false, an ``out`` another live process holds (RunDirBusy, ``force`` or not), or,
    with ``resume``, an ``out`` without a checkpoint or whose config.json differs in a setting that
    changes results. Raises WriteFailed when the disk is full, leaving ``out`` resumable.
    """
    check_run_config(config)
    if resume and force:
        raise ConfigError("--resume continues the run in --out and --force replaces it; choose one")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a directory")
    if resume and not out.is_dir():
        check_resumable(out, config.to_dict())  # raises: there is nothing to resume
    try:
        out.mkdir(parents=True, exist_ok=True)
        with rundir.hold(out):
            return _train(config, out, force, name, log, threads, resume)
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        raise WriteFailed(_write_failure(out, err)) from None


def _write_failure(out: Path, err: OSError) -> str:
    """One line for a write that ran out of space: what, where, and how to go on from what is kept."""
    what = f"could not write {err.filename or f'a file in {out}'}: {err.strerror}"
    try:
        meta = load_checkpoint(out / CHECKPOINT)[0]
    except ConfigError:  # no checkpoint yet, or (unlikely) not a readable one
        return f"{what}; nothing trained is kept: free space, then start the run again"
    kept = (f"training ended at step {meta['step']} and only the summary is missing" if meta["ended"]
            else f"the run is kept at its checkpoint of step {meta['step']}")
    return (f"{what}; {kept}: free space, then resume it (run_experiment --resume --out {out}, "
            "or the same run_suite command)")


def _train(config: Config, out: Path, force: bool, name: str, log, threads, resume: bool) -> dict:
    t, tr = config.task, config.training
    table = build_table(t.operation, t.p, t.n)
    if resume:
        ckpt_path = check_resumable(out, config.to_dict())
        remove_stale_temps(out)
        (out / "curves.png").unlink(missing_ok=True)  # redrawn at the end, or not at all
    else:
        prepare_out_dir(out, force)

    split_seq, init_seq, batch_seq, noise_seq, dropout_seq = init_streams(tr.seed)
    train_idx, val_idx = split_indices(len(table), t.train_fraction, np.random.default_rng(split_seq))
    model = build_model(config, table.n_tokens, table.n_classes)
    params = flatten(model.init_params(np.random.default_rng(init_seq)))  # one buffer: cheap updates
    optimizer = build_optimizer(config, params)
    noise = Noise(noise_seq, config.optimizer.grad_noise, config.optimizer.weight_noise)
    n_params = int(sum(p.size for p in params.values()))

    if not resume:
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
    batch_order = None if full_batch else BatchOrder(train_idx, tr.batch_size,
                                                     np.random.default_rng(batch_seq))

    schedule = eval_schedule(tr.steps, tr.eval_interval)
    next_eval = 0
    status = "completed"
    record = _Record()
    time_to_val_99 = None
    eval_time = 0.0
    done = 0
    elapsed = 0.0  # wall time of the earlier sessions of a resumed run
    ended = None  # the status a final checkpoint recorded: training is over, only the summary is left
    tracker_id = loggers.new_run_id()

    if resume:
        meta, saved_params, saved_state = load_checkpoint(ckpt_path)
        for key, value in saved_params.items():
            params[key][...] = value
        optimizer.load_state_dict(saved_state)
        if batch_order is not None:
            batch_order.load_state_dict(meta["batch_order"])
        done, elapsed, eval_time = meta["step"], meta["elapsed_s"], meta["eval_time_s"]
        time_to_val_99, ended = meta["time_to_val_99_s"], meta["ended"]
        name = meta["name"]  # the run keeps the name it started with, whatever resumed it
        tracker_id = meta.get("tracker_id") or tracker_id
        rows = truncate_metrics(out / "metrics.csv", done, METRIC_COLUMNS)
        expected = [s for s in schedule if s <= done]
        if not ended and [r["step"] for r in rows] != expected:
            raise ConfigError(f"--resume: {str(out / 'metrics.csv')!r} lacks rows the checkpoint at "
                              f"step {done} expects; start the run again with --force")
        for row in rows:  # the running values, exactly as the uninterrupted run had them here
            record.add(row)
        next_eval = len(expected)
        status = ended or status

    def checkpoint(step: int, ended_as=None) -> None:
        # Every row up to this step must be on disk before a checkpoint says the run got this far.
        metrics.flush()
        os.fsync(metrics.fileno())
        save_checkpoint(out / CHECKPOINT, step, params, optimizer.state_dict(), {
            "batch_order": None if batch_order is None else batch_order.state_dict(),
            "elapsed_s": elapsed + time.perf_counter() - start, "eval_time_s": eval_time,
            "time_to_val_99_s": time_to_val_99, "ended": ended_as, "name": name,
            "tracker_id": tracker_id})

    interval = config.output.checkpoint_interval
    progress = _Progress(tr.steps, config.output.progress, name)
    seed_name = name if f"seed {tr.seed}" in name else f"{name} seed {tr.seed}"
    trackers = loggers.Trackers.open(loggers.parse_loggers(config.output.loggers), out, seed_name,
                                     config.to_dict(), done if resume else None, tracker_id)
    start = time.perf_counter()
    try:
        with engine_threads(threads), open(out / "metrics.csv", "a" if resume else "w", newline="",
                                           buffering=1) as metrics:
            if not resume:
                metrics.write(",".join(METRIC_COLUMNS) + "\n")
            for step in range(done + 1, tr.steps + 1) if not ended else ():
                lr = learning_rate(step, config.optimizer.lr, config.optimizer.warmup_steps)
                batch = fixed if full_batch else Batch(*split(batch_order.next()), table.n_tokens, model.dtype)
                rng = _step_rng(dropout_seq, step) if model.uses_rng else None
                loss, _, grads = model.loss_and_grads(params, batch, rng)
                diverged = not math.isfinite(loss)
                if not diverged:
                    noise.perturb_grads(grads, step)
                    optimizer.step(params, grads, lr)
                    noise.perturb_weights(params, step)
                done = step
                if diverged or step == schedule[next_eval]:
                    next_eval += 1
                    t0 = time.perf_counter()
                    train_loss, train_acc = model.evaluate(params, *train_rows)
                    val_loss, val_acc = model.evaluate(params, *val_rows)
                    eval_time += time.perf_counter() - t0
                    row = {"step": step, "train_loss": train_loss, "train_acc": train_acc,
                           "val_loss": val_loss, "val_acc": val_acc, "lr": lr,
                           "weight_norm": weight_norm(params)}
                    metrics.write(",".join(_fmt(row[c]) for c in METRIC_COLUMNS) + "\n")
                    trackers.log(row)
                    diverged = diverged or not (math.isfinite(train_loss) and math.isfinite(val_loss))
                    if record.add(row):
                        time_to_val_99 = elapsed + time.perf_counter() - start
                    progress.update(step, train_acc=f"{train_acc:.3f}", val_acc=f"{val_acc:.3f}")
                if diverged:
                    status = "diverged"
                    break
                if interval and step % interval == 0 and step < tr.steps:
                    checkpoint(step)
            if not ended:
                checkpoint(done, ended_as=status)  # the final parameters; a kill after this skips training
    except BaseException as err:
        if isinstance(err, OSError) and err.filename is None:  # write_atomic names its file; a row write none
            err.filename = str(out / "metrics.csv")
        trackers.close()
        raise
    finally:
        progress.close()
    wall = elapsed + time.perf_counter() - start

    s99, v99 = record.first99["train"], record.first99["val"]
    last, best = record.last, record.best
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
        "val_drops_after_99": record.drops if v99 else None,
        "min_val_acc_after_99": record.min_val_after,
        "time_to_val_99_s": time_to_val_99,
        "wall_time_s": wall,
        "eval_time_s": eval_time,
        "steps_per_s": done / wall if wall > 0 else None,
        "n_params": n_params,
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
    }
    summary = {k: _finite_or_none(v) if isinstance(v, float) else v for k, v in summary.items()}
    try:
        trackers.finish(summary)
    finally:
        trackers.close()
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
