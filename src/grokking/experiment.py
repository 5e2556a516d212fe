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

from . import __version__, loggers, numerics, preemption, rundir
from .artifacts import CHECKPOINT, prepare_out_dir, read_json, remove_drawn, remove_stale_temps, write_json
from .checkpoint import (BatchOrder, check_resumable, has_checkpoint, load_checkpoint, load_latest_good,
                         read_run_json, save_checkpoint, save_snapshot, snapshot_steps, truncate_metrics)
from .config import Config, validate
from .errors import DISK_FULL, ConfigError, WriteFailed
from .engine import Batch
from .model import engine_threads, weight_norm
from .measures import MEASURES, MEASURES_CSV, Context, parse_measures
from .measures import evaluate as evaluate_measures
from .models import MODELS
from .optimizer import SGD, Adam, Muon, flatten, learning_rate
from .tasks import build as build_task, split_indices
from .transforms import ConstantNorm, Transforms, WeightNoise, lr_factor, step_rng

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
    """config.json's ``meta``: what produced the run, down to the kernels that decide its bytes."""
    return {"grokking": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "numerics": numerics.environment()}


def build_model(config: Config, n_tokens: int, n_classes: int):
    return MODELS[config.model.type](config.model, n_tokens, n_classes)


def build_optimizer(config: Config, params, embeddings=None):
    """The optimizer of ``config`` over ``params``; Muon leaves the model's ``embeddings``
    (``models.Model.embeddings``) to AdamW."""
    o = config.optimizer
    to_init = o.decay_toward == "init"
    if o.name == "sgd":
        return SGD(params, momentum=o.momentum, weight_decay=o.weight_decay, decay_to_init=to_init)
    if o.name == "muon":
        return Muon(params, o.lr, muon_lr=o.muon_lr, momentum=o.muon_momentum, weight_decay=o.weight_decay,
                    onehot_input=config.model.type == "mlp" and config.model.input != "embedding",
                    embeddings=embeddings, beta1=o.beta1, beta2=o.beta2, eps=o.eps, decoupled=True, decay_to_init=to_init)
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


def check_run_config(config: Config) -> Config:
    """validate() plus what this machine must have for the run: the chosen trackers' packages."""
    validate(config)
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
                   log=print, threads: int | None = None, resume: bool = False, stop=None) -> dict:
    """Train one run described by ``config`` and write its artifacts to ``out``; return the summary.

    ``threads`` is how many cores the engine uses (default: all); it changes speed, never results.

    With ``resume``, continue the interrupted run in ``out`` from its checkpoint: metrics.csv and
    the parameters end byte-identical to those of an uninterrupted run.

    The run holds ``out`` from start to summary (``rundir.hold``). Raises ConfigError (before
    anything is written) for a config no run can use, an ``out`` that already holds a run and
    ``force`` is false, an ``out`` another live process holds (RunDirBusy, ``force`` or not), or,
    with ``resume``, an ``out`` that holds no run or whose config.json differs in a setting that
    changes results. A run killed before its first checkpoint resumes from step 0. Raises
    WriteFailed when the disk is full, leaving ``out`` resumable.

    SIGTERM (a cluster's preemption) or ``stop()`` becoming true (polled after each update) ends
    the run at a checkpoint of the step it reached, raising ``preemption.Preempted``; ``resume``
    then continues it byte for byte.

    A run whose numbers may differ from other machines' (``grokking.numerics``) says so once per
    process through ``log``; one resumed under another numeric environment than it was started
    with says so, and its config.json records the change (``meta.resumed_under``).
    """
    check_run_config(config)
    numerics.check()
    if resume and force:
        raise ConfigError("--resume continues the run in --out and --force replaces it; choose one")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a directory")
    if resume and not out.is_dir():
        check_resumable(out, config.to_dict())  # raises: there is nothing to resume
    try:
        out.mkdir(parents=True, exist_ok=True)
        with preemption.watch(), rundir.hold(out):
            if resume and _killed_before_first_checkpoint(out, config):
                first = config.output.checkpoint_interval or config.training.steps
                log(f"{out}: no checkpoint yet (stopped before step {first}); starting it again from step 0")
                resume, force = False, True
            numerics.tell_once(log)
            return _train(config, out, force, name, log, threads, resume, stop)
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        raise WriteFailed(_write_failure(out, err)) from None


def _killed_before_first_checkpoint(out: Path, config: Config) -> bool:
    """Whether ``out`` holds a run of this config that started but never wrote a checkpoint (a
    config.json and nothing that ended), which ``--resume`` starts again from step 0."""
    if has_checkpoint(out) or (out / "summary.json").exists() or not (out / "config.json").exists():
        return False
    check_resumable(out, config.to_dict(), checkpoint=False)  # raises for another config
    return True


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


def _train(config: Config, out: Path, force: bool, name: str, log, threads, resume: bool, stop) -> dict:
    if resume:
        longer = check_resumable(out, config.to_dict())
        _check_same_measures(out, config)
        if longer:  # first: from here on the run is unfinished again, and resumable as such
            (out / "summary.json").unlink()
        remove_stale_temps(out)
        remove_drawn(out)  # redrawn at the end, or not at all
    else:
        prepare_out_dir(out, force)
    run = _Run(config, out, name)
    if resume:
        run.restore(log)
        run.note_changes(log)
        run.note_numerics(log)
    else:
        run.write_start()
    summary = run.train(threads, stop)
    if config.output.curves:
        _draw_curves(out, summary, run.name, log)
    write_json(out / "summary.json", summary)  # last: its presence marks a finished run
    log(one_line(summary))
    return summary


def _check_same_measures(out: Path, config: Config) -> None:
    """A resumed run's measures.csv must hold every evaluation, so its measures cannot change."""
    stored = read_json(out / "config.json").get("output", {}).get("measures", "")
    if stored != config.output.measures:
        raise ConfigError(f"--resume: output.measures is {stored!r} in {str(out / 'config.json')!r} and "
                          f"{config.output.measures!r} here; a resumed run keeps its measures")


class _Run:
    """One run's state: the task and its split, the model, optimizer and gradient transforms, the
    batch order, the running record of the metrics, and the files it appends to."""

    def __init__(self, config: Config, out: Path, name: str):
        t, tr = config.task, config.training
        self.config, self.out, self.name = config, out, name
        self.table = build_task(t)
        self.streams = streams = init_streams(tr.seed)
        self.train_idx, self.val_idx = split_indices(len(self.table), t.train_fraction,
                                                     np.random.default_rng(streams.split))
        self.model = build_model(config, self.table.n_tokens, self.table.n_classes)
        self.params = flatten(self.model.init_params(np.random.default_rng(streams.init)))  # cheap updates
        self.optimizer = build_optimizer(config, self.params, self.model.embeddings)
        self.transforms = Transforms(config, streams.noise)
        self.lr_factor = lr_factor(config)
        # What changes the weights after each update: noise, then Omnigrok's constant norm.
        self.after_update = [WeightNoise(streams.noise, config.optimizer.weight_noise)]
        if config.optimizer.constant_norm:
            self.after_update.append(ConstantNorm(self.params))
        self.train_rows, self.val_rows = self._rows(self.train_idx), self._rows(self.val_idx)
        self.full_batch = tr.batch_size == 0 or tr.batch_size >= len(self.train_idx)
        self.fixed = Batch(*self.train_rows, self.table.n_tokens, self.model.dtype) if self.full_batch else None
        self.batch_order = None if self.full_batch else \
            BatchOrder(self.train_idx, tr.batch_size, np.random.default_rng(streams.batch))
        self.measures = parse_measures(config.output.measures, t)
        # Where the run started, for the measures that read it (the same on resume: drawn from the seed).
        self.initial = {k: v.copy() for k, v in self.params.items()} \
            if any(MEASURES[m].initial for m in self.measures) else None
        self.static = {}  # what measures keep from one evaluation to the next
        self.schedule = eval_schedule(tr.steps, tr.eval_interval)
        self.snapshots = set(snapshot_steps(config.output.snapshots, tr.steps))
        self.next_eval, self.done, self.status, self.ended = 0, 0, "completed", None
        self.record = _Record()
        self.time_to_val_99, self.eval_time, self.elapsed = None, 0.0, 0.0  # elapsed: earlier sessions
        self.tracker_id = loggers.new_run_id()
        self.resumed_at = None
        self.numerics = [numerics.environment()["id"]]  # one id per stretch of training

    def _rows(self, idx):
        return self.table.x[idx], self.table.y[idx], self.table.labels[idx]

    def write_start(self) -> None:
        write_json(self.out / "config.json", {**self.config.to_dict(), "meta": versions()})
        write_json(self.out / "split.json", {
            "rows": "the rows of grokking.tasks.build(task); a table's are row-major over (x, y)",
            "train": self.train_idx.tolist(), "val": self.val_idx.tolist()})

    def note_numerics(self, log) -> None:
        """Compare the numeric environment with the one the run trained under before; when they
        differ, say so and record the change in config.json (its bytes now match neither)."""
        path = self.out / "config.json"
        stored = read_json(path)
        meta = stored.setdefault("meta", {})
        before = [meta.get("numerics", {}).get("id")] + [r["numerics"]["id"] for r in meta.get("resumed_under", [])]
        now = numerics.environment()
        self.numerics = [b or "unrecorded" for b in before]
        if now["id"] == before[-1]:
            return
        log(f"note: {self.out} trained until step {self.done} under another numeric environment "
            f"({before[-1] or 'not recorded'}) than this one ({now['id']}); the resumed run's numbers "
            "will match an uninterrupted run on neither (recorded in config.json, meta.resumed_under)")
        meta.setdefault("resumed_under", []).append({"step": self.done, "numerics": now})
        write_json(path, stored)
        self.numerics.append(now["id"])

    def note_changes(self, log) -> None:
        """Record in config.json the settings this resume changed (a longer budget, another
        evaluation interval, output settings), and say so; results keys never differ here."""
        path = self.out / "config.json"
        stored = read_run_json(path)
        now = self.config.to_dict()
        changes = {f"{section}.{key}": [stored.get(section, {}).get(key), value]
                   for section, values in now.items() for key, value in values.items()
                   if stored.get(section, {}).get(key) != value and key != "progress"}
        if not changes:
            return
        meta = stored.get("meta", {})
        meta.setdefault("changed_on_resume", []).append({"step": self.done, **changes})
        write_json(path, {**now, "meta": meta})
        log(f"{self.out}: resumed at step {self.done} with " +
            ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()))

    def restore(self, log) -> None:
        """Continue from the latest good checkpoint: parameters, optimizer and transform state,
        batch order, and the running record replayed from the metrics rows up to its step. The
        split it trained on must be the one this config draws."""
        meta, saved_params, saved_state = load_latest_good(self.out, log)
        split = read_run_json(self.out / "split.json")
        if split.get("train") != self.train_idx.tolist() or split.get("val") != self.val_idx.tolist():
            raise ConfigError(f"--resume: {str(self.out / 'split.json')!r} is not the split this run's config draws; "
                              "start the run again with --force")
        for key, value in saved_params.items():
            self.params[key][...] = value
        self.optimizer.load_state_dict(saved_state)
        self.transforms.load_state_dict(saved_state)
        if self.batch_order is not None:
            self.batch_order.load_state_dict(meta["batch_order"])
        self.done, self.elapsed, self.eval_time = meta["step"], meta["elapsed_s"], meta["eval_time_s"]
        self.time_to_val_99, self.ended = meta["time_to_val_99_s"], meta["ended"]
        self.name = meta["name"]  # the run keeps the name it started with, whatever resumed it
        self.tracker_id = meta.get("tracker_id") or self.tracker_id
        steps = self.config.training.steps
        if self.done > steps:
            raise ConfigError(f"--resume: {str(self.out)!r} has trained {self.done} steps, more than "
                              f"training.steps={steps}")
        # The rows the run wrote up to its checkpoint, on the schedule it was started with. Trained
        # longer, it drops the row of its old last step unless the new schedule has that step too,
        # so that its metrics.csv is that of a run given the larger budget from the start.
        stored = read_run_json(self.out / "config.json")["training"]
        written = eval_schedule(stored["steps"], stored["eval_interval"])
        longer = self.ended == "completed" and steps > self.done
        drop = self.done if longer and self.done not in self.schedule else None
        expected = [s for s in written if s <= self.done and s != drop]
        for filename, columns in (("metrics.csv", METRIC_COLUMNS), (MEASURES_CSV, None)):
            if filename == MEASURES_CSV and not (self.measures and (self.out / filename).exists()):
                continue
            rows = truncate_metrics(self.out / filename, self.done, columns, drop=drop)
            if not self.ended and [r["step"] for r in rows] != expected:
                raise ConfigError(f"--resume: {str(self.out / filename)!r} lacks rows the checkpoint at "
                                  f"step {self.done} expects; start the run again with --force")
            if filename == "metrics.csv":
                for row in rows:  # the running values, exactly as the uninterrupted run had them here
                    self.record.add(row)
        if longer:
            self.ended = None
        self.next_eval = sum(s <= self.done for s in self.schedule)
        self.status = self.ended or self.status
        self.resumed_at = self.done

    def checkpoint(self, step: int, ended_as=None) -> None:
        # Every row up to this step must be on disk before a checkpoint says the run got this far.
        for fh in self.files.values():
            fh.flush()
            os.fsync(fh.fileno())
        state = {**self.optimizer.state_dict(), **self.transforms.state_dict()}
        save_checkpoint(self.out / CHECKPOINT, step, self.params, state, {
            "batch_order": None if self.batch_order is None else self.batch_order.state_dict(),
            "elapsed_s": self.elapsed + time.perf_counter() - self.start, "eval_time_s": self.eval_time,
            "time_to_val_99_s": self.time_to_val_99, "ended": ended_as, "name": self.name,
            "tracker_id": self.tracker_id})

    def step(self, step: int) -> tuple[float, bool]:
        """One update; returns the learning rate and whether the loss diverged (then no update)."""
        config = self.config
        lr = learning_rate(step, config.optimizer.lr, config.optimizer.warmup_steps) * self.lr_factor
        batch = self.fixed if self.full_batch else \
            Batch(*self._rows(self.batch_order.next()), self.table.n_tokens, self.model.dtype)
        rng = step_rng(self.streams.dropout, step) if self.model.uses_rng else None
        loss, _, grads = self.model.loss_and_grads(self.params, batch, rng)
        if not math.isfinite(loss):
            return lr, True
        self.transforms(grads, self.params, step)
        self.optimizer.step(self.params, grads, lr)
        for change in self.after_update:
            change(self.params, step)
        return lr, False

    def evaluate(self, step: int, lr: float) -> dict:
        """Both splits, one metrics row (and one measures row); returns the metrics row."""
        t0 = time.perf_counter()
        train_loss, train_acc = self.model.evaluate(self.params, *self.train_rows)
        val_loss, val_acc = self.model.evaluate(self.params, *self.val_rows)
        self.eval_time += time.perf_counter() - t0
        row = {"step": step, "train_loss": train_loss, "train_acc": train_acc,
               "val_loss": val_loss, "val_acc": val_acc, "lr": lr, "weight_norm": weight_norm(self.params)}
        self.files["metrics"].write(",".join(_fmt(row[c]) for c in METRIC_COLUMNS) + "\n")
        if self.measures:
            ctx = Context(self.model, self.params, self.table, self.train_idx, self.config.task, self.static,
                          self.initial)
            values = evaluate_measures(self.measures, ctx)
            if self.files["measures"].tell() == 0:
                self.files["measures"].write(",".join(["step", *values]) + "\n")
            self.files["measures"].write(",".join([str(step), *map(_fmt, values.values())]) + "\n")
            row = {**row, **values}
        if self.record.add(row):
            self.time_to_val_99 = self.elapsed + time.perf_counter() - self.start
        return row

    def _open(self, filename: str, header=None):
        fh = open(self.out / filename, "w" if self.resumed_at is None else "a", newline="", buffering=1)
        if header and self.resumed_at is None:
            fh.write(header + "\n")
        return fh

    def train(self, threads, stop=None) -> dict:
        """The loop, from the first step not done to the end of the budget or a divergence; the
        final checkpoint; the summary."""
        config, out = self.config, self.out
        progress = _Progress(config.training.steps, config.output.progress, self.name)
        seed = config.training.seed
        seed_name = self.name if f"seed {seed}" in self.name else f"{self.name} seed {seed}"
        trackers = loggers.Trackers.open(loggers.parse_loggers(config.output.loggers), out, seed_name,
                                         config.to_dict(), self.resumed_at, self.tracker_id)
        self.start = time.perf_counter()
        self.files = {}
        try:
            # Divergence is detected from the losses; NumPy's overflow warnings would only be noise.
            with engine_threads(threads), np.errstate(all="ignore"):
                self.files["metrics"] = self._open("metrics.csv", ",".join(METRIC_COLUMNS))
                if self.measures:
                    self.files["measures"] = self._open(MEASURES_CSV)
                self._loop(trackers, progress, stop)
        except BaseException as err:
            if isinstance(err, OSError) and err.filename is None:  # write_atomic names its file; a row write none
                err.filename = str(out / "metrics.csv")
            trackers.close()
            raise
        finally:
            progress.close()
            for fh in self.files.values():
                fh.close()
        summary = self.summary(self.elapsed + time.perf_counter() - self.start)
        try:
            trackers.finish(summary)
        finally:
            trackers.close()
        return summary

    def _loop(self, trackers, progress, stop=None) -> None:
        interval, steps = self.config.output.checkpoint_interval, self.config.training.steps
        stop = stop or (lambda: False)
        for step in range(self.done + 1, steps + 1) if not self.ended else ():
            lr, diverged = self.step(step)
            self.done = step
            if diverged or step == self.schedule[self.next_eval]:
                self.next_eval += 1
                row = self.evaluate(step, lr)
                trackers.log(row)
                diverged = diverged or not (math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]))
                progress.update(step, train_acc=f"{row['train_acc']:.3f}", val_acc=f"{row['val_acc']:.3f}")
            if diverged:
                self.status = "diverged"
                break
            if step in self.snapshots:  # a resume writes those after its checkpoint again, the same bytes
                save_snapshot(self.out, step, self.params)
            scheduled = interval and step % interval == 0 and step < steps
            if scheduled:
                self.checkpoint(step)
            if step < steps and (preemption.requested() or stop()):
                if not scheduled:
                    self.checkpoint(step)
                why = "SIGTERM" if preemption.requested() else "a stop request"
                raise preemption.Preempted(f"{self.out}: stopped by {why} after step {step}, at a checkpoint of "
                                           "that step", step)
        if not self.ended:
            self.checkpoint(self.done, ended_as=self.status)  # final parameters; a kill after this skips training

    def summary(self, wall: float) -> dict:
        record = self.record
        s99, v99 = record.first99["train"], record.first99["val"]
        last, best = record.last, record.best
        summary = {
            "name": self.name,
            "status": self.status,
            "steps": self.done,
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
            "time_to_val_99_s": self.time_to_val_99,
            "wall_time_s": wall,
            "eval_time_s": self.eval_time,
            "steps_per_s": self.done / wall if wall > 0 else None,
            "n_params": int(sum(p.size for p in self.params.values())),
            "n_train": int(len(self.train_idx)),
            "n_val": int(len(self.val_idx)),
            # What decided the bytes (grokking.numerics); " then " joins the environments of a run
            # resumed under another one.
            "numerics": " then ".join(self.numerics),
        }
        return {k: _finite_or_none(v) if isinstance(v, float) else v for k, v in summary.items()}


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
