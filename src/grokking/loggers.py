"""Trackers: each evaluation's metrics sent to TensorBoard and/or Weights & Biases (``output.loggers``).

Both are optional extras, imported only when chosen; a missing one is a ConfigError (one line,
exit 2) raised before the run writes anything. Each logger
- names the run by its preset, grid point and seed;
- logs the resolved config as hyperparameters when the run starts;
- logs every row of metrics.csv, and the summary at the end;
- resumes into the same run after ``--resume``: the same TensorBoard log directory, told to drop
  what the killed session logged after the checkpoint (a ``purge_step``); the same W&B run id,
  kept in the checkpoint.

W&B runs offline unless ``WANDB_MODE`` says otherwise, so it needs no account; ``wandb sync
<run dir>/wandb/offline-run-*`` uploads a run later. Files go into the run directory:
``tensorboard/`` and ``wandb/``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from .errors import ConfigError

LOGGERS = ("tensorboard", "wandb")
EXTRAS = {"tensorboard": ("tensorboardX", "pip install -e '.[tensorboard]'"),
          "wandb": ("wandb", "pip install -e '.[wandb]'")}


def parse_loggers(text: str) -> list[str]:
    """'tensorboard,wandb' -> ['tensorboard', 'wandb']; ConfigError names what is allowed."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(f"output.loggers: unknown logger {name!r}; choose from {', '.join(LOGGERS)} "
                              "(comma-separated), or leave it empty")
    return list(dict.fromkeys(names))


def check_installed(names) -> None:
    """Fail before the run starts when a chosen logger's package is missing."""
    import importlib.util

    for name in names:
        module, hint = EXTRAS[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"output.loggers={name} needs the {module} package: {hint}")


def _flat(tree: dict) -> dict:
    return {f"{section}.{key}": value for section, keys in tree.items() if isinstance(keys, dict)
            for key, value in keys.items()}


def _scalars(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool) or v is None}


class TensorBoard:
    def __init__(self, out: Path, name: str, config: dict, resume_step: int | None):
        from tensorboardX import SummaryWriter

        # On resume, TensorBoard drops the events a killed session wrote after the checkpoint.
        purge = None if resume_step is None else resume_step + 1
        # A resumed session's file sorts after the first one's even when both start in the same second.
        suffix = "" if resume_step is None else f".resumed_at_{resume_step:010d}"
        self.writer = SummaryWriter(logdir=str(out / "tensorboard"), purge_step=purge, filename_suffix=suffix)
        if resume_step is None:
            from tensorboardX.summary import hparams

            flat = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in _flat(config).items()}
            for summary in hparams(flat, {"hparam/best_val_acc": 0.0}):
                self.writer._get_file_writer().add_summary(summary)
            self.writer.add_text("run", name, 0)

    def log(self, row: dict) -> None:
        for key, value in row.items():
            if key != "step":
                self.writer.add_scalar(key, value, row["step"])

    def finish(self, summary: dict) -> None:
        for key, value in _scalars(summary).items():
            if value is not None:
                self.writer.add_scalar(f"summary/{key}", value, summary["steps"])
        self.writer.add_scalar("hparam/best_val_acc", summary["best_val_acc"], summary["steps"])

    def close(self) -> None:
        self.writer.close()


class WandB:
    def __init__(self, out: Path, name: str, config: dict, run_id: str, resumed: bool):
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "grokking"), name=name, id=run_id,
                              dir=str(out), mode=os.environ.get("WANDB_MODE", "offline"),
                              config=config, resume="allow", reinit="finish_previous")
        self.resumed = resumed

    def log(self, row: dict) -> None:
        self.run.log({k: v for k, v in row.items() if k != "step"}, step=int(row["step"]))

    def finish(self, summary: dict) -> None:
        for key, value in summary.items():
            self.run.summary[key] = value

    def close(self) -> None:
        self.run.finish()


class Trackers:
    """The loggers a run chose, driven by the training loop: ``log`` per evaluation, ``finish``
    with the summary, ``close`` always (also when the run fails)."""

    def __init__(self, loggers):
        self.loggers = loggers

    @classmethod
    def open(cls, names, out: Path, name: str, config: dict, resume_step: int | None,
             run_id: str | None) -> "Trackers":
        loggers = []
        try:
            for logger in names:
                if logger == "tensorboard":
                    loggers.append(TensorBoard(out, name, config, resume_step))
                else:
                    loggers.append(WandB(out, name, config, run_id, resume_step is not None))
        except BaseException:
            cls(loggers).close()
            raise
        return cls(loggers)

    def log(self, row: dict) -> None:
        for logger in self.loggers:
            logger.log(row)

    def finish(self, summary: dict) -> None:
        for logger in self.loggers:
            logger.finish(summary)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def new_run_id() -> str:
    """The id a tracker knows the run by; stored in the checkpoint, so a resume continues it."""
    return uuid.uuid4().hex[:16]
