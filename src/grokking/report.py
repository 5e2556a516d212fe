"""``make_report SOURCE``: one self-contained HTML file for a run or a sweep, to look at in a browser.

It loads nothing from the network, so it opens from disk or from an e-mail attachment. The data of
every chart is embedded as JSON and drawn as inline SVG by a small script in the page (``REPORT_JS``
below, about 150 lines): hovering reads the values at a step, dragging across a chart zooms into
those steps, a double click zooms out, and a button switches the step axis between log and linear.
No plotting library is inlined: the smallest that draws this (uPlot) is not on PyPI, and Plotly's
bundle alone is 3.5 MB, against ~2 KB of data per run here. The paper's figures, which matplotlib
already draws, are inlined as PNG.

For a run: its config, its summary, accuracy and loss curves with the two 99% steps marked, the
weight norm, the columns of measures.csv where a run recorded one, and the embedding PCA.
For a sweep: a table per setting (preset and grid point) with medians and quartiles, a table per
run, each row linking to that run's section; every seed's curves of a setting on axes shared
across settings, with the quartile band of validation accuracy; and the paper's figures that apply.
"""

from __future__ import annotations

import base64
import html
import json
import math
import tempfile
from pathlib import Path

from .artifacts import CHECKPOINT, MEASURES_CSV, REPORT, write_atomic
from .errors import ConfigError
from .plotting import read_metrics

TRAIN, VAL, OTHER = "#d62728", "#2ca02c", "#1f77b4"
PALETTE = (OTHER, "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
SUMMARY_KEYS = ("status", "steps", "steps_to_train_99", "steps_to_val_99", "grok_delay", "final_train_acc",
                "final_val_acc", "best_val_acc", "val_drops_after_99", "min_val_acc_after_99",
                "time_to_val_99_s", "wall_time_s", "steps_per_s", "n_params", "n_train", "n_val")


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _table(header: list[str], rows: list[list], links: list[str | None] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = [html.escape(_fmt(c)) for c in row]
        if links and links[i]:
            cells[0] = f'<a href="#{links[i]}">{cells[0]}</a>'
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _png(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _anchor(run: dict, root: Path) -> str:
    rel = run["dir"].relative_to(root).as_posix() if run["dir"] != root else "run"
    return "run-" + "".join(c if c.isalnum() or c in "-_." else "-" for c in rel)


def _marks(summary: dict) -> list[dict]:
    return [{"x": summary[key], "color": color, "label": f"{which} 99% @ {summary[key]}"}
            for key, color, which in (("steps_to_train_99", TRAIN, "train"), ("steps_to_val_99", VAL, "val"))
            if summary.get(key)]


def _measures(run_dir: Path) -> dict[str, list[float]]:
    path = run_dir / MEASURES_CSV
    return read_metrics(path) if path.exists() else {}


def _measure_charts(columns: list[str]) -> list[tuple[str, list[str], bool]]:
    """measures.csv's columns as charts: the panels of progress_measures.png, every parameter's norm
    in one chart, any other column in its own; the per-frequency norms are left to the
    key_frequencies figure."""
    from .figures import MEASURE_PANELS

    charts, covered = [], set()
    for title, panel, logy in MEASURE_PANELS:
        present = [c for c in panel if c in columns]
        if present:
            charts.append((title, present, logy))
            covered.update(present)
    norms = [c for c in columns if c.startswith("norm_") and c not in covered]
    if norms:
        charts.append(("parameter norms", norms, True))
    rest = [c for c in columns if c not in covered and c not in norms and not c.startswith("freq_norm_")]
    return charts + [(c, [c], False) for c in rest]


class _Charts:
    """Chart specs, keyed by the id of the div each is drawn into."""

    def __init__(self):
        self.specs: dict[str, dict] = {}

    def add(self, title: str, series: list[dict], ylabel: str, marks=(), logy=False,
            ylim=None, shared=None) -> str:
        key = f"c{len(self.specs)}"
        self.specs[key] = {"title": title, "series": series, "ylabel": ylabel, "marks": list(marks),
                           "logy": logy, "ylim": ylim, "shared": shared}
        return f'<div class="chart" id="{key}"></div>'


def _finite(values):
    """Values for a chart: 6 significant digits (a chart shows 3; a full float64 triples the file),
    non-finite ones as gaps."""
    return [float(f"{v:.6g}") if isinstance(v, (int, float)) and math.isfinite(v) else None for v in values]


def _steps(values):
    return [int(v) for v in values]


def _run_section(run: dict, root: Path, charts: _Charts, heading: str, embeddings: bool) -> str:
    m = read_metrics(run["dir"] / "metrics.csv")
    s = run["summary"]
    marks = _marks(s)
    parts = [f'<section id="{_anchor(run, root)}"><h2>{html.escape(heading)}</h2>']
    parts.append(_table(["summary", "value"], [[k, s.get(k)] for k in SUMMARY_KEYS if k in s]))
    config = {k: v for k, v in run["config"].items() if k != "meta"}
    parts.append("<details><summary>config</summary><pre>"
                 f"{html.escape(json.dumps(config, indent=2))}</pre></details>")
    parts.append('<div class="row">')
    parts.append(charts.add("accuracy", [
        {"name": "train", "color": TRAIN, "x": _steps(m["step"]), "y": _finite(m["train_acc"])},
        {"name": "validation", "color": VAL, "x": _steps(m["step"]), "y": _finite(m["val_acc"])}],
        "accuracy", marks, ylim=[0, 1]))
    parts.append(charts.add("loss", [
        {"name": "train", "color": TRAIN, "x": _steps(m["step"]), "y": _finite(m["train_loss"])},
        {"name": "validation", "color": VAL, "x": _steps(m["step"]), "y": _finite(m["val_loss"])}],
        "cross-entropy", marks, logy=True))
    parts.append(charts.add("weight norm", [
        {"name": "weight norm", "color": OTHER, "x": _steps(m["step"]), "y": _finite(m["weight_norm"])}], "L2 norm",
        marks))
    measures = _measures(run["dir"])
    for title, columns, logy in _measure_charts([c for c in measures if c != "step"]):
        parts.append(charts.add(title, [{"name": c, "color": PALETTE[i % len(PALETTE)], "x": _steps(measures["step"]),
                                         "y": _finite(measures[c])} for i, c in enumerate(columns)],
                                title if len(columns) > 1 else columns[0], marks, logy=logy))
    parts.append("</div>")
    from .figures import embedding_pca, has_operand_embedding

    if embeddings and has_operand_embedding(run) and (run["dir"] / CHECKPOINT).exists():
        with tempfile.TemporaryDirectory() as tmp:
            parts.append(_png(embedding_pca(run["dir"], Path(tmp) / "pca.png"), "embedding PCA"))
    parts.append("</section>")
    return "".join(parts)


def _quartiles(columns: list[list[float | None]]) -> tuple[list, list, list]:
    """Per step, the 25th, 50th and 75th percentile over the runs that reached that step."""
    from .sweeps import quantile

    lo, med, hi = [], [], []
    for values in zip(*columns):
        present = [v for v in values if v is not None]
        for out, q in ((lo, 0.25), (med, 0.5), (hi, 0.75)):
            out.append(quantile(present, q) if present else None)
    return lo, med, hi


def _group_chart(label: str, group: list[dict], charts: _Charts) -> str:
    """Every seed's train and validation accuracy on one chart, with validation's quartile band."""
    metrics = [read_metrics(r["dir"] / "metrics.csv") for r in group]
    steps = sorted({int(s) for m in metrics for s in m["step"]})
    columns = []
    series = []
    for run, m in zip(group, metrics):
        seed = run["config"]["training"]["seed"]
        train, val = _finite(m["train_acc"]), _finite(m["val_acc"])
        series.append({"name": f"train, seed {seed}", "color": TRAIN, "x": _steps(m["step"]), "y": train,
                       "width": 1, "opacity": 0.5})
        series.append({"name": f"val, seed {seed}", "color": VAL, "x": _steps(m["step"]), "y": val, "width": 1})
        at = dict(zip(_steps(m["step"]), val))
        columns.append([at.get(s) for s in steps])
    lo, med, hi = _quartiles(columns)
    series.insert(0, {"name": "val median, band: quartiles", "color": VAL, "x": steps, "y": med, "lo": lo, "hi": hi,
                      "width": 2.5})
    return charts.add(f"{label}: {len(group)} seeds", series, "accuracy", ylim=[0, 1], shared="sweep")


def _sweep_body(root: Path, runs: list[dict], charts: _Charts) -> str:
    from .figures import FIGURES, _groups, draw
    from .sweeps import aggregate

    groups = _groups(runs)
    anchors = {id(r): _anchor(r, root) for r in runs}
    rows = [{**r["summary"], "group": label, "preset": label, "status": r["summary"].get("status", "completed")}
            for label, g in groups.items() for r in g]
    agg = aggregate(rows)
    parts = ["<h2>Settings</h2>", _table(
        ["setting", "runs", "grokked", "median train 99%", "median val 99%", "val 99% q25", "val 99% q75",
         "median best val", "failed"],
        [[label, a["runs"], a["grokked"], a["median_steps_to_train_99"], a["median_steps_to_val_99"],
          a["q25_steps_to_val_99"], a["q75_steps_to_val_99"], a["median_best_val_acc"], a["failed"]]
         for label, a in agg.items()],
        [anchors[id(groups[label][0])] for label in agg]),
        "<p>A seed that never reached 99% counts as infinitely late: a median or quartile it decides is "
        "shown as -.</p>", "<h2>Runs</h2>"]
    ordered = [r for g in groups.values() for r in g]
    parts.append(_table(
        ["run", "setting", "seed", "status", "train 99%", "val 99%", "best val", "drops after val 99%"],
        [[r["dir"].relative_to(root).as_posix(), label, r["config"]["training"]["seed"],
          r["summary"].get("status"), r["summary"].get("steps_to_train_99"),
          r["summary"].get("steps_to_val_99"), r["summary"].get("best_val_acc"),
          r["summary"].get("val_drops_after_99")] for label, g in groups.items() for r in g],
        [anchors[id(r)] for r in ordered]))
    parts.append("<h2>Every seed, by setting</h2><p>Thin lines: each seed (train red, validation "
                 "green); thick: the validation median, its band the quartiles. The axes are shared.</p>")
    parts.append('<div class="row">' + "".join(_group_chart(label, g, charts) for label, g in groups.items())
                 + "</div>")
    parts.append("<h2>The paper's figures</h2><div class=row>")
    notes = []
    # Figure 1 of every setting is the interactive chart above; the PCA belongs to a run's report.
    shown = [f for f in FIGURES if f not in ("curves", "embeddings")]
    with tempfile.TemporaryDirectory() as tmp:
        for path in draw(root, Path(tmp), shown, note=notes.append):
            parts.append(_png(path, path.stem))
    parts.append("</div>")
    parts.extend(f"<p class=note>{html.escape(n)}</p>" for n in notes)
    parts.append("<h2>Each run</h2>")
    for label, g in groups.items():
        for r in g:
            parts.append(_run_section(r, root, charts, f"{label}, seed {r['config']['training']['seed']}",
                                      embeddings=False))
    return "".join(parts)


def make_report(source, out=None) -> Path:
    """Write the report of the run or sweep in ``source`` to ``out`` (default SOURCE/report.html)."""
    from .figures import find_runs

    root = Path(source)
    runs = find_runs(root)  # ConfigError when there is nothing to report
    out = Path(out) if out else root / REPORT
    if out.exists() and out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a directory; give a file name such as report.html")
    charts = _Charts()
    if len(runs) == 1 and runs[0]["dir"] == root:
        run = runs[0]
        title = f"run {run['summary'].get('name') or root.name}"
        body = _run_section(run, root, charts, title, embeddings=True)
    else:
        title = f"sweep {root.resolve().name}: {len(runs)} runs"
        body = _sweep_body(root, runs, charts)
    data = json.dumps(charts.specs, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{REPORT_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class=note>Drag across a chart to zoom into those steps, double-click to zoom out; "
            f"hover to read values.</p>{body}"
            f'<script type="application/json" id="charts">{data}</script><script>{REPORT_JS}</script>'
            "</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, page.encode())
    return out


REPORT_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1300px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}td,th{border:1px solid #ddd;padding:2px 8px;
text-align:right}td:first-child,th:first-child{text-align:left}thead{background:#f4f4f4}
.row{display:flex;flex-wrap:wrap;gap:10px}.chart{width:420px;height:280px;position:relative}
.chart svg{width:100%;height:100%;user-select:none}.chart button{position:absolute;right:4px;top:2px;
font-size:11px}.tip{position:absolute;pointer-events:none;background:#fffe;border:1px solid #aaa;
font-size:11px;padding:2px 5px;white-space:nowrap;display:none}img{max-width:640px;width:100%}figure{margin:0}
.note{color:#666;font-size:12px}pre{background:#f8f8f8;padding:.5em;font-size:12px}
section{margin-bottom:1.5em}
"""

REPORT_JS = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var specs = JSON.parse(document.getElementById("charts").textContent);
  var W = 420, H = 280, L = 52, R = 10, T = 22, B = 34;
  function el(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v) { return v === null || v === undefined ? "-" : (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3)) ? v.toExponential(2) : +v.toPrecision(4) + ""; }
  function ticks(lo, hi, log) {
    var out = [];
    if (log) {
      for (var e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
        var v = Math.pow(10, e); if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
      }
      if (out.length >= 2) return out;
      out = [];  // less than a decade: linear ticks read better
    }
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / 4 || 1)));
    if ((hi - lo) / step > 10) step *= 2; if ((hi - lo) / step > 10) step *= 2.5;
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toPrecision(12));
    return out;
  }
  // The step range every chart of a group shares ("shared": the sweep's curves).
  var sharedX = {};
  Object.keys(specs).forEach(function (id) {
    var s = specs[id]; if (!s.shared) return;
    s.series.forEach(function (se) { se.x.forEach(function (x) {
      var r = sharedX[s.shared] = sharedX[s.shared] || [Infinity, -Infinity];
      if (x > 0) { r[0] = Math.min(r[0], x); r[1] = Math.max(r[1], x); } }); });
  });
  function draw(div, spec, state) {
    div.innerHTML = "";
    var svg = el("svg", {viewBox: "0 0 " + W + " " + H}, div);
    var xs = [], ys = [];
    spec.series.forEach(function (se) {
      se.x.forEach(function (x, i) {
        if (x < state.x0 || x > state.x1) return;
        [se.y[i], se.lo && se.lo[i], se.hi && se.hi[i]].forEach(function (y) {
          if (y !== null && y !== undefined && (!spec.logy || y > 0)) ys.push(y); });
      });
    });
    var y0 = spec.ylim ? spec.ylim[0] : Math.min.apply(null, ys.length ? ys : [0]);
    var y1 = spec.ylim ? spec.ylim[1] : Math.max.apply(null, ys.length ? ys : [1]);
    if (y1 <= y0) y1 = y0 + 1;
    if (spec.logy && y0 <= 0) y0 = y1 / 1e6;
    var lx = state.logx, ly = spec.logy;
    function tx(v) { return lx ? Math.log10(v) : v; } function ty(v) { return ly ? Math.log10(v) : v; }
    var ax0 = tx(state.x0), ax1 = tx(state.x1), ay0 = ty(y0), ay1 = ty(y1);
    if (ax1 <= ax0) ax1 = ax0 + 1;
    function px(v) { return L + (tx(v) - ax0) / (ax1 - ax0) * (W - L - R); }
    function py(v) { return H - B - (ty(Math.max(v, ly ? y0 : -Infinity)) - ay0) / (ay1 - ay0) * (H - T - B); }
    el("rect", {x: L, y: T, width: W - L - R, height: H - T - B, fill: "#fff", stroke: "#999"}, svg);
    var clip = "clip" + div.id;
    el("rect", {x: L, y: T, width: W - L - R, height: H - T - B}, el("clipPath", {id: clip}, el("defs", {}, svg)));
    ticks(state.x0, state.x1, lx).forEach(function (t) {
      el("line", {x1: px(t), x2: px(t), y1: T, y2: H - B, stroke: "#eee"}, svg);
      el("text", {x: px(t), y: H - B + 14, "text-anchor": "middle", "font-size": 10}, svg).textContent = fmt(t);
    });
    ticks(y0, y1, ly).forEach(function (t) {
      el("line", {x1: L, x2: W - R, y1: py(t), y2: py(t), stroke: "#eee"}, svg);
      el("text", {x: L - 4, y: py(t) + 3, "text-anchor": "end", "font-size": 10}, svg).textContent = fmt(t);
    });
    el("text", {x: L + (W - L - R) / 2, y: H - 4, "text-anchor": "middle", "font-size": 11}, svg).textContent =
      "optimization step" + (lx ? " (log)" : "");
    el("text", {x: L, y: 15, "font-size": 12, "font-weight": "bold"}, svg).textContent = spec.title;
    el("text", {transform: "translate(12," + (T + (H - T - B) / 2) + ") rotate(-90)", "text-anchor": "middle",
                "font-size": 11}, svg).textContent = spec.ylabel;
    var g = el("g", {"clip-path": "url(#" + clip + ")"}, svg);
    spec.marks.forEach(function (m) {
      if (m.x < state.x0 || m.x > state.x1) return;
      el("line", {x1: px(m.x), x2: px(m.x), y1: T, y2: H - B, stroke: m.color, "stroke-dasharray": "4 3"}, g);
      el("title", {}, g.lastChild).textContent = m.label;
    });
    spec.series.forEach(function (se) {
      var pts = [], band = [], back = [];
      se.x.forEach(function (x, i) {
        if (x <= 0 && lx) return;
        if (se.y[i] !== null && (!ly || se.y[i] > 0)) pts.push(px(x).toFixed(1) + "," + py(se.y[i]).toFixed(1));
        if (se.lo && se.lo[i] !== null && se.hi[i] !== null) {
          band.push(px(x).toFixed(1) + "," + py(se.hi[i]).toFixed(1));
          back.unshift(px(x).toFixed(1) + "," + py(se.lo[i]).toFixed(1));
        }
      });
      if (band.length) el("polygon", {points: band.concat(back).join(" "), fill: se.color, opacity: 0.18}, g);
      el("polyline", {points: pts.join(" "), fill: "none", stroke: se.color, "stroke-width": se.width || 1.6,
                      opacity: se.opacity || 1}, g);
    });
    var names = {}, ly0 = T + 4;
    spec.series.forEach(function (se) {
      var key = se.name.split(",")[0]; if (names[key] || spec.series.length > 8 && !se.lo) return; names[key] = 1;
      el("line", {x1: W - R - 92, x2: W - R - 78, y1: ly0 + 6, y2: ly0 + 6, stroke: se.color, "stroke-width": 2}, svg);
      el("text", {x: W - R - 74, y: ly0 + 10, "font-size": 10}, svg).textContent = key; ly0 += 13;
    });
    var cross = el("line", {y1: T, y2: H - B, stroke: "#444", "stroke-width": 0.5, visibility: "hidden"}, svg);
    var sel = el("rect", {y: T, height: H - T - B, fill: "#1f77b4", opacity: 0.15, visibility: "hidden"}, svg);
    var tip = document.createElement("div"); tip.className = "tip"; div.appendChild(tip);
    var btn = document.createElement("button"); btn.textContent = lx ? "linear steps" : "log steps";
    btn.onclick = function () { state.logx = !state.logx; if (!state.logx && state.x0 === state.base0) state.x0 = 0;
      if (state.logx && state.x0 <= 0) state.x0 = state.base0; draw(div, spec, state); };
    div.appendChild(btn);
    function stepAt(evt) {
      var r = svg.getBoundingClientRect(), f = ((evt.clientX - r.left) / r.width * W - L) / (W - L - R);
      var a = ax0 + Math.min(Math.max(f, 0), 1) * (ax1 - ax0); return lx ? Math.pow(10, a) : a;
    }
    var dragFrom = null;
    svg.addEventListener("mousedown", function (e) { dragFrom = stepAt(e); });
    svg.addEventListener("mouseup", function (e) {
      var to = stepAt(e);
      if (dragFrom !== null && Math.abs(px(to) - px(dragFrom)) > 5) {
        state.x0 = Math.min(dragFrom, to); state.x1 = Math.max(dragFrom, to); draw(div, spec, state);
      }
      dragFrom = null;
    });
    svg.addEventListener("dblclick", function () { state.x0 = state.logx ? state.base0 : 0; state.x1 = state.base1; draw(div, spec, state); });
    svg.addEventListener("mouseleave", function () { cross.setAttribute("visibility", "hidden"); tip.style.display = "none"; sel.setAttribute("visibility", "hidden"); });
    svg.addEventListener("mousemove", function (e) {
      var s = stepAt(e), lines = [], best = null;
      spec.series.forEach(function (se) {
        var k = -1, d = Infinity;
        se.x.forEach(function (x, i) { var dd = Math.abs(tx(Math.max(x, 1e-12)) - tx(s)); if (dd < d) { d = dd; k = i; } });
        if (k >= 0) { best = se.x[k]; if (lines.length < 12) lines.push((se.lo ? se.name.split(",")[0] : se.name) + ": " + fmt(se.y[k])); }
      });
      if (best === null) return;
      cross.setAttribute("x1", px(best)); cross.setAttribute("x2", px(best)); cross.setAttribute("visibility", "visible");
      tip.innerHTML = ""; [["step " + fmt(best)]].concat(lines.map(function (l) { return [l]; })).forEach(function (l) {
        var d = document.createElement("div"); d.textContent = l[0]; tip.appendChild(d); });
      var r = svg.getBoundingClientRect();
      tip.style.display = "block"; tip.style.left = Math.min(e.clientX - r.left + 12, r.width - 150) + "px"; tip.style.top = "24px";
      if (dragFrom !== null) { var a = px(dragFrom), b = px(s); sel.setAttribute("x", Math.min(a, b));
        sel.setAttribute("width", Math.abs(b - a)); sel.setAttribute("visibility", "visible"); }
    });
  }
  var t0 = performance.now();
  Object.keys(specs).forEach(function (id) {
    var spec = specs[id], div = document.getElementById(id), lo = Infinity, hi = -Infinity;
    spec.series.forEach(function (se) { se.x.forEach(function (x) { if (x > 0) { lo = Math.min(lo, x); hi = Math.max(hi, x); } }); });
    if (spec.shared) { lo = sharedX[spec.shared][0]; hi = sharedX[spec.shared][1]; }
    if (!isFinite(lo)) { lo = 1; hi = 10; }
    if (hi <= lo) hi = lo * 10;
    draw(div, spec, {x0: lo, x1: hi, base0: lo, base1: hi, logx: true});
  });
  document.body.setAttribute("data-rendered", Object.keys(specs).length);
  document.body.setAttribute("data-render-ms", Math.round(performance.now() - t0));
  // report.html#selftest: hover and zoom the first chart as a user would, and say what happened
  // (read back by the tests through the DOM).
  if (location.hash === "#selftest") {
    var div = document.querySelector(".chart"), svg = div.querySelector("svg"), r = svg.getBoundingClientRect();
    function at(type, f) { svg.dispatchEvent(new MouseEvent(type, {bubbles: true, clientX: r.left + r.width * f, clientY: r.top + r.height / 2})); }
    function ticksOf() { return Array.prototype.map.call(div.querySelectorAll("svg > text[text-anchor=middle]"), function (t) { return t.textContent; }).join(" "); }
    var before = ticksOf();
    at("mousemove", 0.5);
    var tip = div.querySelector(".tip").textContent;
    at("mousedown", 0.3); at("mousemove", 0.6); at("mouseup", 0.6);
    var zoomed = ticksOf();
    div = document.querySelector(".chart"); svg = div.querySelector("svg");
    svg.dispatchEvent(new MouseEvent("dblclick", {bubbles: true}));
    var reset = ticksOf();
    div.querySelector("button").click();
    var linear = div.querySelector("svg > text[font-size='11']").textContent;
    document.body.setAttribute("data-selftest", JSON.stringify({tip: tip, before: before, zoomed: zoomed, reset: reset, linear: linear}));
  }
})();
"""
