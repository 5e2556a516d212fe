"""Checkpoints: everything a killed run needs to continue as if it had never stopped.

checkpoint.npz holds the parameters, the optimizer state, the minibatch generator's state and the
step, and is replaced atomically on schedule and at the end. The summary's running values (best
accuracy, first 99% steps, last evaluation) are not stored: they are recomputed from the rows of
metrics.csv up to the checkpoint's step, which are exactly the rows an uninterrupted run had at
that point. Rows written after the checkpoint are dropped on resume and written again, so a
resumed run's metrics.csv is byte-identical to an uninterrupted one's.

A checkpoint is never trusted blindly: it carries a SHA-256 of its content, a new one is read back
and checked before it replaces the old, and the one before is kept as checkpoint.prev.npz. A
resume that finds checkpoint.npz damaged (cut short by a copy, a bit flipped on disk) goes back to
the previous one, which costs the steps between them and nothing else.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .artifacts import CHECKPOINT, PREVIOUS_CHECKPOINT, SNAPSHOTS, read_json, write_atomic
from .errors import ConfigError

FORMAT = 2  # 2: with the SHA-256 of its content; 1 (no checksum) is still read
# Sections whose values change the numbers a run produces; output settings may differ on resume.
RESULT_SECTIONS = ("task", "model", "optimizer", "training")
# The training settings a resume may change: how long the run trains and how often it is evaluated
# change what it records from here on, never its numbers up to the checkpoint (the learning rate is
# a warmup and then constant, so it does not depend on the budget).
RESUMABLE_CHANGES = ("training.steps", "training.eval_interval")


class BatchOrder:
    """Shuffled minibatches of training-row indices, epoch after epoch (the last batch of an epoch
    may be smaller).

    Its state is the generator's state before the current epoch's permutation was drawn plus the
    position in that epoch: restoring it redraws the same permutation and continues mid-epoch.
    """

    def __init__(self, train_idx: np.ndarray, batch_size: int, rng: np.random.Generator):
        self.train_idx, self.batch_size, self.rng = train_idx, batch_size, rng
        self.epoch_start = None
        self.order = None
        self.position = 0

    def _new_epoch(self) -> None:
        self.epoch_start = self.rng.bit_generator.state
        self.order = self.train_idx[self.rng.permutation(len(self.train_idx))]
        self.position = 0

    def next(self) -> np.ndarray:
        if self.order is None or self.position >= len(self.order):
            self._new_epoch()
        batch = self.order[self.position:self.position + self.batch_size]
        self.position += len(batch)
        return batch

    def state_dict(self) -> dict:
        return {"epoch_start": self.epoch_start, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        if state["epoch_start"] is None:  # no batch drawn yet
            return
        self.rng.bit_generator.state = state["epoch_start"]
        self._new_epoch()
        self.position = int(state["position"])


def save_checkpoint(path: Path, step: int, params: dict, optimizer_state: dict, extra: dict,
                    keep_previous: bool = True) -> None:
    """Write the checkpoint to a temporary file and rename it over ``path`` (the one it replaces
    kept as checkpoint.prev.npz when ``keep_previous``).

    Arrays go in as ``param.<name>`` and ``optim.<key>``; scalars and the generator state (whose
    integers exceed 64 bits) go in one JSON string, so loading never needs pickle.
    """
    arrays = {f"param.{k}": v for k, v in params.items()}
    scalars = {}
    for key, value in optimizer_state.items():
        if isinstance(value, np.ndarray):
            arrays[f"optim.{key}"] = value
        else:
            scalars[key] = value
    meta = json.dumps({"format": FORMAT, "step": int(step), "optimizer": scalars, **extra})
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(meta), sha256=np.array(_digest(meta, arrays)), **arrays)
    path = Path(path)

    def verify_then_keep_previous(tmp: Path) -> None:
        try:
            load_checkpoint(tmp)
        except DamagedCheckpoint as err:  # what was written does not read back: keep the old one
            raise OSError(errno.EIO, f"the new checkpoint does not read back ({err})", str(path)) from None
        if keep_previous and path.exists():
            os.replace(path, path.with_name(PREVIOUS_CHECKPOINT))

    write_atomic(path, buf.getvalue(), before_replace=verify_then_keep_previous)


def snapshot_steps(text: str, budget: int) -> list[int]:
    """The steps of ``output.snapshots``: "log:N" (N steps log-spaced from 1 to the budget, rounded,
    the repeats among the first steps dropped), "100,1000,5000", or "" (none). ConfigError for
    anything else or a step outside 1..budget."""
    text = text.strip()
    hint = "output.snapshots takes log:N (N log-spaced steps), a comma-separated list of steps, or nothing"
    if not text:
        return []
    try:
        if text.startswith("log:"):
            n = int(text[4:])
            if n < 1:
                raise ValueError
            return sorted({int(round(s)) for s in np.geomspace(1, budget, n)})
        steps = [int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"{hint}, got {text!r}") from None
    if any(not 1 <= s <= budget for s in steps):
        raise ConfigError(f"output.snapshots: every step must be in 1..training.steps ({budget}), got {text!r}")
    return sorted(set(steps))


def snapshot_path(out: Path, step: int) -> Path:
    return Path(out) / SNAPSHOTS / f"step_{step:07d}.npz"


def save_snapshot(out: Path, step: int, params: dict) -> None:
    """The parameters after update ``step``, for analysis (``runs.Run.params(step)``); checksummed
    like a checkpoint."""
    path = snapshot_path(out, step)
    path.parent.mkdir(exist_ok=True)
    save_checkpoint(path, step, params, {}, {"snapshot": True}, keep_previous=False)


def _digest(meta: str, arrays: dict) -> str:
    """SHA-256 over the meta string and every array's name, dtype, shape and bytes."""
    h = hashlib.sha256(meta.encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class DamagedCheckpoint(ConfigError):
    """A checkpoint that cannot be read or whose content does not match its checksum."""


def load_checkpoint(path: Path) -> tuple[dict, dict, dict]:
    """(meta, params, optimizer_state) of a checkpoint written by ``save_checkpoint``; raises
    DamagedCheckpoint, with the reason, for anything else."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:  # closed however np.load fails
            text = str(data["meta"])
            arrays = {k: data[k] for k in data.files if k not in ("meta", "sha256")}
            digest = str(data["sha256"]) if "sha256" in data.files else None
        meta = json.loads(text)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise DamagedCheckpoint(f"cannot read checkpoint {str(path)!r}: {err}") from None
    if meta.get("format") not in (1, FORMAT):
        raise DamagedCheckpoint(f"checkpoint {str(path)!r} has format {meta.get('format')}; expected {FORMAT}")
    if meta["format"] >= 2 and digest != _digest(text, arrays):
        raise DamagedCheckpoint(f"checkpoint {str(path)!r} does not match its checksum")
    params = {k[len("param."):]: v for k, v in arrays.items() if k.startswith("param.")}
    state = {k[len("optim."):]: v for k, v in arrays.items() if k.startswith("optim.")}
    state.update(meta["optimizer"])
    return meta, params, state


def has_checkpoint(out: Path) -> bool:
    """Whether ``out`` holds a checkpoint (the latest, or the previous one, which a kill between
    the two renames of a save leaves alone)."""
    return (Path(out) / CHECKPOINT).exists() or (Path(out) / PREVIOUS_CHECKPOINT).exists()


def load_latest_good(out: Path, log=print) -> tuple[dict, dict, dict]:
    """The checkpoint to resume from: checkpoint.npz, or when it is missing or damaged the
    previous one (saying so through ``log``); ConfigError in one line when neither is good."""
    out = Path(out)
    latest, previous = out / CHECKPOINT, out / PREVIOUS_CHECKPOINT
    problem = f"{str(latest)!r} is missing"
    if latest.exists():
        try:
            return load_checkpoint(latest)
        except DamagedCheckpoint as err:
            problem = str(err)
    if previous.exists():
        try:
            loaded = load_checkpoint(previous)
        except DamagedCheckpoint as err:
            problem += f", and so is the previous one ({err})"
        else:
            log(f"note: {problem}; resuming from the previous checkpoint, of step {loaded[0]['step']}")
            return loaded
    raise ConfigError(f"--resume: {problem}; nothing in {str(out)!r} is safe to resume from: start the run "
                      "again with --force")


def config_difference(stored: dict, config: dict, allowed=RESUMABLE_CHANGES) -> str | None:
    """The first key whose value changes results and differs between two config trees, as
    'section.key (stored vs given)', or None when they agree; keys in ``allowed`` may differ."""
    for section in RESULT_SECTIONS:
        a, b = stored.get(section, {}), config.get(section, {})
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key) and f"{section}.{key}" not in allowed:
                return f"{section}.{key} ({a.get(key)!r} there, {b.get(key)!r} here)"
    return None


def steps_of(tree: dict) -> int:
    return int(tree.get("training", {}).get("steps", 0))


def read_run_json(path: Path):
    """A JSON artifact a resume relies on; ConfigError in one line when it is damaged."""
    try:
        return read_json(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"--resume: {str(path)!r} is damaged ({err}); start the run again with --force") from None


def check_resumable(out: Path, config_tree: dict, checkpoint: bool = True) -> bool:
    """Raise ConfigError unless ``out`` holds an interrupted run of this config with a checkpoint,
    or a finished one that ``config_tree`` gives more steps; return True for the latter (the run
    is trained longer). With ``checkpoint`` false, only that ``out`` holds an unfinished run of
    the same config."""
    out = Path(out)
    longer = (out / "summary.json").exists()
    if longer:
        summary = read_run_json(out / "summary.json")
        trained, asked = summary.get("steps"), steps_of(config_tree)
        if summary.get("status") != "completed":
            raise ConfigError(f"--resume: {str(out)!r} holds a run that {summary.get('status')} at step {trained}; "
                              "it cannot be trained longer")
        if asked <= trained:
            raise ConfigError(f"--resume: {str(out)!r} holds a finished run of {trained} steps (summary.json); "
                              f"nothing to resume; to train it longer give more steps, e.g. "
                              f"--override training.steps={2 * trained}")
    if checkpoint and not has_checkpoint(out):
        raise ConfigError(f"--resume: {str(out)!r} has no checkpoint ({CHECKPOINT}) and no run that started; "
                          "start the run without --resume")
    for name in ("config.json", "split.json", "metrics.csv")[:3 if checkpoint else 1]:
        if not (out / name).exists():
            raise ConfigError(f"--resume: {str(out)!r} has a checkpoint but no {name}; "
                              "start the run again with --force")
    diff = config_difference(read_run_json(out / "config.json"), config_tree)
    if diff:
        raise ConfigError(f"--resume: the config differs from {str(out / 'config.json')!r} at {diff}, which "
                          f"changes results; a resumed run may change only {', '.join(RESUMABLE_CHANGES)} and "
                          "output settings")
    return longer


def truncate_metrics(path: Path, step: int, columns=None, drop=None) -> list[dict]:
    """Cut metrics.csv (or measures.csv) back to its header and the rows at or before ``step``,
    without the row of step ``drop``; return those rows. ``columns`` is the header the file must
    have; None takes the file's own (an empty file, which no evaluation reached, stays empty).

    The rows are rewritten atomically; a line a kill left half-written is dropped with the rest.
    """
    with open(path, encoding="utf-8", newline="") as fh:
        lines = fh.read().split("\n")
    if columns is None:
        if lines == [""]:
            return []
        columns = lines[0].split(",")
    header = ",".join(columns)
    if not lines or lines[0] != header:
        raise ConfigError(f"--resume: {str(path)!r} does not start with the header {header!r}")
    kept, rows = [header], []
    for line in lines[1:-1]:  # the last piece follows the last newline: empty or a partial row
        values = line.split(",")
        try:
            row = {c: int(v) if c == "step" else float(v) for c, v in zip(columns, values, strict=True)}
        except ValueError:  # damaged from here on; the caller checks that no row it needs is lost
            break
        if row["step"] > step:
            break
        if row["step"] == drop:
            continue
        kept.append(line)
        rows.append(row)
    write_atomic(path, ("\n".join(kept) + "\n").encode())
    return rows
