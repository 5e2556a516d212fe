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

A claim whose model is not a preset of the main models (Liu et al.'s toy, with its own training
loop) has a ``Runner`` instead of arms: it trains, reads, draws and describes itself, and the rest
(seeds, the verdict rule, the table, claims.json/csv/md) is the registry's as for any claim.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .artifacts import write_atomic, write_json
from .errors import ConfigError
from .measures import KEY_SIMILARITY
from .plotting import read_metrics


def first_step(metrics: dict, column: str, threshold: float) -> float | None:
    """The first evaluated step with ``column`` >= threshold, or None."""
    return next((s for s, v in zip(metrics["step"], metrics[column]) if v >= threshold), None)


class ClaimFailed(Exception):
    """A run of a claim failed, so the claim cannot be measured: one line for the command line."""


@dataclass(frozen=True)
class ClaimMeasure:
    """How a claim's number is read off one run: ``read(run_dir, budget)`` gives (value, censored),
    or (value, censored, details) where the verdict needs more of the run than one number (details:
    a dict per seed, kept in the arm's results). A censored value is a bound, not a measurement (the
    threshold was not reached within the budget). Steps and ratios of steps compare between arms as
    a ratio, accuracies and shares as a difference."""
    description: str
    read: Callable[[Path, int], tuple[float, bool]]
    effect: str  # "ratio" or "difference"


def _metrics(run_dir: Path, csv_name="metrics.csv") -> dict:
    return read_metrics(run_dir / csv_name)


def _steps_to(column, threshold):
    def read(run_dir, budget):
        step = first_step(_metrics(run_dir), column, threshold)
        return (float(budget), True) if step is None else (float(step), False)
    return read


def _last(column, csv_name="metrics.csv"):
    return lambda run_dir, budget: (float(_metrics(run_dir, csv_name)[column][-1]), False)


def _max(column, csv_name="metrics.csv"):
    return lambda run_dir, budget: (float(max(_metrics(run_dir, csv_name)[column])), False)


def _delay(threshold, combine):
    """``combine(val step, train step)`` for train and validation accuracy reaching ``threshold``;
    where validation never does, the budget stands for its step (a lower bound, censored)."""
    def read(run_dir, budget):
        m = _metrics(run_dir)
        train, val = first_step(m, "train_acc", threshold), first_step(m, "val_acc", threshold)
        train = budget if train is None else train
        return float(combine(budget if val is None else val, train)), val is None
    return read


def _nanda_phases(run_dir, budget):
    """Nanda et al.'s three phases read off a run's curves (measures ``circuit``): memorization ends
    where the excluded loss is lowest (it falls while the network memorizes and rises as the circuit
    forms; looked for before validation accuracy first reaches 0.5); cleanup begins where the test
    loss, after its peak, first falls to half of it (its sharp fall); it ends where validation
    accuracy first reaches 0.99. The value is the step cleanup begins (censored at the budget)."""
    m, c = _metrics(run_dir), _metrics(run_dir, "measures.csv")
    val_loss, val_acc = dict(zip(m["step"], m["val_loss"])), dict(zip(m["step"], m["val_acc"]))
    steps, excluded, restricted = c["step"], c["excluded_loss"], c["restricted_loss"]
    half = first_step(m, "val_acc", 0.5) or budget
    i_m = min((i for i, s in enumerate(steps) if s <= half), key=lambda i: excluded[i])
    s_m = steps[i_m]
    i_peak = max(range(i_m, len(steps)), key=lambda i: val_loss[steps[i]])
    peak = val_loss[steps[i_peak]]
    i_c = next((i for i in range(i_peak, len(steps)) if val_loss[steps[i]] <= peak / 2), None)
    s_c = None if i_c is None else steps[i_c]
    details = {"memorization_end": s_m, "cleanup_start": s_c, "cleanup_end": first_step(m, "val_acc", 0.99)}
    if i_c is not None:
        details.update(restricted_fell=restricted[i_c] < restricted[i_m], excluded_rose=excluded[i_c] > excluded[i_m],
                       test_stayed_low=max(val_acc[s] for s in steps[i_m:i_c]) < 0.5,
                       restricted=[restricted[i_m], restricted[i_c]], excluded=[excluded[i_m], excluded[i_c]])
    return (float(budget), True, details) if s_c is None else (float(s_c), False, details)


def _neurons_and_keys(run_dir):
    """The run's final key frequencies (of its operand embedding, analysis.key_frequencies) and the
    MLP neurons' activations at the answer over the whole table, centered."""
    from .analysis import frequency_norms, key_frequencies
    from .runs import open_run

    run = open_run(run_dir)
    params = run.params()
    keys = key_frequencies(frequency_norms(run.embedding(params)))
    name = [n for n in run.model.activation_names if n.endswith("mlp.hook_post")][-1]  # the last hidden layer
    acts = run.run_with_cache(params, names=[name])[1][name][:, -1]
    return run, params, keys, name, acts - acts.mean(axis=0)


def _nanda_frequencies(run_dir, budget):
    """How many key frequencies the final embedding has, and what share of the neurons' variance
    (at the answer, over the whole table) lies at them (analysis.frequency_shares_2d)."""
    from .analysis import frequency_shares_2d

    _, _, keys, _, acts = _neurons_and_keys(run_dir)
    shares, variance = frequency_shares_2d(acts), (acts ** 2).sum(axis=0)
    dominant = shares.argmax(axis=1) + 1
    live = variance > 1e-12 * variance.max()
    return float(len(keys)), False, {
        "keys": [int(k) for k in keys],
        "neuron_variance_at_keys": float((shares[:, keys - 1].sum(axis=1) * variance).sum() / variance.sum()),
        "neurons_on_a_key": float(np.isin(dominant[live], keys).mean())}


def _nanda_ablation(run_dir, budget):
    """The loss over the whole table with the neurons keeping only the key frequencies (and their
    mean), against the loss as trained and with the key frequencies removed (activations.py)."""
    from . import activations as act

    run, params, keys, name, _ = _neurons_and_keys(run_dir)
    t = run.table

    def loss(hooks=None):
        return act.loss_with(run.model, params, t.x, t.y, t.labels, hooks)[0]

    kept = loss({name: act.neuron_frequencies(keys)})
    return kept, False, {"keys": [int(k) for k in keys], "loss": loss(), "kept": kept,
                         "removed": loss({name: act.neuron_frequencies(keys, keep=False)}),
                         "chance": float(np.log(t.n_classes))}


def _hidden_progress(run_dir, budget):
    """Merrill et al.'s plateau in a sparse parity run (measures ``parity_bits`` and ``movement``):
    it begins where the training split is fitted (train accuracy 0.99) and ends at the last
    evaluation before validation accuracy first reaches 0.6. Details: how the relevant bits'
    weight ratio (relevant_ratio, also at the plateau's middle step) and the distance of the relevant
    bits' weights from their initialization (relevant_moved) changed over it, and the share of its
    evaluation intervals in which that distance grew. The value is the step validation first
    reaches 0.99 (censored at the budget). And how many neurons carry 90% of the network
    (active_neurons) at the fit, at the plateau's end, when solved and at the end."""
    m, c = _metrics(run_dir), _metrics(run_dir, "measures.csv")
    at = {s: i for i, s in enumerate(c["step"])}
    fit, solved = first_step(m, "train_acc", 0.99), first_step(m, "val_acc", 0.99)
    rises = first_step(m, "val_acc", 0.6)
    details = {"fit": fit, "solved": solved}
    if fit is not None and rises is not None and rises > fit:
        plateau = [s for s in c["step"] if fit <= s < rises]
        distance, ratio = c["relevant_moved"], c["relevant_ratio"]
        grew = [distance[at[b]] > distance[at[a]] for a, b in zip(plateau, plateau[1:])]
        middle = min(plateau, key=lambda s: abs(s - (plateau[0] + plateau[-1]) / 2))
        details.update(plateau=[plateau[0], plateau[-1]], ratio=[ratio[at[plateau[0]]], ratio[at[plateau[-1]]]],
                       ratio_middle=ratio[at[middle]], distance=[distance[at[plateau[0]]], distance[at[plateau[-1]]]],
                       distance_grew=sum(grew) / len(grew) if grew else 0.0,
                       val_acc_max=max(v for s, v in zip(m["step"], m["val_acc"]) if fit <= s < rises))
        if "active_neurons" in c:  # Merrill et al.'s sparse circuit: at the fit, the plateau's end, solved, the end
            active = c["active_neurons"]
            details["active"] = [int(active[at[s]]) for s in (fit, plateau[-1], solved or c["step"][-1], c["step"][-1])]
    return (float(budget), True, details) if solved is None else (float(solved), False, details)


def _norm_story(run_dir, budget):
    """Omnigrok's story in one run: the step validation accuracy first reaches 0.9 (censored at the
    budget), with the step training reaches 0.99 and the weight norm (metrics.csv) there, at the
    validation step (or the end) and at its lowest."""
    m = _metrics(run_dir)
    norm = dict(zip(m["step"], m["weight_norm"]))
    fit, val = first_step(m, "train_acc", 0.99), first_step(m, "val_acc", 0.9)
    details = {"fit": fit, "val_90": val, "norm_at_fit": norm[fit] if fit is not None else None,
               "norm_at_val_90": norm[val if val is not None else m["step"][-1]], "norm_start": m["weight_norm"][0],
               "norm_min": min(m["weight_norm"]), "val_acc_best": max(m["val_acc"])}
    return (float(budget), True, details) if val is None else (float(val), False, details)


# Chughtai et al.'s names for the irreps of S5 (their rep_theory/utils/groups.py; their 5d-a is the
# Specht module (2,2,1), 5d-b is (3,2), as the character of a transposition in their matrices shows).
CHUGHTAI_S5_NAMES = {"5": "trivial", "4_1": "standard", "3_2": "5d-b", "3_1_1": "6d", "2_2_1": "5d-a",
                     "2_1_1_1": "standard-sign", "1_1_1_1_1": "sign"}


def _chughtai_irreps(run_dir, budget):
    """Chughtai et al.'s key irreps of the final model (measures ``irreps`` and ``irrep_circuit``,
    the last row of measures.csv): the non-trivial irreps whose logit cosine with chi(x y z^-1) is
    above 0.005; the value is how many. Details: their names, the share of the operand embedding
    they carry together (their "W_a FVE"), the embedding's share per irrep and how many irreps carry
    90% of it."""
    c = _metrics(run_dir, "measures.csv")
    names = [k[len("irrep_share_"):] for k in c if k.startswith("irrep_share_")]
    key = [name for name in names if c.get(f"irrep_sim_{name}", [0.0])[-1] > KEY_SIMILARITY]
    shares = {name: c[f"irrep_share_{name}"][-1] for name in names}
    return float(len(key)), False, {"key": key, "key_share": sum(shares[name] for name in key), "shares": shares,
                                    "n90": int(c["irrep_n90"][-1]), "step": int(c["step"][-1])}


def _liu_toy_agreement(seed_dir, budget):
    """The share of a draw's grid cells (``seed_dir/cells.csv``) whose phase by Liu et al.'s rule
    is the published cell's (``published.csv`` beside it); details: counts, matrix, cells that differ."""
    from . import toy, toy_claim

    ours, theirs = toy.read_steps(seed_dir / "cells.csv"), toy.read_steps(seed_dir.parent / "published.csv")
    cmp = toy_claim.compare(ours, theirs, budget)
    keys = {toy_claim.key(o) for o in ours}
    published = [t for t in theirs if toy_claim.key(t) in keys]  # the same cells: a grid may be a part of theirs
    seconds = sum(float(r["seconds"]) for r in csv.DictReader(io.StringIO((seed_dir / "cells.csv").read_text())))
    return cmp["agree"] / cmp["cells"], False, {
        "seed": int(seed_dir.name.removeprefix("seed_")), "agree": cmp["agree"], "cells": cmp["cells"],
        "ours": {p: cmp["ours"][p] for p in toy.PHASES},
        "theirs": {p: sum(toy.liu_phase(t["train_step"], t["test_step"], budget) == p for t in published)
                   for p in toy.PHASES},
        "matrix": cmp["matrix"], "mismatches": cmp["mismatches"], "steps": cmp["steps"], "train_s": seconds}


MEASURES = {
    "steps_to_val_95": ClaimMeasure("first step with validation accuracy >= 95%", _steps_to("val_acc", 0.95), "ratio"),
    "steps_to_val_99": ClaimMeasure("first step with validation accuracy >= 99%", _steps_to("val_acc", 0.99), "ratio"),
    "final_val_acc": ClaimMeasure("validation accuracy at the end of the budget", _last("val_acc"), "difference"),
    "best_val_acc": ClaimMeasure("best validation accuracy within the budget", _max("val_acc"), "difference"),
    "max_sc_zero_loss": ClaimMeasure("largest share of training rows with an exactly zero float32 loss",
                                _max("sc_zero_loss", "measures.csv"), "difference"),
    "delay_95": ClaimMeasure("steps from train to validation accuracy >= 95%",
                             _delay(0.95, lambda val, train: val - train), "ratio"),
    "delay_ratio_95": ClaimMeasure("step of validation accuracy >= 95% over the step of train accuracy >= 95%",
                                   _delay(0.95, lambda val, train: val / train), "ratio"),
    "nanda_phases": ClaimMeasure("the step cleanup begins (the test loss down to half its peak)", _nanda_phases,
                                 "ratio"),
    "nanda_frequencies": ClaimMeasure("number of key frequencies of the final embedding", _nanda_frequencies,
                                      "difference"),
    "nanda_ablation": ClaimMeasure("loss over the table with the neurons at their key frequencies only",
                                   _nanda_ablation, "difference"),
    "hidden_progress": ClaimMeasure("first step with validation accuracy >= 99%, and what grew on the plateau "
                                    "before it", _hidden_progress, "ratio"),
    "steps_to_val_90_norm": ClaimMeasure("first step with validation accuracy >= 90%, and the weight norm on the "
                                         "way", _norm_story, "ratio"),
    "chughtai_irreps": ClaimMeasure("number of key irreps of the final model (logit cosine with chi(x y z^-1) "
                                    "above 0.005)", _chughtai_irreps, "difference"),
    "liu_toy_agreement": ClaimMeasure("share of the phase diagram's cells in the published cell's phase "
                                      "(their rule)", _liu_toy_agreement, "difference"),
}


@dataclass(frozen=True)
class Arm:
    name: str
    preset: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Runner:
    """How a claim without preset arms is measured: by its own training loop.

    train(claim, out, workers, log)   trains what ``out/<claim>`` lacks, on ``workers`` processes,
                                      keeping what is finished (a rerun only measures), each result
                                      written atomically
    read(claim, out) -> results       by name, each a ``summarize`` dict with ``censored``,
                                      ``budget``, ``train_s`` (and ``details``): what the claim's
                                      verdict reads and claims.csv lists
    figure(claim, out, results)       draws ``out/<claim>.png``
    describe(results) -> [str]        the parts of the table's "here" cell
    runs(claim) -> int                how many runs it trains, for the log
    """
    train: Callable
    read: Callable
    figure: Callable
    describe: Callable
    runs: Callable


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
    minutes: float = 1.0  # about how long the claim's runs take on 2 cores (measured: half their training time)
    extra: dict = field(default_factory=dict)
    runs_of: str = ""  # another claim whose runs (same arms and seeds) this one reads instead of training its own
    runner: Runner | None = None  # measured by its own training loop instead of ``arms`` (then empty)


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
    measure = MEASURES[claim.measure]
    results = {}
    for arm in claim.arms:
        budget = _budget(claim, arm)
        values, flags, details, seconds = [], [], [], 0.0
        for seed in claim.seeds:
            run = _run_dir(out, claim, arm, seed)
            value, censored, *detail = measure.read(run, budget)
            values.append(value)
            flags.append(censored)
            details += detail
            seconds += json.loads((run / "summary.json").read_text()).get("wall_time_s", 0.0)
        results[arm.name] = {**summarize(values), "censored": flags, "budget": budget,
                             "train_s": round(seconds, 1), **({"details": details} if details else {})}
    for method, baseline in claim.comparisons:
        pairs = list(zip(results[method]["values"], results[baseline]["values"]))
        # Steps compare as a ratio (how many times sooner); accuracies and shares as a difference.
        ratio = measure.effect == "ratio"
        effects = [m / b for m, b in pairs] if ratio else [m - b for m, b in pairs]
        results[_effect(claim, method, baseline)] = summarize(effects)
    return results


def _run_dir(out: Path, claim: Claim, arm: Arm, seed: int) -> Path:
    return out / (claim.runs_of or claim.name) / arm.name / arm.preset / f"seed_{seed}"


def _effect(claim: Claim, method: str, baseline: str) -> str:
    return f"{method}/{baseline}" if MEASURES[claim.measure].effect == "ratio" else f"{method}-{baseline}"


def train_claims(claims: list[Claim], out: Path, workers: int | None, log=print) -> None:
    """Train every arm of every claim on its seeds, all in one pool so that no core waits for
    another claim's last run (longest runs first). Finished runs are kept: a rerun only measures."""
    from .sweeps import plan_runs, train_specs, write_sweep_summary

    owners = {claim.runs_of or claim.name: claim for claim in claims}  # claims that share runs train them once
    plans = [(claim, out / name / arm.name, plan_runs([arm.preset], claim.seeds, out / name / arm.name,
                                                      overrides=arm.overrides, curves=False))
             for name, claim in owners.items() for arm in claim.arms]
    specs = [spec for _, _, plan in plans for spec in plan]
    cost = {spec.out: claim.minutes / (len(claim.arms) * len(claim.seeds)) for claim, _, plan in plans
            for spec in plan}
    order = sorted(specs, key=lambda spec: -cost[spec.out])  # stable: the registry's order among equals
    rows = dict(zip((spec.out for spec in order), train_specs(order, workers=workers, log=log)))
    failed = [rows[spec.out] for spec in specs if rows[spec.out]["status"] == "failed"]
    if failed:
        first = failed[0]
        raise ClaimFailed(f"{len(failed)} run(s) failed, the first {first['group']} seed {first['seed']} "
                          f"({first['error']}); the same command trains them again")
    for _, arm_dir, plan in plans:
        write_sweep_summary(arm_dir, [rows[spec.out] for spec in plan])


def measure_claim(claim: Claim, out: Path) -> dict:
    """The claim's table row, from its trained runs, and its figure."""
    results = claim.runner.read(claim, out) if claim.runner else arm_results(claim, out)
    verdict, why = claim.verdict(results)
    try:
        claim.runner.figure(claim, out, results) if claim.runner else claim_figure(claim, out)
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
        data = [read_metrics(_run_dir(out, claim, arm, s) / "metrics.csv") for s in claim.seeds]
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
    some = f" ({sum(censored)} of {len(censored)} seeds never get there)" if censored and not mark and any(censored) else ""
    return f"{mark}{summary['median']:.4g} [{lo:.4g}, {hi:.4g}]{some}"


def table(rows: list[dict]) -> str:
    """The markdown table: claim, paper, here (each arm, and the paired ratios), verdict."""
    lines = ["| claim | paper | here: median [95% bootstrap interval] over seeds | verdict |", "|---|---|---|---|"]
    for row in rows:
        claim = CLAIMS[row["claim"]]
        parts = claim.runner.describe(row["results"]) if claim.runner else []
        for arm in claim.arms:
            r = row["results"][arm.name]
            parts.append(f"{arm.name}: {_fmt(r, r['censored'])}")
        for method, baseline in claim.comparisons:
            key = _effect(claim, method, baseline)
            parts.append(f"{'ratio' if '/' in key else 'difference'} {key}: {_fmt(row['results'][key])}")
        lines.append(f"| {claim.name}: {MEASURES[claim.measure].description} | {claim.published} ({claim.source}) | "
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
    chosen = [CLAIMS[name] if seeds is None else dataclasses.replace(CLAIMS[name], seeds=tuple(seeds))
              for name in names]
    runs = sum(c.runner.runs(c) if c.runner else len(c.arms) * len(c.seeds) for c in chosen)
    log(f"{len(chosen)} claims, {runs} runs (about {sum(c.minutes for c in chosen):g} min on 2 cores)")
    start = time.perf_counter()
    presets = [c for c in chosen if c.runner is None]
    if presets:
        train_claims(presets, out, workers, log)
    for claim in chosen:
        if claim.runner:  # their own loops, after the preset pool: both use every worker
            claim.runner.train(claim, out, workers, log)
    log(f"trained in {time.perf_counter() - start:.0f} s")
    rows = []
    for claim in chosen:
        rows.append(measure_claim(claim, out))
        minutes = sum(r.get("train_s", 0) for r in rows[-1]["results"].values()) / 60
        log(f"{claim.name}: {rows[-1]['verdict']} ({rows[-1]['why']}); its runs trained for {minutes:.1f} min")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "claims.json", rows)
    write_atomic(out / "claims.md", (table(rows) + "\n").encode())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["claim", "arm", "median", "low", "high", "values", "verdict"])
    for row in rows:
        for arm, r in row["results"].items():
            w.writerow([row["claim"], arm, r["median"], *r["interval"], json.dumps(r["values"]), row["verdict"]])
    write_atomic(out / "claims.csv", buf.getvalue().encode())
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


def _larger(method, baseline, threshold, margin=None):
    """The method's median reaches ``threshold`` and the baseline's does not; with a ``margin``,
    a paired difference interval above it but short of the threshold is a partial reproduction."""
    def rule(results):
        m, b = results[method]["median"], results[baseline]["median"]
        medians = f"median {m:.3g} with {method}, {b:.3g} with {baseline}"
        if m >= threshold > b:
            return "reproduced", medians
        if margin is not None and results[f"{method}-{baseline}"]["interval"][0] > margin:
            return "partly reproduced", f"{medians}: higher on every resample, short of {threshold:g}"
        return "not reproduced", f"{medians} (threshold {threshold})"
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


def _later(arm, factor):
    """Every seed of ``arm`` reaches the measure's later event, at least ``factor`` times later
    than the earlier one (a delay ratio), judged on the interval's lower end."""
    def rule(results):
        r = results[arm]
        lo, _ = r["interval"]
        if any(r["censored"]):
            return "not reproduced", f"{sum(r['censored'])} of {len(r['censored'])} seeds never generalize"
        if lo >= factor:
            return "reproduced", f"validation follows training {r['median']:.3g} times later (interval from {lo:.3g})"
        return "not reproduced", f"validation follows training only {r['median']:.3g} times later"
    return rule


def _steeper(method, baseline, points, per_point):
    """With ``points`` percentage points less data the method arm takes longer: the paired ratio
    interval lies above 1; at least ``per_point`` more time per point (compounded) to match the
    published size."""
    def rule(results):
        r = results[f"{method}/{baseline}"]
        lo, _ = r["interval"]
        rate = r["median"] ** (1 / points) - 1
        if lo <= 1:
            return "not reproduced", "the ratio interval contains 1"
        if rate >= per_point:
            return "reproduced", f"{rate:.0%} more steps per point of data less"
        return "partly reproduced", (f"sharp, less steep: {rate:.0%} more steps per point of data less "
                                     f"(paper: {per_point:.0%} or more)")
    return rule


def _never_while(method, baseline, below, reaches):
    """The method arm's best stays below ``below`` on every seed while the baseline's median reaches
    ``reaches``: the method's task is not learned where an easier one is."""
    def rule(results):
        best, b = max(results[method]["values"]), results[baseline]["median"]
        why = f"best {best:.3g} at most, against {b:.3g} for {baseline}"
        return ("reproduced" if best < below and b >= reaches else "not reproduced"), why
    return rule


def _generalizes(arm, reaches):
    def rule(results):
        r = results[arm]
        ok = sum(v >= reaches for v in r["values"])
        if ok == len(r["values"]):
            return "reproduced", f"every seed reaches {reaches:g} (median {r['median']:.3g})"
        if ok:
            return "partly reproduced", f"{ok} of {len(r['values'])} seeds reach {reaches:g}"
        return "not reproduced", f"no seed reaches {reaches:g} (median {r['median']:.3g})"
    return rule


def _about_the_same(method, baseline, factor=1.5):
    """Neither arm needs more than ``factor`` times the other's steps: the paired ratio interval lies
    within [1/factor, factor]."""
    def rule(results):
        m, b = results[method], results[baseline]
        lo, hi = results[f"{method}/{baseline}"]["interval"]
        if any(m["censored"]) or any(b["censored"]):
            return "inconclusive", "not every seed generalizes within the budget"
        if 1 / factor <= lo and hi <= factor:
            return "reproduced", f"ratio interval [{lo:.3g}, {hi:.3g}] within [{1 / factor:.3g}, {factor:g}]"
        return "not reproduced", f"ratio interval [{lo:.3g}, {hi:.3g}] leaves [{1 / factor:.3g}, {factor:g}]"
    return rule


def _three_phases(arm, published):
    """Every seed goes through memorization, circuit formation (restricted loss falls, excluded loss
    rises, test accuracy stays below 0.5) and cleanup, in that order (``_nanda_phases``)."""
    def rule(results):
        details = results[arm]["details"]
        ok = [d["cleanup_start"] is not None and d["cleanup_end"] is not None
              and d["memorization_end"] < d["cleanup_start"] < d["cleanup_end"]
              and d["restricted_fell"] and d["excluded_rose"] and d["test_stayed_low"] for d in details]
        medians = [statistics.median(d[k] if d[k] is not None else results[arm]["budget"] for d in details)
                   for k in ("memorization_end", "cleanup_start", "cleanup_end")]
        steps = f"memorization ends at {medians[0]:,.0f}, cleanup begins at {medians[1]:,.0f} and ends at " \
                f"{medians[2]:,.0f} (medians; published {', '.join(f'{s:,}' for s in published)})"
        if all(ok):
            return "reproduced", f"every seed shows the three phases in order: {steps}"
        return ("partly reproduced" if any(ok) else "not reproduced"), \
            f"{sum(ok)} of {len(ok)} seeds show the three phases in order: {steps}"
    return rule


def _few_keys(arm, most, share):
    """Every seed's final embedding has 1..``most`` key frequencies, and they carry at least
    ``share`` of the neurons' variance."""
    def rule(results):
        details, counts = results[arm]["details"], results[arm]["values"]
        explained = [d["neuron_variance_at_keys"] for d in details]
        ok = [1 <= n <= most and e >= share for n, e in zip(counts, explained)]
        why = (f"key frequencies per seed {', '.join(str(d['keys']) for d in details)}; they carry "
               f"{', '.join(f'{e:.0%}' for e in explained)} of the neurons' variance (rule: at most {most} keys "
               f"carrying at least {share:.0%})")
        return ("reproduced" if all(ok) else "partly reproduced" if any(ok) else "not reproduced"), why
    return rule


def _ablation_rule(arm, factor=2.0, slack=0.05):
    """On every seed the neurons at their key frequencies alone keep the loss low (at most
    ``factor`` times the trained loss plus ``slack``) and without them the loss is at least half of
    chance (ln of the number of classes)."""
    def rule(results):
        details = results[arm]["details"]
        ok = [d["kept"] <= factor * d["loss"] + slack and d["removed"] >= d["chance"] / 2 for d in details]
        why = "; ".join(f"loss {d['loss']:.3g}, keys only {d['kept']:.3g}, without them {d['removed']:.3g}"
                        for d in details) + f" (chance {details[0]['chance']:.3g})"
        return ("reproduced" if all(ok) else "partly reproduced" if any(ok) else "not reproduced"), why
    return rule


def _hidden_progress_rule(arm, ratio_growth=1.2, steady=0.9, sparse=0.1):
    """Every seed fits first, then sits on a plateau (validation below 0.6) at least as long as the
    fitting took, and is solved (validation 0.99) within the budget; over the plateau the relevant
    bits' weights move away from their initialization in at least ``steady`` of the evaluation
    intervals and their weight over the others' ends at least ``ratio_growth`` times where it began
    (while validation is still below 0.6: progress the accuracy does not show); and by the end the
    network leans on at most ``sparse`` of the neurons it leaned on at the fit (a sparse circuit)."""
    def rule(results):
        details, ok = results[arm]["details"], []
        for d in details:
            ok.append("plateau" in d and d["solved"] is not None and d["plateau"][1] - d["fit"] >= d["fit"]
                      and d["distance_grew"] >= steady and d["ratio"][1] >= ratio_growth * d["ratio"][0]
                      and d["active"][-1] <= sparse * d["active"][0])
        why = "; ".join(
            f"fits at {d['fit']}, plateau to {d['plateau'][1]}, solved at {d['solved']}; relevant bits moved "
            f"{d['distance'][0]:.2f} -> {d['distance'][1]:.2f} (grew in {d['distance_grew']:.0%} of intervals), "
            f"relevant/other weight {d['ratio'][0]:.3f} -> {d['ratio_middle']:.3f} (middle) -> {d['ratio'][1]:.3f}; "
            f"neurons carrying 90% {' -> '.join(map(str, d['active']))}" if "plateau" in d else
            f"no plateau (fit {d['fit']}, solved {d['solved']})" for d in details)
        return ("reproduced" if all(ok) else "partly reproduced" if any(ok) else "not reproduced"), \
            f"{sum(ok)} of {len(ok)} seeds: {why}"
    return rule


def _norm_story_rule(large, no_decay, small, delay=3.0, fall=0.8):
    """Every seed of ``large`` reaches validation 0.9 at least ``delay`` times later than it fits
    the training split, with the weight norm by then below ``fall`` times its value at the fit;
    no seed of ``no_decay`` reaches 0.9 and its norm never falls below ``fall`` times its value at
    its fit; every seed of ``small`` reaches 0.9 sooner than every seed of ``large``."""
    def rule(results):
        ld, nd, sd = (results[a]["details"] for a in (large, no_decay, small))
        delayed = [d["val_90"] is not None and d["fit"] is not None and d["val_90"] >= delay * d["fit"]
                   and d["norm_at_val_90"] <= fall * d["norm_at_fit"] for d in ld]
        never = [d["val_90"] is None and d["fit"] is not None and d["norm_min"] > fall * d["norm_at_fit"] for d in nd]
        sooner = max((d["val_90"] or math.inf) for d in sd) < min((d["val_90"] or math.inf) for d in ld)
        def each(details, key, fmt="{}"):
            return ", ".join("never" if d[key] is None else fmt.format(d[key]) for d in details)

        why = (f"{large}: fits at {each(ld, 'fit')}, validation 0.9 at {each(ld, 'val_90')}, weight norm at the "
               f"fit {each(ld, 'norm_at_fit', '{:.0f}')} and then {each(ld, 'norm_at_val_90', '{:.0f}')}; "
               f"{no_decay}: best validation {each(nd, 'val_acc_best', '{:.2f}')}, lowest norm "
               f"{each(nd, 'norm_min', '{:.0f}')} against {each(nd, 'norm_at_fit', '{:.0f}')} at the fit; "
               f"{small}: validation 0.9 at {each(sd, 'val_90')}")
        parts = [all(delayed), all(never), sooner]
        return ("reproduced" if all(parts) else "partly reproduced" if any(parts) else "not reproduced"), why
    return rule


def _few_irreps(arm, most, share):
    """Every seed's final model has 1..``most`` key irreps (``_chughtai_irreps``) and they carry at
    least ``share`` of the operand embedding's squared norm."""
    def rule(results):
        details, counts = results[arm]["details"], results[arm]["values"]
        ok = [1 <= k <= most and d["key_share"] >= share for k, d in zip(counts, details)]

        def named(d):
            return "{" + ", ".join(f"{n} ({CHUGHTAI_S5_NAMES.get(n, n)})" for n in d["key"]) + "}"
        carried = ", ".join(f"{d['key_share']:.2%}" for d in details)
        why = (f"key irreps per seed {'; '.join(named(d) for d in details)}; they carry {carried} of the "
               f"embedding (rule: at most {most} key irreps carrying at least {share:.0%})")
        return ("reproduced" if all(ok) else "partly reproduced" if any(ok) else "not reproduced"), why
    return rule


def _phase_agreement(at_least, partly, tolerance):
    """On the published draw, at least ``at_least`` of the cells are in the published cell's phase
    and every phase's count is within ``tolerance`` cells of the published count: reproduced; at
    least ``partly`` of the cells (or ``at_least`` with a count further off): partly reproduced."""
    def rule(results):
        d = results["published_draw"]["details"][0]
        share = d["agree"] / d["cells"]
        off = [p for p in d["ours"] if abs(d["ours"][p] - d["theirs"][p]) > tolerance]
        counts = ", ".join(f"{p} {d['ours'][p]} (theirs {d['theirs'][p]})" for p in d["ours"])
        why = (f"{d['agree']} of {d['cells']} cells ({share:.1%}) in the published phase on their draw (seed "
               f"{d['seed']}); {counts}")
        others = results.get("other_draws", {}).get("details", [])
        if others:
            why += "; other draws: " + ", ".join(f"seed {o['seed']} {o['agree'] / o['cells']:.1%}" for o in others)
        why += f" (rule: at least {at_least:.0%} of the cells, every count within {tolerance})"
        if share >= at_least and not off:
            return "reproduced", why
        if share >= partly:
            return "partly reproduced", why
        return "not reproduced", why
    return rule


def _liu_draws(claim: Claim) -> tuple[int, ...]:
    """The published draw first, always (the published cells come from it), then the claim's other seeds."""
    from .toy import SEED

    return (SEED, *(s for s in claim.seeds if s != SEED))


def liu_toy_runner(grid=None) -> Runner:
    """The Runner of Liu et al.'s toy phase diagram (``toy_claim``): a grid per draw, each cell's
    phase by their rule against the published cell's. ``grid``: a ``toy_claim.ToyGrid`` (Fig. 5b's)."""
    from . import toy, toy_claim

    grid = grid or toy_claim.ToyGrid()

    def train(claim, out, workers, log):
        try:
            toy_claim.train(grid, Path(out), claim.name, _liu_draws(claim), workers, log)
        except toy_claim.ToyRunFailed as err:
            raise ClaimFailed(f"{claim.name}: a toy run failed ({err}); the finished cells are kept and the "
                              "same command trains the rest") from err

    def read(claim, out):
        per = [MEASURES[claim.measure].read(toy_claim.seed_dir(out, claim.name, s), grid.steps)
               for s in _liu_draws(claim)]
        results = {}
        # The published draw is the claim's number; other draws only say how much belongs to the draw.
        for name, chosen in (("published_draw", per[:1]), ("other_draws", per[1:])):
            if chosen:
                results[name] = {**summarize([v for v, _, _ in chosen]), "censored": [c for _, c, _ in chosen],
                                 "budget": grid.steps, "train_s": round(sum(d["train_s"] for *_, d in chosen), 1),
                                 "details": [d for *_, d in chosen]}
        return results

    def figure(claim, out, results):
        sdir = toy_claim.seed_dir(out, claim.name, _liu_draws(claim)[0])
        ours = toy.read_steps(sdir / "cells.csv")
        keys = {toy_claim.key(o) for o in ours}
        theirs = [t for t in toy.read_steps(sdir.parent / "published.csv") if toy_claim.key(t) in keys]
        cmp = toy_claim.compare(ours, theirs, grid.steps)
        return toy_claim.draw(ours, theirs, cmp, Path(out) / f"{claim.name}.png", grid.steps, _liu_draws(claim)[0])

    def describe(results):
        details = [d for name in ("published_draw", "other_draws") for d in results.get(name, {}).get("details", [])]
        parts = []
        for d in details:
            counts = "/".join(str(d["ours"][p]) for p in toy.PHASES)
            parts.append(f"seed {d['seed']}{' (their draw)' if d['seed'] == toy.SEED else ''}: {d['agree']} of "
                         f"{d['cells']} cells ({d['agree'] / d['cells']:.1%}) in the published phase, "
                         f"{'/'.join(toy.PHASES)} {counts}")
        return parts + ["published " + "/".join(str(details[0]["theirs"][p]) for p in toy.PHASES)]

    return Runner(train=train, read=read, figure=figure, describe=describe,
                  runs=lambda claim: len(grid.cells()) * len(_liu_draws(claim)))


# -- the claims --------------------------------------------------------------------------------

# Nanda et al.'s setting (the nanda_mod_add preset) with the budget scaled from their 40k steps to
# 20k, which covers their three phases (cleanup ends at 14k; the slowest of our seeds reaches 99% after
# 15k) at about half the time: about 70 min of training per seed.
_NANDA_ARMS = (Arm("nanda", "nanda_mod_add", ("training.steps=20000",)),)

# Prieto et al.'s MLP as their code builds it: the two-hot input one-hot(x) + one-hot(y).
_PRIETO_MLP = ("task.operation=x+y", "task.p=113", "task.train_fraction=0.4", "model.input=twohot",
               "model.n_layers=2", "model.d_hidden=200", "training.batch_size=0", "training.eval_interval=10",
               "optimizer.weight_decay=0", "optimizer.lr=0.01")

# The official Grokfast code's optimizer on the Figure 1 transformer: Adam with L2 weight decay
_GROKFAST_TRANSFORMER = ("task.operation=x*y", "optimizer.name=adam", "training.steps=3000",
                         "training.eval_interval=100")

# Chughtai et al.'s one-layer MLP on S5 (embed 256, hidden 128, 40% of the table) in this
# framework's MLP, at 10x their rate: seed 0 reaches validation 99% at step 6,000 (measured), where
# their lr 1e-3 and 250,000 epochs would take hours; 10,000 steps leave room for slower seeds.
_CHUGHTAI_S5 = ("model.d_embed=256", "model.d_hidden=128", "task.train_fraction=0.4", "training.steps=10000",
                "training.eval_interval=200", "output.measures=irreps,irrep_circuit")

_FLOAT64_LOSS = ("model.loss_dtype=float64", "training.steps=4000", "training.eval_interval=100")

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
        minutes=1.5),
    Claim(
        name="prieto_perp_adamw",
        source="Prieto et al. 2025",
        published_setting="x+y mod 113, 40% of the pairs, MLP 200-200 on two-hot pairs, full batch, no weight decay",
        published="⊥AdamW generalizes within about 300 epochs; AdamW without weight decay does not",
        measure="steps_to_val_95",
        here="the published setting (lr 0.01, which the papers file does not give), 300 full-batch steps",
        arms=(Arm("perp_adamw", "mod_add_grokking", (*_PRIETO_MLP, "optimizer.perp_grad=true", "training.steps=300")),
              Arm("adamw", "mod_add_grokking", (*_PRIETO_MLP, "training.steps=300"))),
        comparisons=(("perp_adamw", "adamw"),),
        verdict=_reaches_and_baseline_does_not("perp_adamw", "adamw"),
        minutes=1),
    Claim(
        name="prieto_stablemax",
        source="Prieto et al. 2025",
        published_setting="modular arithmetic without weight decay, StableMax cross-entropy in float64",
        published="StableMax generalizes without weight decay where softmax does not",
        measure="final_val_acc",
        here="the MLP setting of prieto_perp_adamw (two-hot input), 4,000 full-batch steps, StableMax against "
             "softmax, both with the loss in float64; and StableMax on the concatenated one-hot input, which "
             "tells the two pairs of a swap apart",
        arms=(Arm("stablemax", "mod_add_grokking", (*_PRIETO_MLP, "model.loss=stablemax", *_FLOAT64_LOSS)),
              Arm("softmax", "mod_add_grokking", (*_PRIETO_MLP, *_FLOAT64_LOSS)),
              Arm("stablemax_onehot", "mod_add_grokking", (*_PRIETO_MLP, "model.loss=stablemax", *_FLOAT64_LOSS,
                                                           "model.input=onehot"))),
        comparisons=(("stablemax", "softmax"), ("stablemax", "stablemax_onehot")),
        verdict=_larger("stablemax", "softmax", 0.9, margin=0.1),
        minutes=18),
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
        minutes=10),
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
        minutes=3),
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
        minutes=1.5),
    Claim(
        name="grokfast_transformer",
        source="Lee et al. 2024 (Grokfast), CPU-scaled",
        published_setting="x*y mod 97, 50% of the data, transformer, Adam lr 1e-3, minibatch 512: 39,890 "
                          "steps to 95% validation (baseline, weight decay 0) against 910 (EMA, alpha 0.98, "
                          "lambda 2, L2 weight decay 0.005)",
        published="the EMA filter reaches 95% validation many times sooner",
        measure="steps_to_val_95",
        here="fig1_div_transformer's transformer (post-LayerNorm, ReLU, no biases; the official Grokfast code "
             "is pre-LayerNorm with GELU and biases) on x*y mod 97 (y = 0 included), 50%, Adam (L2 weight "
             "decay, as the official code), lr 1e-3, minibatch 512, 3,000 steps: EMA against the same run "
             "without it (like for like, weight decay 0.005 both) and against the published baseline "
             "(weight decay 0)",
        arms=(Arm("ema", "fig1_div_transformer", (*_GROKFAST_TRANSFORMER, "optimizer.weight_decay=0.005",
                                                  "optimizer.grokfast=ema")),
              Arm("baseline", "fig1_div_transformer", (*_GROKFAST_TRANSFORMER, "optimizer.weight_decay=0.005")),
              Arm("baseline_wd0", "fig1_div_transformer", (*_GROKFAST_TRANSFORMER, "optimizer.weight_decay=0"))),
        comparisons=(("ema", "baseline"), ("ema", "baseline_wd0")),
        verdict=_faster("ema", "baseline"),
        seeds=(0, 1, 2, 3, 4, 5),  # on 3 seeds the filter's spread (one fast seed, two slow) left it open
        minutes=33),
    Claim(
        name="power_delay",
        source="Power et al. 2021, Fig. 1",
        published_setting="x/y mod 97, 50% of the data, transformer, AdamW without weight decay",
        published="training accuracy is near perfect before 10^3 steps; validation accuracy reaches it "
                  "close to 10^6 steps, little before 10^5",
        measure="delay_ratio_95",
        here="fig1_div_transformer (the paper's transformer and optimizer, weight decay 1, learned positions), "
             "4,000 steps; the paper's own run without weight decay is part 5a of docs/reproduction.md "
             "(10^5 steps, 2 hours: too long for the registry)",
        arms=(Arm("x_over_y", "fig1_div_transformer", ("training.steps=4000",)),),
        comparisons=(),
        verdict=_later("x_over_y", 2),
        minutes=7),
    Claim(
        name="power_fraction",
        source="Power et al. 2021, Fig. 1 right",
        published_setting="x/y mod 97 and others, transformer, median steps to 99% validation against the "
                          "training fraction",
        published="near 25-30% of the data, 1% less data raises the median time to generalize by 40-50%",
        measure="steps_to_val_99",
        here="mod_add_grokking (MLP, x+y mod 97, AdamW lr 1e-2, weight decay 1, full batch), 25% against "
             "30% of the table, 6,000 steps",
        arms=(Arm("fraction_25", "mod_add_grokking", ("task.train_fraction=0.25", "training.steps=6000")),
              Arm("fraction_30", "mod_add_grokking", ("task.train_fraction=0.3", "training.steps=6000"))),
        comparisons=(("fraction_25", "fraction_30"),),
        verdict=_steeper("fraction_25", "fraction_30", points=5, per_point=0.4),
        minutes=2.5),
    Claim(
        name="power_symmetric",
        source="Power et al. 2021, Fig. 2 right",
        published_setting="operations mod 97 at several training fractions, transformer, best validation "
                          "accuracy within 10^5 steps",
        published="symmetric operations (x+y, x*y, ...) need less data than asymmetric ones (x-y, x/y)",
        measure="steps_to_val_99",
        here="fig1_div_transformer on x+y against x-y, both at 50% of the table, 4,000 steps: the "
             "symmetric operation should generalize sooner at the same fraction",
        arms=(Arm("x_plus_y", "fig1_div_transformer", ("task.operation=x+y", "training.steps=4000")),
              Arm("x_minus_y", "fig1_div_transformer", ("task.operation=x-y", "training.steps=4000"))),
        comparisons=(("x_plus_y", "x_minus_y"),),
        verdict=_faster("x_plus_y", "x_minus_y"),
        minutes=16),
    Claim(
        name="power_x_minus_y_like_x_over_y",
        source="Power et al. 2021, Fig. 2 right",
        published_setting="operations mod 97 at several training fractions, transformer",
        published="x-y and x/y need about the same amount of data",
        measure="steps_to_val_99",
        here="mod_add_grokking's MLP on x-y against x/y, 30% of the table, 3,000 steps: paired ratio "
             "within [2/3, 3/2]",
        arms=(Arm("x_minus_y", "mod_add_grokking", ("task.operation=x-y",)),
              Arm("x_over_y", "mod_add_grokking", ("task.operation=x/y",))),
        comparisons=(("x_minus_y", "x_over_y"),),
        verdict=_about_the_same("x_minus_y", "x_over_y", 1.5),
        minutes=1.5),
    Claim(
        name="power_hard_operation",
        source="Power et al. 2021, Fig. 2 right",
        published_setting="x^3+xy^2+y mod 97, transformer, training fractions up to 95%",
        published="x^3+xy^2+y did not generalize at any fraction up to 95%",
        measure="best_val_acc",
        here="mod_add_grokking's MLP at 90% of the table, 3,000 steps, against x+y at the same fraction",
        arms=(Arm("x3_xy2_y", "mod_add_grokking", ("task.operation=x^3+xy^2+y", "task.train_fraction=0.9")),
              Arm("x_plus_y", "mod_add_grokking", ("task.train_fraction=0.9",))),
        comparisons=(("x3_xy2_y", "x_plus_y"),),
        verdict=_never_while("x3_xy2_y", "x_plus_y", below=0.5, reaches=0.99),
        minutes=4),
    Claim(
        name="power_conditional",
        source="Power et al. 2021, Fig. 2 right",
        published_setting="x/y if y is odd, otherwise x-y, mod 97, transformer",
        published="the conditional operation generalizes (at large enough training fractions)",
        measure="best_val_acc",
        here="mod_add_grokking's MLP at 70% of the table, 6,000 steps; x-y at the same fraction beside it",
        arms=(Arm("conditional", "mod_add_grokking", ("task.operation=x/y if y odd else x-y",
                                                      "task.train_fraction=0.7", "training.steps=6000")),
              Arm("x_minus_y", "mod_add_grokking", ("task.operation=x-y", "task.train_fraction=0.7",
                                                    "training.steps=6000"))),
        comparisons=(("conditional", "x_minus_y"),),
        verdict=_generalizes("conditional", 0.95),
        minutes=6),
    Claim(
        name="nanda_phases",
        source="Nanda et al. 2023, Sec. 5.2 and Fig. 7",
        published_setting="x+y mod 113, 30% of the pairs, 1-layer ReLU transformer without LayerNorm, full "
                          "batch AdamW lr 1e-3, weight decay 1, 40k steps",
        published="three phases: memorization (0-1.4k steps), circuit formation (1.4k-9.4k: the excluded loss "
                  "rises, the restricted loss falls, the test loss stays high), cleanup (9.4k-14k: the test loss "
                  "falls)",
        measure="nanda_phases",
        here="nanda_mod_add (their model, initialization and optimizer; 113 classes where their output also "
             "scores '='), 20,000 of their 40,000 steps; measures fourier, circuit and norms every 100 steps",
        arms=_NANDA_ARMS,
        comparisons=(),
        verdict=_three_phases("nanda", (1400, 9400, 14000)),
        minutes=102),  # measured: 204 min of training for the three runs, two at a time
    Claim(
        name="nanda_key_frequencies",
        source="Nanda et al. 2023, Sec. 4",
        published_setting="as nanda_phases",
        published="the trained network uses a handful of key frequencies (5 in their run): the embedding is "
                  "sparse in the Fourier basis and the neurons cluster by those frequencies",
        measure="nanda_frequencies",
        here="the runs of nanda_phases at 20,000 steps; key frequencies: the fewest carrying 90% of the "
             "embedding's Fourier norm; neurons at the '=' position over the whole table",
        arms=_NANDA_ARMS,
        comparisons=(),
        verdict=_few_keys("nanda", most=8, share=0.8),
        runs_of="nanda_phases"),
    Claim(
        name="nanda_ablation",
        source="Nanda et al. 2023, Sec. 5",
        published_setting="as nanda_phases",
        published="keeping only the key frequencies keeps the loss low; removing them destroys performance",
        measure="nanda_ablation",
        here="the runs of nanda_phases at 20,000 steps; the MLP neurons' activations at '=' over the whole "
             "table, as functions of (a, b), kept at (or cleared of) the key frequencies' 2-D Fourier terms",
        arms=_NANDA_ARMS,
        comparisons=(),
        verdict=_ablation_rule("nanda"),
        runs_of="nanda_phases"),
    Claim(
        name="merrill_sparse_parity",
        source="Merrill, Tsilivis, Shukla 2023; Barak et al. 2022",
        published_setting="parity of 3 of 40 bits, 1,000 training samples, one hidden ReLU layer, SGD batch 32, "
                          "weight decay 0.01",
        published="after fitting the training samples the network sits on a long plateau of chance validation "
                  "accuracy, then solves the task; through the plateau the weights keep moving from their "
                  "initialization and the weight on the relevant bits grows against the others (hidden progress); "
                  "the solution is a sparse subnetwork: a few neurons grow while the rest decay",
        measure="hidden_progress",
        here="sparse_parity (width 1,000, SGD lr 0.1, 1,000 held-out samples), 20,000 steps; plateau: from train "
             "accuracy 0.99 to the last evaluation before validation 0.6; relevant/other weight: the RMS of W1's "
             "rows of the 3 relevant bits over that of the other 37 (parity_bits)",
        arms=(Arm("parity", "sparse_parity"),),
        comparisons=(),
        verdict=_hidden_progress_rule("parity"),
        minutes=1.0),
    Claim(
        name="omnigrok_digits",
        source="Liu, Michaud, Tegmark 2023 (Omnigrok, ICLR), its MNIST experiment",
        published_setting="MNIST, 1,000 training images, a 3-layer 200-wide ReLU MLP, MSE, AdamW lr 1e-3, weight "
                          "decay 0.01, batch 200, initialization scaled by 8",
        published="with a large initialization the network fits the training images long before it "
                  "generalizes, and it generalizes as the weight norm falls; without weight decay the norm "
                  "stays large and it does not generalize; at the standard scale it generalizes at once",
        measure="steps_to_val_90_norm",
        here="digits_omnigrok: scikit-learn's 8x8 digits instead of MNIST (1,000 / 797 images, no download), "
             "64-200-200-10, their optimizer, 80,000 steps; against the same without weight decay and with the "
             "initialization at scale 1",
        arms=(Arm("large_init", "digits_omnigrok"),
              Arm("large_init_no_decay", "digits_omnigrok", ("optimizer.weight_decay=0",)),
              Arm("standard_init", "digits_omnigrok", ("model.init_scale=1",))),
        comparisons=(("large_init", "standard_init"),),
        verdict=_norm_story_rule("large_init", "large_init_no_decay", "standard_init"),
        minutes=12.0),
    Claim(
        name="chughtai_s5_irreps",
        source="Chughtai et al. 2023, per-seed key irreps (their repository's paper/universality_results/mlp_all.csv)",
        published_setting="x.y in S5, 40% of the table, one-layer MLP (x and y embeddings of 256 each, hidden "
                          "128, ReLU), full batch AdamW lr 1e-3, weight decay 1, 250,000 epochs, seeds 1-4",
        published="a few irreps carry the learned representations, which ones varying by seed: 4, 2, 3 and 2 key "
                  "irreps (sign, standard-sign, standard, 5d-a; sign, standard; sign, standard, 5d-b; sign, "
                  "standard), together 99.96-100.00% of the embeddings",
        measure="chughtai_irreps",
        here="perm_s5_grokking with their widths (d_embed 256, d_hidden 128) at 40%, lr 1e-2 (10x theirs), "
             "10,000 full-batch steps; one embedding shared by x and y (theirs: two), 10 warmup steps; measures "
             "irreps and irrep_circuit every 200 steps, key irreps by their rule (logit cosine above 0.005) on "
             "the final model",
        arms=(Arm("mlp", "perm_s5_grokking", _CHUGHTAI_S5),),
        comparisons=(),
        verdict=_few_irreps("mlp", most=4, share=0.9),
        minutes=8),  # measured: 16.2 min of training for the three runs, two at a time
    Claim(
        name="liu_toy_phases",
        source="Liu et al. 2022, Fig. 5b",
        published_setting="toy addition of p = 10 numbers (45 of the 55 pairs a <= b train), a learned 1-D "
                          "representation per number, a 1-200-200-30 tanh decoder, MSE against random templates of "
                          "a + b; AdamW, decoder learning rate 10^linspace(-5, -2, 10) x decoder weight decay 0..10, "
                          "10^4 full-batch steps, seed 58",
        published="12 comprehension, 18 grokking, 49 memorization and 31 confusion cells of the 110 (their "
                  "repository's per-cell results under their notebook's rule)",
        measure="liu_toy_agreement",
        here="grokking.toy: their setting and their draw (seed 58: templates, split, initial weights and batch "
             "orders bit for bit), float32, the whole 10 x 11 grid; each cell's phase by their rule against the "
             "published cell's. --seeds adds other draws of the data and initialization, a grid each (as long "
             "again per seed)",
        arms=(),
        comparisons=(),
        # 90%: a cell next to a phase boundary can be decided by float32 rounding (docs/liu_toy.md: their
        # own code in float32 and in float64 part there), and 84 of the 110 published cells border another
        # phase; two diagrams with these phase areas but unrelated cells would agree on about 32%.
        verdict=_phase_agreement(0.9, 0.75, 3),
        seeds=(58,),  # their draw; the published cells come from no other
        # measured: 1,090 s of runs on one worker (2026-12-06); 3,305 s under other runs' load (2026-12-03)
        minutes=9,
        runner=liu_toy_runner()),
]}
