"""Sweeps: one run per (preset, seed), each in <out>/<preset>/seed_<k>/, and their summary.

All configs are resolved and every run directory checked before the first run trains, so a typo
fails at once with nothing written, not an hour into a sweep.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from .artifacts import check_out_dir, write_atomic, write_json
from .config import Config, resolve_config
from .experiment import run_experiment


@dataclass
class RunSpec:
    preset: str
    seed: int
    config: Config
    out: Path


def plan_runs(presets, seeds, out, overrides=(), curves=True, force=False) -> list[RunSpec]:
    specs = []
    for preset in presets:
        for seed in seeds:
            config = resolve_config(preset, None, [*overrides, f"training.seed={seed}"])
            config.output.curves = curves
            config.output.progress = False  # one bar per run would flood a sweep's terminal
            run_dir = Path(out) / preset / f"seed_{seed}"
            check_out_dir(run_dir, force)
            specs.append(RunSpec(preset, seed, config, run_dir))
    return specs


def median_steps(values) -> float | None:
    """Median over seeds with a run that never reached the threshold counted as infinitely late:
    None when half or more of the seeds never reached it (the median lies beyond the budget)."""
    med = statistics.median(math.inf if v is None else v for v in values)
    return None if math.isinf(med) else med


def aggregate(rows: list[dict]) -> dict[str, dict]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["preset"], []).append(row)
    return {
        preset: {
            "runs": len(g),
            "grokked": sum(bool(r["grokked"]) for r in g),
            "median_steps_to_train_99": median_steps(r["steps_to_train_99"] for r in g),
            "median_steps_to_val_99": median_steps(r["steps_to_val_99"] for r in g),
            "median_best_val_acc": statistics.median(r["best_val_acc"] for r in g),
            "median_wall_time_s": statistics.median(r["wall_time_s"] for r in g),
        }
        for preset, g in groups.items()
    }


def write_sweep_summary(out: Path, rows: list[dict]) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    write_atomic(out / "sweep_summary.csv", buf.getvalue().encode())
    aggregates = aggregate(rows)
    write_json(out / "sweep_summary.json", {"runs": rows, "by_preset": aggregates})
    return aggregates


def format_table(aggregates: dict[str, dict]) -> str:
    def num(v):
        return "-" if v is None else f"{v:g}"

    header = f"{'preset':<20} {'grokked':>8} {'median train 99%':>17} {'median val 99%':>15} {'median wall s':>14}"
    lines = [header, "-" * len(header)]
    for preset, a in aggregates.items():
        lines.append(f"{preset:<20} {a['grokked']:>4}/{a['runs']:<3} {num(a['median_steps_to_train_99']):>17} "
                     f"{num(a['median_steps_to_val_99']):>15} {a['median_wall_time_s']:>14.1f}")
    return "\n".join(lines)


def run_suite(presets, seeds, out, *, overrides=(), curves=True, force=False, log=print) -> list[dict]:
    """Run every preset for every seed; write sweep_summary.csv/json; return one row per run."""
    specs = plan_runs(presets, seeds, out, overrides, curves, force)
    rows = []
    for spec in specs:
        summary = run_experiment(spec.config, spec.out, force=force,
                                 name=f"{spec.preset} seed {spec.seed}", log=log)
        rows.append({"preset": spec.preset, "seed": spec.seed,
                     **{k: v for k, v in summary.items() if k != "name"}})
    aggregates = write_sweep_summary(out, rows)
    log(format_table(aggregates))
    return rows
