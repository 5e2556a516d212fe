"""Liu et al. 2022's Fig. 5b phase diagram as a claim of the registry (``claims.CLAIMS['liu_toy_phases']``).

The toy model has its own training loop (``grokking.toy``), not a preset of the main models, so
this claim is measured by a ``claims.Runner`` instead of preset arms:

    train     every (eta_dec, weight_decay) cell of the grid for each draw seed, in worker processes;
              each finished cell is one JSON file, written atomically the moment it finishes, so an
              interrupted grid goes on where it stopped and a finished one trains nothing
    read      each seed's cells against the published cells (their repository's per-cell steps):
              the share of cells in the same phase by their notebook's rule, the phase counts, the
              confusion matrix and the cells that differ
    figure    ours beside theirs for the published draw, the cells that differ marked

Layout under ``out/<claim>``: ``published.csv`` (the cells compared against, copied so the
directory is the whole record), ``seed_<s>/cells/eta<i>_wd<j>.json`` and, once every cell of the
seed is there, ``seed_<s>/cells.csv``.

The published cells come from one draw, their seed 58, which ``grokking.toy`` reproduces bit for
bit (templates, split, initial weights, batch orders); that draw is always trained and is the
claim's number. Other seeds are other draws of the same toy (data, initialization and batch
order): their agreement with the published diagram says how much of it belongs to the draw.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import toy
from .artifacts import write_atomic, write_json
from .errors import ConfigError

# Their per-cell results (github.com/ejmichaud/grokking-squared, toy/results/fig5b), kept in the
# repository beside the benchmark that first compared them.
PUBLISHED = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "liu2022_fig5b_steps.csv"
COLUMNS = ["eta_dec", "weight_decay", "train_step", "test_step", "phase", "project_phase", "seconds"]


class ToyRunFailed(RuntimeError):
    """A cell's run raised; the cells finished before it are on disk."""


@dataclass(frozen=True)
class ToyGrid:
    """The grid a claim trains: Fig. 5b's by default; tests shrink it."""
    eta_decs: tuple = toy.ETA_DECS
    weight_decays: tuple = toy.WEIGHT_DECAYS
    steps: int = toy.STEPS
    published: Path = PUBLISHED

    def cells(self) -> list[tuple[int, int, float, float]]:
        """(eta index, weight-decay index, eta_dec, weight_decay), weight decay outermost as their
        notebook reads their files (and as benchmarks/liu_toy_grid.py writes ours)."""
        return [(i, j, eta, wd) for j, wd in enumerate(self.weight_decays) for i, eta in enumerate(self.eta_decs)]


def key(c: dict) -> tuple:
    # eta_dec is 10 ** linspace: a float printed and read back through CSV must still match.
    return round(c["eta_dec"], 12), float(c["weight_decay"])


def seed_dir(out: Path, claim_name: str, seed: int) -> Path:
    return Path(out) / claim_name / f"seed_{seed}"


def _cell_path(sdir: Path, i: int, j: int) -> Path:
    return sdir / "cells" / f"eta{i:02d}_wd{j:02d}.json"


def _read_cell(path: Path, grid: ToyGrid, seed: int, eta: float, wd: float) -> dict | None:
    """A finished cell, or None; a cell of another setting is refused rather than mixed in."""
    if not path.exists():
        return None
    c = json.loads(path.read_text())
    if (c["seed"], c["steps"], key(c)) != (seed, grid.steps, key({"eta_dec": eta, "weight_decay": wd})):
        raise ConfigError(f"{str(path)!r} holds a cell of another setting (seed {c['seed']}, {c['steps']} steps, "
                          f"eta_dec {c['eta_dec']:g}, weight decay {c['weight_decay']:g}); choose another --out")
    return c


def _train_cell(eta: float, wd: float, steps: int, seed: int) -> dict:
    return {**toy.cell(eta, wd, steps=steps, seed=seed), "seed": seed, "steps": steps}


def train(grid: ToyGrid, out: Path, claim_name: str, seeds, workers: int | None, log=print) -> None:
    """Train every missing cell of every seed, ``workers`` processes (each run is single-threaded
    arithmetic); write each cell as it finishes, and a seed's cells.csv once it is complete."""
    if not Path(grid.published).is_file():
        raise ConfigError(f"the published cells {str(grid.published)!r} are missing: they ship with the "
                          "source repository (pip install -e . from a checkout)")
    cdir = Path(out) / claim_name
    cdir.mkdir(parents=True, exist_ok=True)
    write_atomic(cdir / "published.csv", Path(grid.published).read_bytes())
    todo = []
    for seed in seeds:
        sdir = seed_dir(out, claim_name, seed)
        (sdir / "cells").mkdir(parents=True, exist_ok=True)
        todo += [(seed, i, j, eta, wd) for i, j, eta, wd in grid.cells()
                 if _read_cell(_cell_path(sdir, i, j), grid, seed, eta, wd) is None]
    total = len(grid.cells()) * len(seeds)
    log(f"{claim_name}: {total - len(todo)} of {total} toy runs already done, {len(todo)} to train "
        f"({grid.steps} steps each)")
    start = time.perf_counter()

    def keep(n, task, result):
        seed, i, j, eta, wd = task
        try:
            c = result()
        except Exception as err:
            raise ToyRunFailed(f"seed {seed}, eta_dec {eta:g}, weight decay {wd:g}: {type(err).__name__}: {err}") from err
        # Written the moment it finishes, atomically: a kill loses at most the cells still running.
        write_json(_cell_path(seed_dir(out, claim_name, seed), i, j), c)
        log(f"{claim_name}: {n}/{len(todo)} toy runs, {time.perf_counter() - start:.0f} s")

    if todo and (workers or 1) <= 1:
        for n, t in enumerate(todo, 1):
            keep(n, t, lambda t=t: _train_cell(t[3], t[4], grid.steps, t[0]))
    elif todo:
        # spawn, as the sweeps' workers: a clean interpreter, no threads or locks inherited from a
        # parent that may have trained a preset claim's runs on the engine's threads.
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_train_cell, t[3], t[4], grid.steps, t[0]): t for t in todo}
            for n, future in enumerate(as_completed(futures), 1):
                keep(n, futures[future], future.result)
    for seed in seeds:
        write_cells_csv(grid, seed_dir(out, claim_name, seed), seed)


def read_cells(grid: ToyGrid, sdir: Path, seed: int) -> list[dict]:
    cells = [_read_cell(_cell_path(sdir, i, j), grid, seed, eta, wd) for i, j, eta, wd in grid.cells()]
    missing = sum(c is None for c in cells)
    if missing:
        raise ConfigError(f"{str(sdir)!r} lacks {missing} of its {len(cells)} cells; the same command trains them")
    return cells


def write_cells_csv(grid: ToyGrid, sdir: Path, seed: int) -> Path:
    """The seed's cells in the columns of benchmarks/data/liu_toy_grid_ours.csv."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows({**c, "eta_dec": repr(c["eta_dec"]), "seconds": f"{c['seconds']:.2f}"}
                for c in read_cells(grid, sdir, seed))
    write_atomic(sdir / "cells.csv", buf.getvalue().encode())
    return sdir / "cells.csv"


def compare(ours: list[dict], theirs: list[dict], steps: int) -> dict:
    """Phase agreement by their rule (``toy.liu_phase``), the counts, the confusion matrix (rows
    ours, columns theirs), the cells that differ, and how the steps themselves agree."""
    by_key = {key(c): c for c in theirs}
    absent = [o for o in ours if key(o) not in by_key]
    if absent:
        raise ConfigError(f"the published cells lack eta_dec {absent[0]['eta_dec']:g}, weight decay "
                          f"{absent[0]['weight_decay']:g}")
    pairs = [(o, by_key[key(o)]) for o in ours]
    phase_o = [toy.liu_phase(o["train_step"], o["test_step"], steps) for o, _ in pairs]
    phase_t = [toy.liu_phase(t["train_step"], t["test_step"], steps) for _, t in pairs]
    matrix = {a: {b: sum(x == a and y == b for x, y in zip(phase_o, phase_t)) for b in toy.PHASES}
              for a in toy.PHASES}
    never = steps - 1
    stepwise = {}
    for split in ("train_step", "test_step"):
        both = [(o[split], t[split]) for o, t in pairs if o[split] < never and t[split] < never]
        d = np.array([a - b for a, b in both])
        both_never = sum(o[split] == never and t[split] == never for o, t in pairs)
        stepwise[split] = {"both_reached": int(d.size), "both_never": both_never,
                           "one_only": len(pairs) - int(d.size) - both_never,
                           "equal": int(np.sum(d == 0)), "within_1": int(np.sum(np.abs(d) <= 1)),
                           "within_10": int(np.sum(np.abs(d) <= 10)),
                           "within_10pct": int(np.sum(np.abs(d) <= 0.1 * np.array([b for _, b in both]))),
                           "median_abs": float(np.median(np.abs(d))) if d.size else None}
    return {"agree": sum(x == y for x, y in zip(phase_o, phase_t)), "cells": len(pairs), "matrix": matrix,
            "ours": Counter(phase_o), "theirs": Counter(phase_t), "steps": stepwise,
            "mismatches": [(o["eta_dec"], o["weight_decay"], o["train_step"], o["test_step"], t["train_step"],
                            t["test_step"], a, b) for (o, t), a, b in zip(pairs, phase_o, phase_t) if a != b]}


def draw(ours: list[dict], theirs: list[dict], cmp: dict, out: Path, steps: int, seed: int = toy.SEED) -> Path:
    """Ours beside theirs, their rule's phase per cell, the cells that differ marked x."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from .figures import _plt, _save
    from .phases import COLORS

    plt = _plt()
    etas, wds = sorted({c["eta_dec"] for c in theirs}), sorted({c["weight_decay"] for c in theirs})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
    differs = {(round(e, 12), w) for e, w, *_ in cmp["mismatches"]}
    for ax, cells, title in ((axes[0], ours, "grokking.toy (NumPy)"), (axes[1], theirs, "theirs (toy/results/fig5b)")):
        grid = np.full((len(wds), len(etas)), np.nan)
        for c in cells:
            i, j = wds.index(c["weight_decay"]), etas.index(min(etas, key=lambda e: abs(e - c["eta_dec"])))
            grid[i, j] = toy.PHASES.index(toy.liu_phase(c["train_step"], c["test_step"], steps))
            if cells is ours and key(c) in differs:
                ax.plot(j, i, marker="x", color="black", markersize=7)
        ax.imshow(grid, cmap=ListedColormap([COLORS[p] for p in toy.PHASES]), vmin=-0.5, vmax=3.5,
                  origin="lower", aspect="auto")
        ax.set_xticks(range(len(etas)), [f"{e:.1e}" for e in etas], rotation=60, fontsize=7)
        ax.set_yticks(range(len(wds)), [f"{w:g}" for w in wds], fontsize=7)
        ax.set(xlabel="decoder learning rate eta_dec", ylabel="decoder weight decay", title=title)
    fig.suptitle(f"Liu et al. 2022 Fig. 5b (toy addition, seed {seed}, their rule): {cmp['agree']}/{cmp['cells']} "
                 f"cells in the same phase (x: differs)", fontsize=10)
    axes[1].legend(handles=[Patch(color=COLORS[p], label=p) for p in toy.PHASES], fontsize=7,
                   loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, out)
