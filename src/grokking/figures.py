"""The figures of Power et al. (2021), drawn from run and sweep directories.

* ``accuracy_curves``: Figure 1, train and validation accuracy against steps (log x): of one run,
  or for a sweep a panel per setting holding every seed (never one run picked from many).
* ``steps_vs_fraction``: median steps until validation 99% against the training fraction, one line
  per operation, the band spanning the seeds' interquartile range (Sec. 3.1.1).
* ``best_val_vs_fraction``: best validation accuracy within the budget against the training
  fraction, one line per operation, averaged over seeds (Figure 2 right).
* ``interventions``: the same best-accuracy curves, one line per intervention (Figure 2 left);
  drawn only for a sweep that varies an optimizer or regularization setting.
* ``seeds``: every seed's validation accuracy against steps (linear x), a panel per setting, with
  how often each seed fell below 0.9 after first reaching 99%: whether runs stay generalized.
* ``embedding_pca``: the operand embeddings projected on their first two principal components,
  coloured by residue: x+y learns a circle (Figure 3's "number line"). For a sweep, a panel per
  setting from its lowest seed, named in the title; a run that never generalized says so.
* ``phases``: the phase diagram of a sweep over two settings (``grokking.phases``: comprehension,
  grokking, memorization, confusion; Liu et al. 2022).
* ``progress_measures``: the columns of measures.csv against steps on the accuracy curves' log
  axis, a panel per quantity, the step of validation 99% marked; for a sweep, each setting's
  median over seeds with the interquartile band. With the Fourier measure, ``key_frequencies``
  shows each frequency's share of the embedding's norm at every evaluation (one run, or a sweep's
  lowest seed per setting).

Lines of one axes cycle styles and thin out (``plotting.line_style``), so lines that coincide
stay visible; long titles are wrapped (``plotting.wrap``).

A sweep directory is read by finding every run below it (a directory with summary.json and
config.json); lines are told apart by the config keys that vary across the sweep, other than the
seed and the training fraction. matplotlib is imported only when drawing.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .analysis import key_frequency, principal_components
from .artifacts import CHECKPOINT, MEASURES_CSV, write_atomic
from .checkpoint import load_checkpoint
from .config import TaskConfig, config_from_dict
from .errors import ConfigError
from .experiment import build_model
from .plotting import line_style, read_metrics, wrap
from .sweeps import _steps, quantile
from .tasks import FAMILIES, build as build_task, is_permutation_op, task_name

FIGURES = ("curves", "fraction", "best", "interventions", "embeddings", "seeds", "measures", "phases", "circuits")

# The panels of progress_measures.png: a title, the columns it draws (from metrics.csv or
# measures.csv; those a run lacks are left out), and whether its y axis is logarithmic.
MEASURE_PANELS = (
    ("accuracy", ("train_acc", "val_acc"), False),
    ("loss on the training split", ("train_loss", "restricted_loss", "excluded_loss"), True),
    ("Gini of the embedding's frequency norms", ("fourier_gini",), False),
    ("frequencies carrying 90% of the embedding's norm", ("fourier_n90",), False),
    ("weight norms", ("weight_norm", "norm_embed", "norm_W_out"), True),
    ("distance from the initial weights, relative", ("weight_distance_rel",), False),
    ("sparse parity: weight on the relevant bits over the others'", ("relevant_ratio",), True),
    ("sparse parity: neurons carrying 90% of the network", ("active_neurons",), True),
    ("logit scale", ("logit_rms", "logit_margin"), False),
    ("softmax collapse: share of training rows", ("sc_zero_loss", "sc_zero_grad"), False),
)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    _plt().close(fig)
    write_atomic(path, buf.getvalue())
    return path


def find_runs(root: Path) -> list[dict]:
    """Every finished run at or below ``root``: {'dir', 'config', 'summary'}, in path order."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{str(root)!r} is not a directory")
    runs = []
    for summary in sorted(root.rglob("summary.json")):
        run_dir = summary.parent
        if (run_dir / "config.json").exists():
            runs.append({"dir": run_dir,
                         "config": json.loads((run_dir / "config.json").read_text()),
                         "summary": json.loads(summary.read_text())})
    if not runs:
        raise ConfigError(f"no finished run (summary.json with config.json) below {str(root)!r}")
    return runs


def _flat(config: dict) -> dict:
    return {f"{s}.{k}": v for s, keys in config.items() if s not in ("meta", "output")
            for k, v in keys.items()}


def line_labels(runs: list[dict], ignore=("training.seed", "task.train_fraction")) -> list[str]:
    """A label per run from the config keys whose values differ across the runs.

    A key whose value most runs share (more than half) is named only where a run departs from it,
    so an intervention reads 'grad_noise=0.01' rather than every key of the reference setting.
    """
    flats = [_flat(r["config"]) for r in runs]
    keys = sorted(k for k in set().union(*flats) if k not in ignore
                  and len({json.dumps(f.get(k)) for f in flats}) > 1)
    majority = {}
    for k in keys:
        values = [json.dumps(f.get(k)) for f in flats]
        top = max(set(values), key=values.count)
        if values.count(top) * 2 > len(values):
            majority[k] = top
    labels = []
    for f in flats:
        shown = [k for k in keys if majority.get(k) != json.dumps(f.get(k))]
        # Nothing varies: name the operation; a run with the common setting: 'reference'.
        labels.append(", ".join(f"{k.split('.', 1)[1]}={f.get(k)}" for k in shown)
                      or ("reference" if keys else str(f.get("task.operation"))))
    return labels


def _groups(runs: list[dict]) -> dict[str, list[dict]]:
    """The runs of a sweep by setting (every key that varies but the seed), in path order."""
    groups: dict[str, list[dict]] = {}
    for run, label in zip(runs, line_labels(runs, ignore=("training.seed",))):
        groups.setdefault(label, []).append(run)
    return groups


def _panels(n: int, width: float, height: float, cols: int = 3):
    plt = _plt()
    cols = min(n, cols)
    rows = math.ceil(n / cols)
    # constrained_layout takes a minute for 25 panels; past a few, fixed margins sized for a
    # three-line title and the axis labels do as well
    few = n <= 6
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             constrained_layout=few)
    if not few:
        fig.subplots_adjust(left=0.8 / (width * cols), right=1 - 0.3 / (width * cols), wspace=0.35,
                            top=1 - 0.7 / (height * rows), bottom=0.6 / (height * rows), hspace=0.75)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def _accuracy_panel(ax, group: list[dict], title: str) -> None:
    """Train and validation accuracy of every run in ``group`` (the seeds of one setting)."""
    for run in group:
        m = read_metrics(run["dir"] / "metrics.csv")
        width = 1.5 if len(group) == 1 else 1.0
        ax.plot(m["step"], m["train_acc"], color="tab:red", linewidth=width, alpha=0.8)
        ax.plot(m["step"], m["val_acc"], color="tab:green", linewidth=width, alpha=0.8)
        for key, color in (("steps_to_train_99", "tab:red"), ("steps_to_val_99", "tab:green")):
            if run["summary"].get(key):
                ax.axvline(run["summary"][key], color=color, linestyle=":", linewidth=1)
    ax.plot([], [], color="tab:red", label="train")
    ax.plot([], [], color="tab:green", label="validation")
    ax.set(xscale="log", xlabel="optimization steps", ylabel="accuracy", ylim=(-0.02, 1.02))
    ax.set_title(wrap(title), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", fontsize=8)


def _task_name(t: dict) -> str:
    """A run's task (its config.json "task") in a few words (tasks.task_name)."""
    return task_name(SimpleNamespace(**{**dataclasses.asdict(TaskConfig()), **t}))


def has_operand_embedding(run: dict) -> bool:
    """Whether a run's rows are operand tokens (an embedding to draw), not input vectors."""
    return not FAMILIES[run["config"]["task"].get("family", "table")].vectors


def _setting(run: dict) -> str:
    t = run["config"]["task"]
    return f"{_task_name(t)}, {t['train_fraction']:.0%} of the table for training"


def accuracy_curves(source, out: Path) -> Path:
    """Figure 1 for a run; for a sweep, a panel per setting with every seed's curves in it."""
    runs = find_runs(source)
    if len(runs) == 1:
        fig, axes = _panels(1, 6, 4)
        _accuracy_panel(axes[0], runs, _setting(runs[0]))
        return _save(fig, Path(out))
    groups = _groups(runs)
    fig, axes = _panels(len(groups), 4.5, 3.4)
    for ax, (label, group) in zip(axes, groups.items()):
        seeds = ", ".join(str(r["config"]["training"]["seed"]) for r in group)
        _accuracy_panel(ax, group, f"{label} (seeds {seeds})")
    return _save(fig, Path(out))


def _by_line_and_fraction(runs):
    groups: dict[str, dict[float, list[dict]]] = {}
    for run, label in zip(runs, line_labels(runs)):
        groups.setdefault(label, {}).setdefault(run["config"]["task"]["train_fraction"], []).append(run)
    return groups


def steps_vs_fraction(sweep_dir: Path, out: Path) -> Path:
    """Median steps to 99% validation; a seed that never got there counts as infinitely late, so a
    fraction where half the seeds or more never generalized has no point."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for i, (label, by_frac) in enumerate(sorted(_by_line_and_fraction(find_runs(sweep_dir)).items())):
        xs, med, lo, hi = [], [], [], []
        for frac in sorted(by_frac):
            # The sweep summary's quartiles, so the band agrees with its table.
            values = _steps(r["summary"]["steps_to_val_99"] for r in by_frac[frac])
            q1, q2, q3 = (quantile(values, q) for q in (0.25, 0.5, 0.75))
            if math.isfinite(q2):
                xs.append(frac)
                med.append(q2)
                lo.append(q1)
                hi.append(q3 if math.isfinite(q3) else np.nan)
        if xs:
            line = ax.plot(xs, med, label=label, **line_style(i))[0]
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
    ax.set(yscale="log", xlabel="training data fraction", ylabel="steps until validation accuracy 99%",
           title="Time to generalize (median, band: quartiles over seeds)")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
    return _save(fig, Path(out))


def best_val_vs_fraction(sweep_dir: Path, out: Path, title="Best validation accuracy within the budget") -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for i, (label, by_frac) in enumerate(sorted(_by_line_and_fraction(find_runs(sweep_dir)).items())):
        xs = sorted(by_frac)
        ys = [statistics.mean(r["summary"]["best_val_acc"] for r in by_frac[f]) for f in xs]
        ax.plot(xs, ys, label=label, **line_style(i))
    ax.set(xlabel="training data fraction", ylabel="best validation accuracy (mean over seeds)",
           ylim=(-0.02, 1.02), title=title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
    return _save(fig, Path(out))


# Config keys that make a run an intervention of Figure 2 (left): how it is optimized or regularized.
INTERVENTION_KEYS = ("optimizer.", "model.dropout", "model.init_scale", "training.batch_size")


def varied_interventions(runs: list[dict]) -> list[str]:
    """The optimizer and regularization keys whose values differ across ``runs``."""
    flats = [_flat(r["config"]) for r in runs]
    return sorted(k for k in set().union(*flats) if k.startswith(INTERVENTION_KEYS)
                  and len({json.dumps(f.get(k)) for f in flats}) > 1)


def interventions(sweep_dir: Path, out: Path) -> Path:
    return best_val_vs_fraction(sweep_dir, out, title="Interventions: best validation accuracy")


def seed_curves(sweep_dir: Path, out: Path) -> Path:
    """Every seed's validation accuracy, a panel per setting (seeds share a panel's axes)."""
    from .experiment import DROP, replay

    panels = _groups(find_runs(sweep_dir))
    fig, axes = _panels(len(panels), 4.5, 3.6, cols=4)
    for ax, (label, group) in zip(axes, panels.items()):
        drops = []
        for run in group:
            m = read_metrics(run["dir"] / "metrics.csv")
            record = replay(m)
            drops.append("-" if record.first99["val"] is None else str(record.drops))
            ax.plot(m["step"], m["val_acc"], linewidth=1,
                    label=f"seed {run['config']['training']['seed']}")
        ax.axhline(DROP, color="grey", linestyle=":", linewidth=1)
        ax.set(xlabel="optimization steps", ylim=(-0.02, 1.02),
               title=f"{wrap(label)}\ndrops below {DROP} after val 99%: {', '.join(drops)}")
        ax.title.set_fontsize(9)
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    return _save(fig, Path(out))


def operand_embedding(run: dict) -> np.ndarray:
    """The final operand embedding of a run, one row per operand token, in float64: what its model
    answers (``operand_embedding``), the rows the Fourier measures read, whatever the model or its
    input."""
    config = config_from_dict(run["config"])
    table = build_task(config.task)
    model = build_model(config, table.n_tokens, table.n_classes)
    params = load_checkpoint(run["dir"] / CHECKPOINT)[1]
    return np.asarray(model.operand_embedding(params), dtype=np.float64)


def _embedding_panel(fig, ax, run: dict, title: str) -> None:
    """First two principal components of the operand embedding rows (``operand_embedding``).

    For a modular operation the points are coloured by k*x mod p, k the key frequency: on a circle
    of frequency k, residue x sits at angle 2 pi k x / p, so this colouring runs around it. A run
    that never generalized has no circle to find; it is coloured by x and says so.
    """
    embed = operand_embedding(run)
    modular = not is_permutation_op(run["config"]["task"]["operation"])
    n = len(embed)
    xy, explained = principal_components(embed, with_share=True)
    generalized = run["summary"].get("grokked", True)
    if modular and generalized:
        k = key_frequency(embed)
        colour, label = k * np.arange(n) % n, f"{k} * x mod {n}  (key frequency k = {k})"
    else:
        colour, label = np.arange(n), "x" if modular else "element"
        if not generalized:
            title += "\nnever reached val 99%: no circle to expect"
    points = ax.scatter(xy[:, 0], xy[:, 1], c=colour, cmap="hsv", s=14)
    fig.colorbar(points, ax=ax, label=label)
    ax.set(xlabel=f"PC1 ({explained[0]:.0%} of variance)", ylabel=f"PC2 ({explained[1]:.0%})")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")


def embedding_pca(source, out: Path) -> Path:
    """The embedding PCA of a run; for a sweep, a panel per setting, from its lowest seed (named)."""
    runs = find_runs(source)
    for run in runs:
        if not (run["dir"] / CHECKPOINT).exists():
            raise ConfigError(f"{str(run['dir'])!r} has no {CHECKPOINT} with the final parameters")
    if len(runs) == 1:
        fig, axes = _panels(1, 5.5, 5)
        _embedding_panel(fig, axes[0], runs[0], f"Operand embeddings, {_task_name(runs[0]['config']['task'])}")
        return _save(fig, Path(out))
    groups = _groups(runs)
    fig, axes = _panels(len(groups), 4.6, 4.2)
    for ax, (label, group) in zip(axes, groups.items()):
        run = min(group, key=lambda r: r["config"]["training"]["seed"])
        _embedding_panel(fig, ax, run, wrap(f"{label}, seed {run['config']['training']['seed']}"))
    return _save(fig, Path(out))


def _read_run(run: dict) -> dict[str, list[float]]:
    """metrics.csv and measures.csv of a run as columns, joined on the step."""
    columns = read_metrics(run["dir"] / "metrics.csv")
    if (run["dir"] / MEASURES_CSV).exists():
        measured = read_metrics(run["dir"] / MEASURES_CSV)
        at = {step: i for i, step in enumerate(measured.get("step", []))}
        rows = [at.get(step) for step in columns["step"]]
        for key, values in measured.items():
            if key != "step":
                columns[key] = [math.nan if i is None else values[i] for i in rows]
    return columns


def _header(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return fh.readline().rstrip("\r\n").split(",")


def _measure_panels(data: list[dict]) -> list[tuple]:
    present = set().union(*data)
    panels = [(title, [c for c in cols if c in present], log) for title, cols, log in MEASURE_PANELS]
    return [p for p in panels if p[1]]


def progress_measures(source, out: Path) -> Path:
    """The measures against steps: one run's curves, or each setting's median over seeds with the
    interquartile band."""
    runs = find_runs(source)
    groups = _groups(runs) if len(runs) > 1 else {_setting(runs[0]): runs}
    data = {id(r): _read_run(r) for r in runs}  # each run's files read once
    panels = _measure_panels(list(data.values()))
    fig, axes = _panels(len(panels), 4.6, 3.3)
    colours = _plt().rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, columns, log) in zip(axes, panels):
        for g, (label, group) in enumerate(groups.items()):
            group_data = [data[id(r)] for r in group]
            for c, column in enumerate(columns):
                colour = colours[(g * len(columns) + c) % len(colours)]
                name = column if len(groups) == 1 else f"{label}: {column}"
                steps, median, low, high = _median_band(group_data, column)
                ax.plot(steps, median, color=colour, label=wrap(name, 40), **line_style(c))
                if len(group) > 1:
                    ax.fill_between(steps, low, high, color=colour, alpha=0.2, linewidth=0)
            for run in group:
                if run["summary"].get("steps_to_val_99"):
                    ax.axvline(run["summary"]["steps_to_val_99"], color="tab:green", linestyle=":", linewidth=1)
        ax.set(xscale="log", xlabel="optimization steps", yscale="log" if log else "linear")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, Path(out))


def _median_band(data: list[dict], column: str):
    """Steps, and the median, first and third quartile over the runs of a column (NaN-free)."""
    by_step: dict[float, list[float]] = {}
    for columns in data:
        for step, value in zip(columns["step"], columns.get(column, [])):
            if math.isfinite(value):
                by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    return (steps, [statistics.median(by_step[s]) for s in steps],
            [quantile(by_step[s], 0.25) for s in steps], [quantile(by_step[s], 0.75) for s in steps])


def key_frequencies(source, out: Path) -> Path:
    """Each frequency's norm as a share of the largest at that evaluation, against the evaluation:
    the few key frequencies of a generalizing network stand out as they form."""
    runs = find_runs(source)
    groups = _groups(runs) if len(runs) > 1 else {_setting(runs[0]): runs}
    fig, axes = _panels(len(groups), 5.5, 3.6)
    for ax, (label, group) in zip(axes, groups.items()):
        run = min(group, key=lambda r: r["config"]["training"]["seed"])
        m = read_metrics(run["dir"] / MEASURES_CSV)
        keys = sorted((k for k in m if k.startswith("freq_norm_")), key=lambda k: int(k.rsplit("_", 1)[1]))
        norms = np.array([m[k] for k in keys])  # (frequencies, evaluations)
        share = norms / np.maximum(norms.max(axis=0, keepdims=True), 1e-300)
        image = ax.imshow(share, aspect="auto", origin="lower", cmap="magma", interpolation="nearest",
                          extent=(-0.5, share.shape[1] - 0.5, 0.5, len(keys) + 0.5))
        ticks = np.unique(np.linspace(0, share.shape[1] - 1, 6).round().astype(int))
        ax.set_xticks(ticks, [str(int(m["step"][t])) for t in ticks])
        ax.set(xlabel="evaluation (labelled by step; log-spaced early)", ylabel="frequency k")
        ax.set_title(wrap(f"{label}, seed {run['config']['training']['seed']}"), fontsize=9)
        fig.colorbar(image, ax=ax, label="norm / largest norm")
    return _save(fig, Path(out))


def neurons_by_frequency(run_dir: Path, out: Path) -> Path:
    """Nanda et al.'s neurons clustered by frequency: the last hidden layer's neurons (at the answer,
    over the whole table of a modular task) as rows, the share of each one's variance at each
    frequency (analysis.frequency_shares_2d) as columns, sorted by their strongest frequency; beside
    it, how many neurons have each frequency as their strongest."""
    from .analysis import frequency_shares_2d
    from .runs import open_run

    run = open_run(run_dir)
    name = [n for n in run.model.activation_names if n.endswith("mlp.hook_post")][-1]  # the last hidden layer
    acts = run.run_with_cache(names=[name])[1][name]
    acts = acts[:, -1] if acts.ndim == 3 else acts
    acts = acts - acts.mean(axis=0)
    live = (acts ** 2).sum(axis=0) > 1e-12 * max((acts ** 2).sum(axis=0).max(), 1e-300)
    shares = frequency_shares_2d(acts[:, live])
    order = np.lexsort((-shares.max(axis=1), shares.argmax(axis=1)))
    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    image = ax.imshow(shares[order], aspect="auto", cmap="magma", interpolation="nearest",
                      extent=(0.5, shares.shape[1] + 0.5, len(order) - 0.5, -0.5))
    ax.set(xlabel="frequency k", ylabel=f"neuron ({int(live.sum())} active, sorted by strongest frequency)")
    fig.colorbar(image, ax=ax, label="share of the neuron's variance")
    counts = np.bincount(shares.argmax(axis=1) + 1, minlength=shares.shape[1] + 1)[1:]
    bx.bar(np.arange(1, len(counts) + 1), counts, color="tab:blue")
    bx.set(xlabel="strongest frequency k", ylabel="neurons")
    fig.suptitle(wrap(f"{name} of {run_dir}, step {run.summary['steps']}"), fontsize=9)
    return _save(fig, Path(out))


def attention_patterns(run_dir: Path, out: Path) -> Path:
    """The attention from the answer position ("=") to the x token, per head of the last block,
    over the whole table as a p x p image (x down, y across): periodic in x and y where the heads
    read the key frequencies."""
    from .runs import open_run

    run = open_run(run_dir)
    name = f"blocks.{run.model.n_layers - 1}.attn.hook_pattern"
    pattern = run.run_with_cache(names=[name])[1][name][:, :, -1, 0]  # (rows, heads): "=" attending to x
    p = run.config.task.p
    plt = _plt()
    heads = pattern.shape[1]
    fig, axes = plt.subplots(1, heads, figsize=(3.2 * heads, 3.3), squeeze=False)
    for h, ax in enumerate(axes[0]):
        image = ax.imshow(pattern[:, h].reshape(p, p), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set(title=f"head {h}", xlabel="y", ylabel="x")
    fig.colorbar(image, ax=list(axes[0]), label='attention from "=" to x')
    fig.suptitle(wrap(f"{name} of {run_dir}, step {run.summary['steps']}"), fontsize=9)
    return _save(fig, Path(out))


def draw(source: Path, out_dir: Path, which=FIGURES, note=None) -> list[Path]:
    """Draw the figures named in ``which`` that ``source`` (a run or a sweep) supports; ``note``
    (default: stderr) hears of each one left out and why."""
    source, out_dir = Path(source), Path(out_dir)
    note = note or (lambda line: print(f"make_figures: {line}", file=sys.stderr))
    unknown = [w for w in which if w not in FIGURES]
    if unknown:
        raise ConfigError(f"unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)}")
    runs = find_runs(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    single = len(runs) == 1
    made = []
    for name in which:
        if name == "curves":
            made.append(accuracy_curves(source, out_dir / "fig1_accuracy.png"))
        elif name == "measures":
            missing = [r for r in runs if not (r["dir"] / MEASURES_CSV).exists()]
            if missing:
                note(f"measures: skipped, {str(missing[0]['dir'])!r} has no {MEASURES_CSV} "
                     "(train with --override output.measures=all)")
                continue
            made.append(progress_measures(source, out_dir / "progress_measures.png"))
            if all("freq_norm_1" in _header(r["dir"] / MEASURES_CSV) for r in runs):
                made.append(key_frequencies(source, out_dir / "key_frequencies.png"))
        elif name == "embeddings":
            missing = [r for r in runs if not (r["dir"] / CHECKPOINT).exists()]
            vectors = [r for r in runs if not has_operand_embedding(r)]
            if vectors:
                note(f"embeddings: skipped, task.family={vectors[0]['config']['task']['family']} has no operand "
                     "embedding (its rows are input vectors)")
            elif missing:
                note(f"embeddings: skipped, {str(missing[0]['dir'])!r} has no {CHECKPOINT}")
            else:
                made.append(embedding_pca(source, out_dir / "embeddings_pca.png"))
        elif name == "circuits":
            from .measures import _additive

            why = "it draws one run" if not single else _additive(config_from_dict(runs[0]["config"]).task) \
                or (None if (runs[0]["dir"] / CHECKPOINT).exists() else f"the run has no {CHECKPOINT}")
            if why:
                note(f"circuits: skipped, {why}")
                continue
            made.append(neurons_by_frequency(runs[0]["dir"], out_dir / "neurons.png"))
            if config_from_dict(runs[0]["config"]).model.type == "transformer":
                made.append(attention_patterns(runs[0]["dir"], out_dir / "attention.png"))
        elif single:
            note(f"{name}: skipped, it compares runs and {str(source)!r} holds one")
        elif name == "phases":
            from . import phases

            try:
                made.append(phases.draw(phases.diagram(runs), out_dir / "phases.png"))
            except ConfigError as err:
                note(f"phases: skipped, {err}")
        elif name == "interventions" and not varied_interventions(runs):
            note("interventions: skipped, the sweep varies no optimizer or regularization setting "
                 f"({', '.join(INTERVENTION_KEYS)})")
        else:
            fn = {"fraction": steps_vs_fraction, "best": best_val_vs_fraction,
                  "interventions": interventions, "seeds": seed_curves}[name]
            made.append(fn(source, out_dir / f"{name}.png"))
    return made
