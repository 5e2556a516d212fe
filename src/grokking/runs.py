"""A run directory opened for analysis: ``open_run(path)``, in a notebook or a script.

    from grokking import open_run
    run = open_run("runs/mod_add_grokking")
    run.metrics            # a pandas DataFrame when pandas is installed, else {column: np.ndarray}
    run.model, run.params()                       # the model and its final parameters
    logits, cache = run.run_with_cache(names=["blocks.0.mlp.hook_post"])   # over the whole table
    analysis.key_frequencies(analysis.frequency_norms(run.embedding()))
    run.snapshot_steps, run.params(100), run.embedding(100)   # at a step kept by output.snapshots

One reader of what a run writes (config.json, split.json, metrics.csv, measures.csv, summary.json,
the checkpoints), with their checks: checksums verified, a run still training refused unless asked.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from .artifacts import CHECKPOINT, MEASURES_CSV, SNAPSHOTS
from .errors import ConfigError


class RunNotReadable(ConfigError):
    """The directory holds no run that can be read: the message says what is missing or wrong."""


def _table(columns: dict[str, list[float]]):
    """A DataFrame where pandas is installed (the ``analysis`` extra), else a dict of arrays."""
    try:
        import pandas
    except ImportError:
        return {k: np.asarray(v) for k, v in columns.items()}
    return pandas.DataFrame(columns)


class Run:
    """A trained run: its config, split, tables, model and parameters. Open it with ``open_run``."""

    def __init__(self, path: Path):
        from .config import config_from_dict
        from .experiment import build_model
        from .tasks import build as build_task

        self.path = path
        self.tree = self._json("config.json")
        try:
            self.config = config_from_dict(self.tree)
        except ConfigError as err:
            raise RunNotReadable(f"{str(path / 'config.json')!r} is not a config this version reads: {err}") from None
        t = self.config.task
        self.table = build_task(t)
        self.model = build_model(self.config, self.table.n_tokens, self.table.n_classes)
        split = self._json("split.json")
        self.train_idx, self.val_idx = np.asarray(split["train"]), np.asarray(split["val"])
        self.summary = self._json("summary.json") if (path / "summary.json").exists() else None

    def _json(self, name: str):
        try:
            return json.loads((self.path / name).read_text())
        except FileNotFoundError:
            raise RunNotReadable(f"{str(self.path)!r} has no {name}: it holds no run") from None
        except (ValueError, UnicodeDecodeError) as err:
            raise RunNotReadable(f"{str(self.path / name)!r} is damaged ({err})") from None

    def _csv(self, name: str) -> dict[str, list[float]]:
        from .plotting import read_metrics

        path = self.path / name
        if not path.exists():
            raise RunNotReadable(f"{str(path)!r} does not exist (output.measures was empty for this run?)")
        return read_metrics(path)

    @cached_property
    def metrics(self):
        """metrics.csv: one row per evaluation."""
        return _table(self._csv("metrics.csv"))

    @cached_property
    def measures(self):
        """measures.csv (output.measures): one row per evaluation."""
        return _table(self._csv(MEASURES_CSV))

    @property
    def snapshot_steps(self) -> list[int]:
        """The steps whose parameters the run kept (output.snapshots), in order."""
        return sorted(int(p.stem.split("_")[1]) for p in (self.path / SNAPSHOTS).glob("step_*.npz"))

    def params(self, step: int | None = None) -> dict[str, np.ndarray]:
        """The parameters after update ``step`` (a snapshot's), or of the last checkpoint (the
        final ones, for a finished run); checksum verified."""
        from .checkpoint import DamagedCheckpoint, load_checkpoint, snapshot_path

        path = self.path / CHECKPOINT if step is None else snapshot_path(self.path, step)
        if step is not None and not path.exists():
            kept = ", ".join(map(str, self.snapshot_steps)) or "none (output.snapshots was empty)"
            raise RunNotReadable(f"{str(self.path)!r} kept no parameters of step {step}; its snapshots: {kept}")
        try:
            return load_checkpoint(path)[1]
        except DamagedCheckpoint as err:
            raise RunNotReadable(str(err)) from None

    def _params(self, at):
        """``at``: None (the end), a step (a snapshot) or a parameter dict."""
        return at if isinstance(at, dict) else self.params(at)

    def logits(self, at=None) -> np.ndarray:
        """The answer logits over the whole table (rows in the table's order), at the end, at a
        snapshot's step, or for a parameter dict."""
        params = self._params(at)
        return self.model.logits(params, self.table.x, self.table.y)

    def run_with_cache(self, at=None, hooks=None, names=None):
        """``Model.run_with_cache`` over the whole table: (logits, {name: activation})."""
        params = self._params(at)
        return self.model.run_with_cache(params, self.table.x, self.table.y, hooks=hooks, names=names)

    def embedding(self, at=None) -> np.ndarray:
        """The operand embedding (one row per operand), in float64: what the Fourier measures read."""
        params = self._params(at)
        return np.asarray(self.model.operand_embedding(params), dtype=np.float64)


def open_run(path, unfinished: bool = False) -> Run:
    """The run in ``path``. A run without summary.json (still training, or stopped) is refused
    unless ``unfinished``; its parameters are then those of its last checkpoint."""
    path = Path(path)
    if not path.is_dir():
        raise RunNotReadable(f"{str(path)!r} is not a directory")
    run = Run(path)
    if run.summary is None and not unfinished:
        raise RunNotReadable(f"{str(path)!r} holds a run that has not finished (no summary.json); "
                             "open_run(path, unfinished=True) reads it as far as its last checkpoint")
    return run
