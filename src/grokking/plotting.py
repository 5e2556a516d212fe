"""Figures drawn from a run's metrics. matplotlib is imported only here, and only when drawing."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

# Styles cycled over the lines of one axes, each thinner than the last, so that lines which
# coincide (two interventions that change nothing) stay visible one inside the other.
LINE_STYLES = [dict(linestyle=ls, marker=m) for ls, m in zip(["-", "--", "-.", ":"] * 3, "osD^vP*Xh<>p")]


def line_style(i: int) -> dict:
    return {**LINE_STYLES[i % len(LINE_STYLES)], "linewidth": max(3.0 - 0.4 * i, 1.0),
            "markersize": max(7.0 - 0.8 * i, 3.0)}


def wrap(text: str, width: int = 44) -> str:
    """Break a long label (a sweep group such as 'preset key=v key=v', a grid point 'key=v,key=v')
    after its spaces, '/' and ',' so that a title stays inside its panel."""
    lines, line = [], ""
    for piece in re.findall(r"[^/, ]+[/, ]*", text) or [text]:
        if line and len(line) + len(piece.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        line += piece
    return "\n".join([*lines, line.rstrip()])


def read_metrics(path: Path) -> dict[str, list[float]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {key: [float(r[key]) for r in rows] for key in (rows[0] if rows else [])}


def plot_curves(metrics_csv: Path, summary: dict, out_png: Path, title: str = "") -> None:
    """Accuracy and loss against step on a log x-axis, with the 99% steps marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .artifacts import write_atomic
    import io

    m = read_metrics(metrics_csv)
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, key, label in ((ax_acc, "acc", "accuracy"), (ax_loss, "loss", "loss")):
        ax.plot(m["step"], m[f"train_{key}"], color="tab:red", label="train")
        ax.plot(m["step"], m[f"val_{key}"], color="tab:green", label="validation")
        ax.set_xscale("log")
        ax.set_xlabel("optimization step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    losses = [v for key in ("train_loss", "val_loss") for v in m[key]]
    if any(math.isfinite(v) and v > 0 for v in losses):
        ax_loss.set_yscale("log")
    else:  # a run that diverged at once has no loss a log axis could show
        ax_loss.text(0.5, 0.5, "no finite loss to show", transform=ax_loss.transAxes, ha="center")
    if summary.get("status") == "diverged":
        title = f"{title}\ndiverged at step {summary.get('steps')}".strip()
    for key, color in (("steps_to_train_99", "tab:red"), ("steps_to_val_99", "tab:green")):
        step = summary.get(key)
        if step:
            for ax in (ax_acc, ax_loss):
                ax.axvline(step, color=color, linestyle="--", linewidth=1)
            ax_acc.annotate(f"{key.split('_')[2]} 99% @ {step}", (step, 0.5 if "val" in key else 0.4),
                            color=color, rotation=90, ha="right", va="center", fontsize=8)
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.legend(loc="upper left")
    if title:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    write_atomic(out_png, buf.getvalue())
