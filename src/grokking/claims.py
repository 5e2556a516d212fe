"""Published claims, checked like tests of the science (``run_claims``).

A claim is one entry of ``CLAIMS``: its source, the exact published setting and number, how the
number is measured, the setting run here (scaled to a CPU where the original does not fit), and the
arms that test it: a baseline and a method (and, where a publication changed two things at once,
the like-for-like arm beside the published one). Every arm runs on the same seeds with every
other setting equal. For each claim the table gives each arm's median over seeds with a 95%
bootstrap interval, the paired effect per seed with its interval (the ratio method / baseline for
steps, the difference method - baseline for accuracies and shares), and a verdict from the
claim's own rule.

Adding a claim is one entry here. A measure that never reaches its threshold within the budget is
censored: it counts as the budget (shown as "> budget"), so a ratio against a censored baseline is
an upper bound.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .artifacts import write_atomic, write_json
from .errors import ConfigError
from .plotting import read_metrics


def first_step(metrics: dict, column: str, threshold: float) -> float | None:
    """The first evaluated step with ``column`` >= threshold, or None."""
    return next((s for s, v in zip(metrics["step"], metrics[column]) if v >= threshold), None)


def _steps_to(column, threshold):
    def measure(run_dir: Path) -> float | None:
        return first_step(read_metrics(run_dir / "metrics.csv"), column, threshold)
    return measure


def _last(column, csv_name="metrics.csv"):
    def measure(run_dir: Path) -> float:
        return read_metrics(run_dir / csv_name)[column][-1]
    return measure


def _max(column, csv_name):
    def measure(run_dir: Path) -> float:
        return max(read_metrics(run_dir / csv_name)[column])
    return measure


def _delay(threshold):
    """Steps between train and validation accuracy reaching ``threshold`` (None if either never does)."""
    def measure(run_dir: Path) -> float | None:
        m = read_metrics(run_dir / "metrics.csv")
        train, val = first_step(m, "train_acc", threshold), first_step(m, "val_acc", threshold)
        return None if train is None or val is None else val - train
    return measure


# name -> (what it is, function of a run directory, whether the value is censored at the budget)
MEASURES = {
    "steps_to_val_95": ("first step with validation accuracy >= 95%", _steps_to("val_acc", 0.95), True),
    "steps_to_val_99": ("first step with validation accuracy >= 99%", _steps_to("val_acc", 0.99), True),
    "final_val_acc": ("validation accuracy at the end of the budget", _last("val_acc"), False),
    "max_sc_zero_loss": ("largest share of training rows with an exactly zero float32 loss",
                         _max("sc_zero_loss", "measures.csv"), False),
    "delay_95": ("steps from train to validation accuracy >= 95%", _delay(0.95), True),
}


@dataclass(frozen=True)
class Arm:
    name: str
    preset: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    name: str
    source: str
    published_setting: str
    published: str
    measure: str
    here: str  # the setting run here, and how it departs from the published one
    arms: tuple[Arm, ...]
    comparisons: tuple[tuple[str, str], ...]  # (method arm, baseline arm), the first is the verdict's
    verdict: Callable[[dict], tuple[str, str]]  # results by arm -> (verdict, why)
    seeds: tuple[int, ...] = (0, 1, 2)
    minutes: float = 1.0  # about how long the claim takes on 2 cores
    extra: dict = field(default_factory=dict)


def bootstrap_interval(values, statistic=statistics.median, level=0.95, resamples=10_000, seed=0):
    """Percentile bootstrap interval of ``statistic`` over ``values`` (fixed seed: reproducible)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    stats = [statistic(values[rng.integers(0, len(values), len(values))]) for _ in range(resamples)]
    return float(np.quantile(stats, (1 - level) / 2)), float(np.quantile(stats, 1 - (1 - level) / 2))


def summarize(values: list[float]) -> dict:
    return {"median": float(statistics.median(values)), "interval": bootstrap_interval(values), "values": values}


def _budget(claim: Claim, arm: Arm) -> int:
    from .config import resolve_config

    return resolve_config(arm.preset, overrides=arm.overrides).training.steps


def arm_results(claim: Claim, out: Path) -> dict:
    """Each arm's measured value per seed (censored values at the budget, flagged)."""
    _, measure, censored = MEASURES[claim.measure]
    results = {}
    for arm in claim.arms:
        budget = _budget(claim, arm)
        values, flags = [], []
        for seed in claim.seeds:
            run = out / claim.name / arm.name / arm.preset / f"seed_{seed}"
            value = measure(run)
            flags.append(censored and value is None)
            values.append(float(budget) if value is None else float(value))
        results[arm.name] = {**summarize(values), "censored": flags, "budget": budget}
    for method, baseline in claim.comparisons:
        pairs = list(zip(results[method]["values"], results[baseline]["values"]))
        # Steps compare as a ratio (how many times sooner); accuracies and shares as a difference.
        effects = [m / b for m, b in pairs] if censored else [m - b for m, b in pairs]
        results[_effect(claim, method, baseline)] = summarize(effects)
    return results


def _effect(claim: Claim, method: str, baseline: str) -> str:
    return f"{method}/{baseline}" if MEASURES[claim.measure][2] else f"{method}-{baseline}"


def run_claim(claim: Claim, out: Path, workers: int | None, log=print) -> dict:
    """Train every arm of ``claim`` on its seeds (finished runs are kept: a rerun only measures)."""
    from .sweeps import run_suite

    for arm in claim.arms:
        run_suite([arm.preset], list(claim.seeds), out / claim.name / arm.name,
                  overrides=[*arm.overrides, "output.progress=false"], curves=False, workers=workers,
                  log=lambda *_: None)
    results = arm_results(claim, out)
    verdict, why = claim.verdict(results)
    try:
        claim_figure(claim, out)
    except ImportError:  # matplotlib is missing: the table says it all
        pass
    return {"claim": claim.name, "source": claim.source, "published": claim.published,
            "measure": claim.measure, "here": claim.here, "results": results, "verdict": verdict, "why": why}


def claim_figure(claim: Claim, out: Path) -> Path:
    """Validation (solid) and training (dotted) accuracy of every arm on the same axes: the median
    over seeds with the interquartile band; ``out/<claim>.png``."""
    from .figures import _median_band, _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
    for i, arm in enumerate(claim.arms):
        data = [read_metrics(out / claim.name / arm.name / arm.preset / f"seed_{s}" / "metrics.csv")
                for s in claim.seeds]
        colour = f"C{i}"
        for column, style in (("val_acc", "-"), ("train_acc", ":")):
            steps, median, low, high = _median_band(data, column)
            ax.plot(steps, median, style, color=colour, label=f"{arm.name} ({column[:-4]})")
            ax.fill_between(steps, low, high, color=colour, alpha=0.15, linewidth=0)
    ax.set(xscale="log", xlabel="optimization steps", ylabel="accuracy", ylim=(-0.02, 1.02))
    ax.set_title(f"{claim.name}: {claim.source}\nmedian of seeds {', '.join(map(str, claim.seeds))}, "
                 "interquartile band", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out / f"{claim.name}.png")


def _fmt(summary: dict, censored=None) -> str:
    lo, hi = summary["interval"]
    mark = ">" if censored and all(censored) else ""
    return f"{mark}{summary['median']:.4g} [{lo:.4g}, {hi:.4g}]"


def table(rows: list[dict]) -> str:
    """The markdown table: claim, paper, here (each arm, and the paired ratios), verdict."""
    lines = ["| claim | paper | here: median [95% bootstrap interval] over seeds | verdict |", "|---|---|---|---|"]
    for row in rows:
        claim = CLAIMS[row["claim"]]
        parts = []
        for arm in claim.arms:
            r = row["results"][arm.name]
            parts.append(f"{arm.name}: {_fmt(r, r['censored'])}")
        for method, baseline in claim.comparisons:
            key = _effect(claim, method, baseline)
            parts.append(f"{'ratio' if '/' in key else 'difference'} {key}: {_fmt(row['results'][key])}")
        lines.append(f"| {claim.name}: {MEASURES[claim.measure][0]} | {claim.published} ({claim.source}) | "
                     f"{'; '.join(parts)} | **{row['verdict']}**: {row['why']} |")
    return "\n".join(lines)


def run_claims(names, out, workers=None, seeds=None, log=print) -> list[dict]:
    """Run the named claims (``seeds`` replaces each claim's own); write claims.json, claims.csv
    and claims.md to ``out``; return one row per claim."""
    out = Path(out)
    unknown = [n for n in names if n not in CLAIMS]
    if unknown:
        raise ConfigError(f"unknown claim {unknown[0]!r}; choose from {', '.join(CLAIMS)}")
    if seeds is not None and len(seeds) < 3:
        raise ConfigError(f"--seeds: a claim needs at least 3 seeds for its interval, got {len(seeds)}")
    rows = []
    for name in names:
        claim = CLAIMS[name] if seeds is None else dataclasses.replace(CLAIMS[name], seeds=tuple(seeds))
        log(f"{name}: running {len(claim.arms)} arms x {len(claim.seeds)} seeds "
            f"(about {claim.minutes:g} min on 2 cores)")
        rows.append(run_claim(claim, out, workers, log))
        log(f"{name}: {rows[-1]['verdict']} ({rows[-1]['why']})")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "claims.json", rows)
    write_atomic(out / "claims.md", (table(rows) + "\n").encode())
    with open(out / "claims.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["claim", "arm", "median", "low", "high", "values", "verdict"])
        for row in rows:
            for arm, r in row["results"].items():
                w.writerow([row["claim"], arm, r["median"], *r["interval"], json.dumps(r["values"]), row["verdict"]])
    log(table(rows))
    return rows


# -- the verdict rules -------------------------------------------------------------------------

def _reaches_and_baseline_does_not(method, baseline):
    def rule(results):
        m, b = results[method], results[baseline]
        if not any(m["censored"]) and all(b["censored"]):
            return "reproduced", f"every seed of {method} gets there within {m['budget']} steps, no seed of {baseline}"
        if any(m["censored"]):
            return "not reproduced", f"{sum(m['censored'])} of {len(m['censored'])} seeds of {method} never get there"
        return "not reproduced", f"{baseline} gets there too ({len(b['censored']) - sum(b['censored'])} seeds)"
    return rule


def _faster(method, baseline):
    def rule(results):
        lo, hi = results[f"{method}/{baseline}"]["interval"]
        if hi < 1:
            return "reproduced", f"{method} takes fewer steps: ratio interval below 1"
        if lo > 1:
            return "contradicted", f"{method} takes more steps: ratio interval above 1"
        return "inconclusive", "the ratio interval contains 1"
    return rule


def _larger(method, baseline, threshold):
    def rule(results):
        m, b = results[method]["median"], results[baseline]["median"]
        if m >= threshold > b:
            return "reproduced", f"median {m:.3g} with {method}, {b:.3g} with {baseline}"
        return "not reproduced", f"median {m:.3g} with {method}, {b:.3g} with {baseline} (threshold {threshold})"
    return rule


def _vanishes(method, baseline, fraction=0.1):
    """The method's median is at most ``fraction`` of the baseline's: 'disappears'; smaller with a
    paired ratio interval below 1: only reduced."""
    def rule(results):
        m, b = results[method]["median"], results[baseline]["median"]
        lo, hi = results[f"{method}/{baseline}"]["interval"]
        if m <= fraction * b:
            return "reproduced", f"median {m:.4g} steps against {b:.4g}"
        if hi < 1:
            return "partly reproduced", f"reduced, not gone: median {m:.4g} steps against {b:.4g}"
        return "not reproduced", f"median {m:.4g} steps against {b:.4g}"
    return rule


# -- the claims --------------------------------------------------------------------------------

_PRIETO_MLP = ("task.operation=x+y", "task.p=113", "task.train_fraction=0.4", "model.input=onehot",
               "model.n_layers=2", "model.d_hidden=200", "training.batch_size=0", "training.eval_interval=10",
               "optimizer.weight_decay=0", "optimizer.lr=0.01")

CLAIMS = {c.name: c for c in [
    Claim(
        name="power_weight_decay",
        source="Power et al. 2021, Fig. 2 left",
        published_setting="transformer, x/y mod 97 and others; weight decay is the intervention that helps most",
        published="with weight decay the network generalizes; without it, rarely within the budget",
        measure="steps_to_val_99",
        here="mod_add_grokking (MLP, x+y mod 97, 30%) against mod_add_baseline (the same, weight decay 0), 3,000 steps",
        arms=(Arm("weight_decay_1", "mod_add_grokking"), Arm("weight_decay_0", "mod_add_baseline")),
        comparisons=(("weight_decay_1", "weight_decay_0"),),
        verdict=_reaches_and_baseline_does_not("weight_decay_1", "weight_decay_0"),
        minutes=2),
    Claim(
        name="prieto_perp_adamw",
        source="Prieto et al. 2025",
        published_setting="x+y mod 113, 40% of the pairs, MLP 200-200 on one-hot pairs, full batch, no weight decay",
        published="⊥AdamW generalizes within about 300 epochs; AdamW without weight decay does not",
        measure="steps_to_val_95",
        here="the published setting (lr 0.01, which the papers file does not give), 300 full-batch steps",
        arms=(Arm("perp_adamw", "mod_add_grokking", (*_PRIETO_MLP, "optimizer.perp_grad=true", "training.steps=300")),
              Arm("adamw", "mod_add_grokking", (*_PRIETO_MLP, "training.steps=300"))),
        comparisons=(("perp_adamw", "adamw"),),
        verdict=_reaches_and_baseline_does_not("perp_adamw", "adamw"),
        minutes=4),
    Claim(
        name="prieto_stablemax",
        source="Prieto et al. 2025",
        published_setting="modular arithmetic without weight decay, StableMax cross-entropy in float64",
        published="StableMax generalizes without weight decay where softmax does not",
        measure="final_val_acc",
        here="the MLP setting of prieto_perp_adamw, 1,000 full-batch steps, softmax against StableMax, "
             "both with the loss in float64",
        arms=(Arm("stablemax", "mod_add_grokking", (*_PRIETO_MLP, "model.loss=stablemax", "model.loss_dtype=float64",
                                                    "training.steps=1000")),
              Arm("softmax", "mod_add_grokking", (*_PRIETO_MLP, "model.loss_dtype=float64", "training.steps=1000"))),
        comparisons=(("stablemax", "softmax"),),
        verdict=_larger("stablemax", "softmax", 0.9),
        minutes=9),
    Claim(
        name="prieto_softmax_collapse",
        source="Prieto et al. 2025",
        published_setting="modular arithmetic without weight decay, float32",
        published="float32 runs without regularization reach Softmax Collapse: for most training rows the "
                  "sum of exponentials equals the answer's term, and loss and gradient vanish",
        measure="max_sc_zero_loss",
        here="the MLP setting of prieto_perp_adamw, 4,000 full-batch steps, the loss in float32, measured by "
             "output.measures=softmax_collapse at every 100 steps; without weight decay against weight decay 1",
        arms=(Arm("no_weight_decay", "mod_add_grokking",
                  (*_PRIETO_MLP, "training.steps=4000", "training.eval_interval=100",
                   "output.measures=softmax_collapse,logit_scale")),
              Arm("weight_decay_1", "mod_add_grokking",
                  (*_PRIETO_MLP, "optimizer.weight_decay=1", "training.steps=4000", "training.eval_interval=100",
                   "output.measures=softmax_collapse,logit_scale"))),
        comparisons=(("no_weight_decay", "weight_decay_1"),),
        verdict=_larger("no_weight_decay", "weight_decay_1", 0.5),
        minutes=12),
    Claim(
        name="grokfast_mlp",
        source="Lee et al. 2024 (Grokfast), CPU-scaled",
        published_setting="x*y mod 97, 50% of the data, transformer, Adam: 39,890 steps to 95% validation "
                          "(baseline, weight decay 0) against 910 (EMA, alpha 0.98, lambda 2, with weight decay)",
        published="the EMA filter reaches 95% validation many times sooner",
        measure="steps_to_val_95",
        here="mod_add_grokking's MLP (x+y mod 97, 30%, full batch, lr 0.01), 3,000 steps: EMA against the "
             "same run without it (like for like, weight decay 1 both), against a weight-decay-0 baseline "
             "(the published comparison), and EMA with the rate divided by 1 + lambda",
        arms=(Arm("ema", "mod_add_grokking", ("optimizer.grokfast=ema",)),
              Arm("baseline", "mod_add_grokking"),
              Arm("baseline_wd0", "mod_add_baseline"),
              Arm("ema_scaled_lr", "mod_add_grokking", ("optimizer.grokfast=ema", "optimizer.grokfast_scale_lr=true"))),
        comparisons=(("ema", "baseline"), ("ema", "baseline_wd0"), ("ema_scaled_lr", "baseline")),
        verdict=_faster("ema", "baseline"),
        minutes=5),
    Claim(
        name="omnigrok_constant_norm",
        source="Liu et al. 2023 (Omnigrok)",
        published_setting="modular addition, MLP; the weight norm held fixed at a smaller value than "
                          "a standard initialization's",
        published="with the weight norm held at a smaller constant, the delay between memorization and "
                  "generalization disappears",
        measure="delay_95",
        here="mod_add_grokking with init_scale 0.5 (weight norm about 56 at initialization, near the "
             "grokked solution's 60), 3,000 steps: held at that norm after every update against the "
             "same run unconstrained (weight decay 1 in both)",
        arms=(Arm("constant_norm", "mod_add_grokking", ("model.init_scale=0.5", "optimizer.constant_norm=true")),
              Arm("free_norm", "mod_add_grokking", ("model.init_scale=0.5",))),
        comparisons=(("constant_norm", "free_norm"),),
        verdict=_vanishes("constant_norm", "free_norm"),
        minutes=3),
]}
