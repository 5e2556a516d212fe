"""The phase diagram of Liu et al. 2022 ("Towards understanding grokking: an effective theory of
representation learning", Sec. 5): every run of a grid over two settings classified as
comprehension, grokking, memorization or confusion, and the grid drawn as a map of phases.

The rule is theirs (their plotting code): a split "gets there" at the first evaluation with
accuracy >= 0.9. Both splits get there within ``GAP`` = 1,000 steps of each other: comprehension;
both, further apart: grokking; only the training split: memorization; not the training split:
confusion. A cell of the grid holds several seeds; its phase is the one most of them fall in (a
tie goes to the phase listed first in ``PHASES``, the one that generalizes sooner), and its steps
are medians over the seeds, a seed that never got there counting as infinitely late.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from .artifacts import write_atomic, write_json
from .errors import ConfigError
from .figures import _flat
from .plotting import read_metrics
from .sweeps import median_steps

PHASES = ("comprehension", "grokking", "memorization", "confusion")
THRESHOLD = 0.9
GAP = 1000
# The two settings a diagram is drawn over when a sweep varies more than two, in this order.
DEFAULT_AXES = ("optimizer.lr", "optimizer.weight_decay")
# A grid for run_suite --phases without --grid: decay rate lr x weight decay around the presets'.
DEFAULT_GRID = ("optimizer.lr=1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,1e-1,3e-1",
                "optimizer.weight_decay=0,0.01,0.03,0.1,0.3,1,3,10")
PHASES_CSV, PHASES_JSON = "phases.csv", "phases.json"


def first_step(steps, values, threshold: float = THRESHOLD) -> int | None:
    """The first evaluated step with a value >= threshold, or None."""
    return next((int(s) for s, v in zip(steps, values) if v >= threshold), None)


def classify(metrics: dict[str, list[float]], threshold: float = THRESHOLD, gap: int = GAP) -> dict:
    """The phase of one run from its metrics.csv columns, with the steps it was read from."""
    train = first_step(metrics["step"], metrics["train_acc"], threshold)
    val = first_step(metrics["step"], metrics["val_acc"], threshold)
    if train is None:
        phase = "confusion"
    elif val is None:
        phase = "memorization"
    else:
        phase = "comprehension" if abs(val - train) <= gap else "grokking"
    return {"phase": phase, "train_step": train, "val_step": val}


def axes_of(runs: list[dict]) -> tuple[str, str]:
    """The two config keys a sweep's diagram is drawn over: the keys that vary other than the seed,
    when there are two; lr and weight decay when they are among more; else ConfigError."""
    flats = [_flat(r["config"]) for r in runs]
    varied = sorted(k for k in set().union(*flats) if k != "training.seed"
                    and len({json.dumps(f.get(k)) for f in flats}) > 1)
    if len(varied) == 2:
        return tuple(varied)
    if set(DEFAULT_AXES) <= set(varied):
        return DEFAULT_AXES
    raise ConfigError(f"a phase diagram needs a sweep over two settings (for example "
                      f"--grid {DEFAULT_GRID[0]} --grid {DEFAULT_GRID[1]}); this one varies "
                      f"{', '.join(varied) or 'nothing but the seed'}")


def diagram(runs: list[dict], axes: tuple[str, str] | None = None) -> dict:
    """{'x', 'y': the keys; 'xs', 'ys': their sorted values; 'runs': one row per run; 'cells':
    one per (x, y) with its phase, the seeds per phase, and the median steps}."""
    x_key, y_key = axes or axes_of(runs)
    rows = []
    for run in runs:
        flat = _flat(run["config"])
        rows.append({x_key: flat.get(x_key), y_key: flat.get(y_key), "seed": flat.get("training.seed"),
                     **classify(read_metrics(run["dir"] / "metrics.csv")),
                     "run": str(run["dir"])})
    cells = []
    xs, ys = sorted({r[x_key] for r in rows}), sorted({r[y_key] for r in rows})
    for y in ys:
        for x in xs:
            group = [r for r in rows if r[x_key] == x and r[y_key] == y]
            if not group:
                continue
            counts = {p: sum(r["phase"] == p for r in group) for p in PHASES}
            cells.append({x_key: x, y_key: y, "phase": max(PHASES, key=lambda p: (counts[p], -PHASES.index(p))),
                          "seeds": counts, "median_train_step": median_steps([r["train_step"] for r in group]),
                          "median_val_step": median_steps([r["val_step"] for r in group])})
    return {"x": x_key, "y": y_key, "xs": xs, "ys": ys, "threshold": THRESHOLD, "gap": GAP,
            "runs": rows, "cells": cells}


def write(sweep_dir: Path, runs: list[dict], axes=None) -> dict:
    """phases.csv (a row per run) and phases.json (the diagram) in the sweep directory."""
    d = diagram(runs, axes)
    buf = io.StringIO()
    columns = [d["x"], d["y"], "seed", "phase", "train_step", "val_step", "run"]
    w = csv.DictWriter(buf, columns, lineterminator="\n")
    w.writeheader()
    w.writerows(d["runs"])
    write_atomic(Path(sweep_dir) / PHASES_CSV, buf.getvalue().encode())
    write_json(Path(sweep_dir) / PHASES_JSON, d)
    return d


def _tick(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


COLORS = {"comprehension": "#2b8cbe", "grokking": "#31a354", "memorization": "#fdae6b", "confusion": "#d9d9d9"}


def draw(d: dict, out: Path, title: str = "") -> Path:
    """The diagram as a grid of coloured cells, a setting per axis, each cell marked with the
    seeds in its phase and the median step of validation 90%."""
    from .figures import _plt, _save

    plt = _plt()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    xs, ys = d["xs"], d["ys"]
    grid = [[math.nan] * len(xs) for _ in ys]
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(xs), 1.4 + 0.6 * len(ys)), constrained_layout=True)
    for c in d["cells"]:
        i, j = ys.index(c[d["y"]]), xs.index(c[d["x"]])
        grid[i][j] = PHASES.index(c["phase"])
        n = sum(c["seeds"].values())
        step = c["median_val_step"]
        label = f"{c['seeds'][c['phase']]}/{n}" + (f"\n{step:,.0f}" if step is not None else "")
        ax.text(j, i, label, ha="center", va="center", fontsize=6.5)
    ax.imshow(grid, cmap=ListedColormap([COLORS[p] for p in PHASES]), vmin=-0.5, vmax=len(PHASES) - 0.5,
              origin="lower", aspect="auto")
    ax.set_xticks(range(len(xs)), [_tick(v) for v in xs], fontsize=7)
    ax.set_yticks(range(len(ys)), [_tick(v) for v in ys], fontsize=7)
    ax.set(xlabel=d["x"], ylabel=d["y"],
           title=title or f"Phases (Liu et al. 2022): accuracy {d['threshold']:g}, grokking when validation "
                          f"follows by more than {d['gap']:,} steps")
    ax.title.set_fontsize(8)
    ax.legend(handles=[Patch(color=COLORS[p], label=p) for p in PHASES], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), title="cell: seeds in its phase,\nmedian step of val 90%",
              title_fontsize=6.5)
    return _save(fig, Path(out))
