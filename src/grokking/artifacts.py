"""The run directory is the record of a run: written so that nothing is lost or mixed.

config.json comes first, metrics.csv grows while the run trains, checkpoint.npz is replaced on
schedule, summary.json comes last and only for a run that ended (completed or diverged). Whole-file
artifacts are written to a temporary file in the same directory and renamed over the target, so a
reader never sees half a file; a kill leaves at most a hidden ``.<name>.*.tmp``, removed on the next
start or resume.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import ConfigError

CHECKPOINT = "checkpoint.npz"
PREVIOUS_CHECKPOINT = "checkpoint.prev.npz"  # the one before, kept until the next is verified
MEASURES_CSV = "measures.csv"  # output.measures
REPORT = "report.html"  # make_report's default output, in the run directory
# Every file a run writes; a directory holding any of them holds a run.
RUN_FILES = ("config.json", "split.json", "metrics.csv", MEASURES_CSV, CHECKPOINT, PREVIOUS_CHECKPOINT,
             "summary.json", "curves.png")
SNAPSHOTS = "snapshots"  # output.snapshots: the parameters at chosen steps
# The trackers' directories (output.loggers) and the snapshots: replaced with the run, kept by a resume.
TRACKER_DIRS = ("tensorboard", "wandb", SNAPSHOTS)
# What make_figures and make_report write into a run directory by default: drawn from the run, so
# they go with it. Removed only where a run was (a user's own 'figures' elsewhere is not ours).
DRAWN_FILES, DRAWN_DIRS = (REPORT,), ("figures",)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def write_atomic(path: Path, data: bytes, before_replace=None) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over
    ``path``; ``before_replace(temporary path)`` runs just before the rename (to verify the file,
    or to keep the one it replaces)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts get the usual permissions
        if before_replace is not None:
            before_replace(Path(tmp))
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename != str(path):
            # name the artifact, not the temporary file (or nothing, as a failed write() does)
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def write_json(path: Path, obj) -> None:
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: Path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def remove_stale_temps(out: Path) -> None:
    """Remove the temporary files of writes a kill interrupted; none of them is ever complete."""
    for tmp in Path(out).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def holds_run(out: Path) -> bool:
    return any((Path(out) / name).exists() for name in RUN_FILES)


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse an --out that holds a run unless force; never write anything here."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a directory")
    if holds_run(out) and not force:
        raise ConfigError(f"--out {str(out)!r} already holds a run; choose another directory "
                          "or pass --force to replace it")


def remove_drawn(out: Path) -> None:
    """Remove what was drawn from a run that trains on (resumed or trained longer): it is stale."""
    for name in ("curves.png",) + DRAWN_FILES:
        (Path(out) / name).unlink(missing_ok=True)
    for name in DRAWN_DIRS:
        shutil.rmtree(Path(out) / name, ignore_errors=True)


def prepare_out_dir(out: Path, force: bool) -> Path:
    """Create --out, clearing the files of an earlier run when force, so two runs never mix."""
    out = Path(out)
    check_out_dir(out, force)
    out.mkdir(parents=True, exist_ok=True)
    drawn = holds_run(out)
    # summary.json goes first: a directory without it never looks finished, even mid-clearing;
    # the checkpoint next, so a half-cleared run is never resumed against missing metrics;
    # the run's other files last, so a half-cleared directory still holds a run and the next --force
    # clears the rest, drawn files included.
    for name in ("summary.json", CHECKPOINT, PREVIOUS_CHECKPOINT) + (DRAWN_FILES if drawn else ()):
        (out / name).unlink(missing_ok=True)
    for name in TRACKER_DIRS + (DRAWN_DIRS if drawn else ()):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    remove_stale_temps(out)
    return out
