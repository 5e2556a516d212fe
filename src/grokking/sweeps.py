"""Sweeps: one run per (preset, grid point, seed), each in <out>/<preset>/[<point>/]seed_<k>/,
and their summary. A grid point sets config keys (--grid task.train_fraction=0.3,0.5); seeds of the
same preset and point are aggregated together.

All configs are resolved and every run directory checked before the first run trains, so a typo
fails at once with nothing written, not an hour into a sweep.

Runs train in worker processes (``backends``: a local pool or Dask), one core each, so a sweep on
N workers gives the same bytes as on one. The same command run again skips finished runs (they
have summary.json), resumes interrupted ones from their checkpoint and rebuilds the summary. A run
that raises or whose worker dies is retried up to ``retries`` times (one that ran out of disk
space is not: it keeps its checkpoint for a later resume); whatever happens to one run, the others
finish and the sweep summary records each run's status and error.

Two sweeps on one --out share the work: each run directory has one holder at a time
(``rundir``), and a worker that finds a run held by another process waits for it and takes its
result ("finished elsewhere") instead of training it again.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import itertools
import math
import os
import re
import sys
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from . import numerics, preemption, rundir
from .artifacts import CHECKPOINT, check_out_dir, read_json, write_atomic, write_json
from .backends import BACKENDS, check_backend, make_backend
from .checkpoint import config_difference, has_checkpoint
from .config import Config, parse_override, resolve_config
from .errors import ConfigError, WriteFailed
from .experiment import check_run_config, one_line, run_experiment

__all__ = ["BACKENDS", "run_suite", "plan_runs", "aggregate", "format_table"]

# Test-only: make chosen runs fail inside the worker, to exercise recovery without a user-facing
# setting that could do it. "<preset>/seed_<k>:exit|raise|disk-full[:<attempt>]", comma-separated;
# "exit" ends the worker process with os._exit, as a segfault or the OOM killer would; without an
# attempt number the fault strikes every attempt (see _injected_faults).
FAULT_ENV = "GROKKING_TEST_FAULT"
POLL_S = 1.0  # how often the sweep looks up from its workers, to notice a SIGTERM
RAN = ("completed", "diverged")  # statuses of a run that ended with a summary.json


@dataclass
class RunSpec:
    preset: str
    seed: int
    config: Config
    out: Path
    point: dict = field(default_factory=dict)  # the --grid values of this run, by dotted key

    @property
    def group(self) -> str:
        """What the seeds of this run are aggregated under: the preset and its grid point."""
        if not self.point:
            return self.preset
        return f"{self.preset} " + " ".join(f"{k.split('.', 1)[1]}={v}" for k, v in self.point.items())

    @property
    def name(self) -> str:
        return f"{self.group} seed {self.seed}"

    @property
    def key(self) -> str:
        """The run's path below the sweep directory, e.g. mod_add_grokking/seed_0."""
        return "/".join(self.out.parts[-(3 if self.point else 2):])


@dataclass
class Attempt:
    spec: RunSpec
    number: int = 1  # 1 for the first try of this sweep command
    fresh: bool = False  # start over instead of resuming from a checkpoint
    force: bool = False  # the sweep retrains finished runs, so a summary.json may predate it


def parse_grid(texts) -> list[tuple[str, list[str]]]:
    """['task.train_fraction=0.3,0.5', ...] -> [('task.train_fraction', ['0.3', '0.5']), ...]."""
    grid = []
    for text in texts:
        key, sep, values = text.partition("=")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not items:
            raise ConfigError(f"--grid {text!r} must look like section.key=v1,v2,..., "
                              "e.g. task.train_fraction=0.3,0.5")
        key = key.strip()
        parse_override(f"{key}={items[0]}")  # the key must exist (names the closest if not)
        if key == "training.seed":
            raise ConfigError("--grid: vary the seed with --seeds, not --grid")
        if key in (k for k, _ in grid):
            raise ConfigError(f"--grid: {key} is given twice")
        grid.append((key, items))
    return grid


def _slug(value: str) -> str:
    """A grid value as a directory name: operations like x/y and x*y stay distinct and shell-safe."""
    value = value.replace("/", "over").replace("*", "times").replace(" ", "_")
    return re.sub(r"[^A-Za-z0-9._=+^-]", "_", value)


def plan_runs(presets, seeds, out, overrides=(), curves=True, force=False, grid=()) -> list[RunSpec]:
    """One spec per preset x grid point x seed, in that order; every config resolved and every run
    directory checked before anything trains."""
    specs = []
    keys = [k for k, _ in grid]
    for preset in presets:
        for values in itertools.product(*(v for _, v in grid)):
            point = dict(zip(keys, values))
            group_dir = Path(out).absolute() / preset  # absolute: a Dask worker may start elsewhere
            if point:
                group_dir = group_dir / ",".join(f"{k.split('.', 1)[1]}={_slug(v)}" for k, v in point.items())
            for seed in seeds:
                config = resolve_config(preset, None, [*overrides, *(f"{k}={v}" for k, v in point.items()),
                                                       f"training.seed={seed}"])
                config.output.curves = curves
                config.output.progress = False  # one bar per run would flood a sweep's terminal
                check_run_config(config)
                run_dir = group_dir / f"seed_{seed}"
                check_out_dir(run_dir, force=True)  # a run already there is skipped or resumed, below
                if not force:
                    _check_same_config(run_dir, config)
                specs.append(RunSpec(preset, seed, config, run_dir, point))
    return specs


def _check_same_config(run_dir: Path, config: Config) -> None:
    """Refuse to skip or resume a run that was started with settings that change its results."""
    path = run_dir / "config.json"
    if not path.exists():
        return
    try:
        stored = read_json(path)
    except ValueError:
        return  # not a run this sweep can use: its worker starts it over
    diff = config_difference(stored, config.to_dict())
    if diff:
        raise ConfigError(f"{str(run_dir)!r} holds a run with another config: {diff}; "
                          "pass --force to replace it or choose another --out")
    summary = _finished(run_dir)
    if summary and summary["steps"] > config.training.steps:
        raise ConfigError(f"{str(run_dir)!r} holds a run of {summary['steps']} steps, more than "
                          f"training.steps={config.training.steps}; pass --force to replace it or choose another --out")


def _finished(run_dir: Path) -> dict | None:
    try:
        return read_json(run_dir / "summary.json")
    except (OSError, ValueError):
        return None


def _done(spec: RunSpec) -> dict | None:
    """The summary of the run in ``spec.out`` when it is finished for this sweep: not when a larger
    training.steps asks to train it longer (then it is resumed from its final checkpoint)."""
    summary = _finished(spec.out)
    if summary and summary["status"] == "completed" and summary["steps"] < spec.config.training.steps:
        return None
    return summary


# -- the worker side ------------------------------------------------------------------------------

def _quiet(*_):
    pass


@contextlib.contextmanager
def _injected_faults(attempt: Attempt):
    """Test hooks, from FAULT_ENV ("KEY:KIND[:ATTEMPT]", comma-separated): ``exit`` kills the
    worker, ``raise`` raises, ``disk-full`` makes every checkpoint write after the first fail
    with ENOSPC for the length of this run."""
    full = False
    for kind in _faults(attempt):
        if kind == "exit":
            os._exit(70)
        if kind == "disk-full":
            full = True
            continue
        if kind.startswith("retire-at-"):
            continue  # _worker_closing
        raise RuntimeError(f"injected fault ({FAULT_ENV})")
    with disk_full_after_first_checkpoint() if full else contextlib.nullcontext():
        yield


def _faults(attempt: Attempt):
    """The kinds of fault FAULT_ENV injects into this attempt of its run."""
    for item in filter(None, os.environ.get(FAULT_ENV, "").split(",")):
        key, kind, *when = item.strip().split(":")
        if key == attempt.spec.key and (not when or int(when[0]) == attempt.number):
            yield kind


@contextlib.contextmanager
def disk_full_after_first_checkpoint():
    """Test hook: every checkpoint write after the first fails with ENOSPC while the block runs."""
    from . import checkpoint

    real, writes = checkpoint.write_atomic, []

    def write_atomic(path, data, **kwargs):
        writes.append(path)
        if len(writes) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data, **kwargs)

    checkpoint.write_atomic = write_atomic
    try:
        yield
    finally:
        checkpoint.write_atomic = real


def _worker_closing(attempt: Attempt):
    """On a Dask worker, a callable that tells whether the worker is shutting down (retired,
    scaled down, or its ``dask worker`` process sent SIGTERM), polled by the run after each
    update; None elsewhere. The task's thread cannot have a signal handler, but it can see the
    worker's status change, and the scheduler gives the task to another worker, which resumes it."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # not in a Dask task
        return None
    closing = {"closing", "closing_gracefully", "closed"}
    retire_at = None if has_checkpoint(attempt.spec.out) else _injected_retirement(attempt)
    polls = [0]

    def stop() -> bool:
        polls[0] += 1
        if polls[0] == retire_at:  # test hook: the scheduler retires the worker under the run
            import threading

            from distributed import get_client

            client = get_client()
            threading.Thread(target=client.retire_workers, args=([worker.address],),
                             kwargs={"close_workers": True}, daemon=True).start()
        return worker.status.name in closing

    return stop


def _injected_retirement(attempt: Attempt) -> int | None:
    """Test hook, from FAULT_ENV ("KEY:retire-at-N"): the worker training the run from its start
    is retired after N updates."""
    for kind in _faults(attempt):
        if kind.startswith("retire-at-"):
            return int(kind[len("retire-at-"):])
    return None


def train_run(attempt: Attempt) -> dict:
    """Train one run in a worker process, resuming it when it has a checkpoint; return its summary.

    The worker holds the run directory while it decides and trains. When another process holds
    it (a second sweep on the same --out, or a run_experiment), the worker waits for it, then
    takes that run's result, or resumes its checkpoint if it stopped before the end. A run
    stopped by SIGTERM or a Dask worker's shutdown returns action "preempted" with the step of
    its checkpoint.
    """
    spec = attempt.spec
    if preemption.requested():  # this worker got SIGTERM between runs: do not start another
        return {"action": "preempted", "step": None}
    with _injected_faults(attempt):
        spec.out.mkdir(parents=True, exist_ok=True)
        with rundir.hold(spec.out, wait=True) as waited:
            done = None if attempt.force or attempt.fresh else _done(spec)
            if done:
                # Finished elsewhere while we waited, or by this sweep (finished runs were skipped
                # when it began) in an attempt whose result was lost: a worker dying beside it
                # broke the pool before the result came back.
                return {"summary": done, "action": "finished elsewhere" if waited else "trained"}
            resume = not attempt.fresh and has_checkpoint(spec.out)
            longer = resume and (spec.out / "summary.json").exists()
            # One core per run (one engine thread, one BLAS thread): the workers already fill the
            # cores, more threads would only contend, and a serial sweep gives the same bytes as a
            # parallel one.
            try:
                summary = run_experiment(spec.config, spec.out, force=not resume, resume=resume,
                                         name=spec.name, log=_quiet, threads=1, stop=_worker_closing(attempt))
            except preemption.Preempted as stopped:
                return {"action": "preempted", "step": stopped.step}
    # The worker's own word when its numbers may differ from other machines' (its log is quiet).
    action = "trained longer" if longer else "resumed" if resume else "trained"
    return {"summary": summary, "action": action, "notice": numerics.notice()}


# -- the sweep side -------------------------------------------------------------------------------

def _error_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


def _row(spec: RunSpec, action: str, attempts: int, summary: dict | None = None,
         error: str | None = None) -> dict:
    status = summary["status"] if summary else "failed"
    if status == "diverged":
        error = f"loss became non-finite by step {summary['steps']}"
    return {"preset": spec.preset, **spec.point, "seed": spec.seed, "group": spec.group,
            "status": status, "error": error, "attempts": attempts, "action": action,
            **{k: v for k, v in (summary or {}).items() if k not in ("name", "status")}}


class SweepProgress:
    """A tqdm bar over the sweep's runs with done, failed and grokked counts, on a terminal only."""

    def __init__(self, total: int, log):
        self.log = log
        self.counts = {"done": 0, "failed": 0, "grokked": 0}
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="sweep", unit="run")

    def add(self, row: dict) -> None:
        self.counts["done"] += 1
        self.counts["failed"] += row["status"] != "completed"
        self.counts["grokked"] += bool(row.get("grokked"))
        if self.bar is not None:
            self.bar.set_postfix(self.counts, refresh=False)
            self.bar.update(1)

    def note(self, line: str) -> None:
        if self.bar is not None and self.log is print:
            self.bar.write(line)  # above the bar, which stays at the bottom
        else:
            self.log(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _execute(attempts, backend, retries: int, finish, note) -> None:
    """Train every attempt on ``backend``; call ``finish(spec, row)`` once per run, when its outcome is final.

    A run that raised is retried from scratch (its checkpoint may be what is wrong); a run whose
    worker died resumes from its checkpoint. On the local backend a death fails every run in
    flight and does not say whose worker it was: those runs are not charged an attempt but train
    again one at a time ("alone"), so the next death names its run.
    """
    queue, alone, running, told = deque(attempts), deque(), {}, set()
    stopped = []  # runs that stopped at a checkpoint because the sweep is being preempted
    passed_on = None  # after SIGTERM: whether the runs in flight will come back stopped
    while queue or alone or running:
        if preemption.requested() or stopped:
            if passed_on is None:
                passed_on = backend.stop_workers()
            if not running or not passed_on:
                break  # what never started stays as it was: the same command trains it
        elif alone:
            if not running:
                a = alone.popleft()
                running[backend.submit(train_run, a)] = a
        else:
            while queue and len(running) < backend.slots:
                a = queue.popleft()
                running[backend.submit(train_run, a)] = a
        done = backend.wait(running, timeout=POLL_S)  # a SIGTERM is noticed within POLL_S
        died = {f for f in done if backend.worker_died(f.exception())}
        if died and backend.death_is_shared:
            done = backend.wait_all(running)  # the broken pool fails every run in flight
            died = {f for f in done if backend.worker_died(f.exception())}
        if died:
            backend.recover()
        for f in [f for f in running if f in done]:  # in submission order, so retries keep the plan's order
            a = running.pop(f)
            err = f.exception()
            if err is None:
                result = f.result()
                if result["action"] == "preempted":
                    if backend.preemption_is_shared or preemption.requested():
                        stopped.append(a.spec)  # this machine is being preempted: stop, like the worker
                    else:  # one Dask worker was shut down: another resumes the run, uncharged
                        queue.appendleft(Attempt(a.spec, a.number))
                        note(f"{a.spec.name}: its worker was shut down after step {result['step']}; "
                             "resuming it on another")
                    continue
                finish(a.spec, _row(a.spec, result["action"], a.number, result["summary"]))
                note(one_line(result["summary"]))
                if result.get("notice") and result["notice"] not in told:  # once per kind of worker
                    told.add(result["notice"])
                    note(result["notice"])
                continue
            if f in died and backend.death_is_shared and len(died) > 1:
                alone.append(a)  # maybe innocent: train it alone, uncharged
                continue
            error = "worker process died" if f in died else _error_line(err)
            if a.number <= retries and not isinstance(err, WriteFailed):
                retry = Attempt(a.spec, a.number + 1, fresh=f not in died, force=a.force)
                (alone if f in died and backend.death_is_shared else queue).append(retry)
                note(f"{a.spec.name}: {error}; retrying (attempt {retry.number} of {retries + 1})")
            else:
                finish(a.spec, _row(a.spec, "failed", a.number, error=error))
                note(f"{a.spec.name}: failed after {a.number} attempt(s): {error}")
    if stopped or preemption.requested():  # running: on a Dask cluster, still stopping or going on there
        raise preemption.Preempted(f"stopped by SIGTERM; {len(stopped) + len(running)} run(s) in flight stopped "
                                   "at a checkpoint of the step they reached; the same command resumes them")


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use, not the machine's
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def run_suite(presets, seeds, out, *, overrides=(), curves=True, force=False, workers=None,
              backend="local", scheduler=None, retries=1, grid=(), log=print, phases=False) -> list[dict]:
    """Run every preset for every seed; write sweep_summary.csv/json; return one row per run.

    Finished runs are skipped and interrupted ones resumed unless ``force``, which trains every
    run again from scratch. A row's ``status`` is completed, diverged or failed (with ``error``).
    With ``phases``, the sweep is a phase diagram over its two --grid keys (lr x weight decay,
    8 x 8, when there is no grid): phases.csv, phases.json and phases.png (``grokking.phases``).
    """
    _check_options(backend, workers, scheduler, retries)
    from . import phases as phase_rule

    grid = parse_grid(grid or (phase_rule.DEFAULT_GRID if phases else ()))
    if phases and len(grid) != 2:
        raise ConfigError(f"--phases draws a diagram over two settings: give two --grid keys, not {len(grid)} "
                          f"(or none, for {' x '.join(k for k, _ in parse_grid(phase_rule.DEFAULT_GRID))})")
    specs = plan_runs(presets, seeds, out, overrides, curves, force, grid)
    ordered = train_specs(specs, force=force, workers=workers, backend=backend, scheduler=scheduler,
                          retries=retries, log=log)
    aggregates = write_sweep_summary(out, ordered)
    if curves:
        _draw_sweep_curves(Path(out), specs, ordered)
    log(format_table(aggregates))
    if phases:
        _phase_diagram(Path(out), specs, ordered, tuple(k for k, _ in grid), log)
    return ordered


def _phase_diagram(out: Path, specs, rows, axes, log) -> None:
    from . import phases

    runs = [{"dir": s.out, "config": read_json(s.out / "config.json")}
            for s, r in zip(specs, rows) if r["status"] != "failed"]
    d = phases.write(out, runs, axes)
    counts = {p: sum(c["phase"] == p for c in d["cells"]) for p in phases.PHASES}
    try:
        phases.draw(d, out / "phases.png")
        drawn = ", phases.png"
    except ImportError:
        drawn = "; matplotlib is not installed, so no phases.png"
    log(f"phases of {len(d['cells'])} cells: " + ", ".join(f"{p} {n}" for p, n in counts.items())
        + f" ({phases.PHASES_CSV}, {phases.PHASES_JSON}{drawn})")

def _check_options(backend, workers, scheduler, retries) -> None:
    check_backend(backend, default_workers() if workers is None else workers, scheduler)
    if retries < 0:
        raise ConfigError(f"--retries must be >= 0, got {retries}")


def train_specs(specs: list[RunSpec], *, force=False, workers=None, backend="local", scheduler=None,
                retries=1, log=print) -> list[dict]:
    """Train planned runs (from one sweep or several: they share the workers, so none waits for
    another's stragglers); return one row per spec, in order. Finished runs are skipped unless
    ``force``."""
    _check_options(backend, workers, scheduler, retries)
    workers = default_workers() if workers is None else workers
    rows: dict[Path, dict] = {}
    progress = SweepProgress(len(specs), log)

    def finish(spec, row):
        rows[spec.out] = row
        progress.add(row)

    todo = []
    for spec in specs:
        done = None if force else _done(spec)
        if done:
            finish(spec, _row(spec, "skipped", 0, done))
        else:
            todo.append(Attempt(spec, fresh=force, force=force))
    if rows:
        progress.note(f"{len(rows)} of {len(specs)} runs finished earlier; skipping them")
    try:
        if todo:
            engine = make_backend(backend, min(workers, len(todo)), scheduler)
            try:
                with preemption.watch():
                    _execute(todo, engine, retries, finish, progress.note)
            except BaseException:
                engine.close(cancel=True)
                raise
            engine.close()
    finally:
        progress.close()
    ordered = [rows[s.out] for s in specs]
    mixed = environments(ordered)
    if len(mixed) > 1:
        log(f"note: these runs trained under {len(mixed)} numeric environments, so their bytes are not "
            f"comparable with one another's: {'; '.join(mixed)} (sweep_summary.csv, column numerics)")
    return ordered


def environments(rows: list[dict]) -> list[str]:
    """The numeric environments the runs trained under (``grokking.numerics``; a run resumed under
    another one counts as its own), in order of first appearance."""
    return list(dict.fromkeys(r["numerics"] for r in rows if r.get("numerics")))


# -- the summary ------------------------------------------------------------------------------------

def quantile(values, q: float) -> float:
    """Linear-interpolation quantile where math.inf (never reached) sorts last and stays infinite."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo, frac = int(pos), pos - int(pos)
    if frac == 0:
        return v[lo]
    if math.isinf(v[lo + 1]):
        return math.inf
    return v[lo] + (v[lo + 1] - v[lo]) * frac


def _steps(values) -> list[float]:
    return [math.inf if v is None else v for v in values]


def _finite(value):
    return None if value is None or math.isinf(value) else value


def median_steps(values) -> float | None:
    """Median over seeds with a run that never reached the threshold counted as infinitely late:
    None when half or more of the seeds never reached it (the median lies beyond the budget)."""
    values = _steps(values)
    return _finite(quantile(values, 0.5)) if values else None


def aggregate(rows: list[dict]) -> dict[str, dict]:
    """Per preset, over the seeds whose run ended (failed runs have no result to count)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row.get("group", row["preset"]), []).append(row)
    out = {}
    for preset, g in groups.items():
        ran = [r for r in g if r["status"] in RAN]
        val = _steps(r["steps_to_val_99"] for r in ran)
        q25, q75 = (quantile(val, 0.25), quantile(val, 0.75)) if ran else (None, None)
        grokked = sum(bool(r["grokked"]) for r in ran)
        out[preset] = {
            "runs": len(g),
            "failed": sum(r["status"] == "failed" for r in g),
            "diverged": sum(r["status"] == "diverged" for r in g),
            "grokked": grokked,
            "grokked_share": grokked / len(ran) if ran else None,
            "median_steps_to_train_99": median_steps(r["steps_to_train_99"] for r in ran),
            "median_steps_to_val_99": median_steps(r["steps_to_val_99"] for r in ran),
            # The interquartile range of the grokking step; null where a quartile never got there.
            "q25_steps_to_val_99": _finite(q25),
            "q75_steps_to_val_99": _finite(q75),
            "iqr_steps_to_val_99": _finite(q75 - q25) if ran and not math.isinf(q25) else None,
            "median_best_val_acc": quantile([r["best_val_acc"] for r in ran], 0.5) if ran else None,
            "median_wall_time_s": quantile([r["wall_time_s"] for r in ran], 0.5) if ran else None,
        }
    return out


def write_sweep_summary(out: Path, rows: list[dict]) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))  # a failed run has no summary fields
    rows = [{c: r.get(c) for c in columns} for r in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    write_atomic(out / "sweep_summary.csv", buf.getvalue().encode())
    aggregates = aggregate(rows)
    write_json(out / "sweep_summary.json", {"runs": rows, "by_preset": aggregates,  # by preset and grid point
                                            "numerics": environments(rows)})
    return aggregates


def format_table(aggregates: dict[str, dict]) -> str:
    def num(v):
        return "-" if v is None else f"{v:g}"

    def iqr(a):
        lo, hi = a["q25_steps_to_val_99"], a["q75_steps_to_val_99"]
        return "-" if lo is None else f"{lo:g}-{'never' if hi is None else f'{hi:g}'}"

    width = max([20, *(len(g) for g in aggregates)])
    header = (f"{'preset':<{width}} {'grokked':>12} {'median train 99%':>17} {'median val 99%':>15} "
              f"{'val 99% IQR':>13} {'failed':>7} {'median wall s':>14}")
    lines = [header, "-" * len(header)]
    for preset, a in aggregates.items():
        ran = a["runs"] - a["failed"]
        share = "-" if a["grokked_share"] is None else f"{a['grokked_share']:.0%}"
        wall = "-" if a["median_wall_time_s"] is None else f"{a['median_wall_time_s']:.1f}"
        grokked = f"{a['grokked']}/{ran} ({share})"
        lines.append(f"{preset:<{width}} {grokked:>12} "
                     f"{num(a['median_steps_to_train_99']):>17} {num(a['median_steps_to_val_99']):>15} "
                     f"{iqr(a):>13} {a['failed']:>7} {wall:>14}")
    return "\n".join(lines)


def _draw_sweep_curves(out: Path, specs: list[RunSpec], rows: list[dict]) -> None:
    try:
        plot_sweep_curves(out / "sweep_curves.png", specs, rows)
    except ImportError:
        print("note: matplotlib is not installed; skipping sweep_curves.png", file=sys.stderr)


def plot_sweep_curves(png: Path, specs: list[RunSpec], rows: list[dict]) -> None:
    """Per preset, the median train and validation accuracy across seeds with a band from the
    25th to the 75th percentile, on a log x-axis. A diverged run counts until it stopped."""
    fig = sweep_curves_figure(specs, rows)
    if fig is None:
        return
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    write_atomic(png, buf.getvalue())


def sweep_curves_figure(specs: list[RunSpec], rows: list[dict]):
    """The figure of ``plot_sweep_curves``, or None when no run has metrics."""
    import numpy as np
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import read_metrics, wrap

    runs: dict[str, list[dict]] = {}
    for spec, row in zip(specs, rows):
        if row["status"] in RAN and (spec.out / "metrics.csv").exists():
            runs.setdefault(spec.group, []).append(read_metrics(spec.out / "metrics.csv"))
    if not runs:
        return None
    cols = min(len(runs), 2)
    nrows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.5 * cols, 3.8 * nrows), squeeze=False,
                             constrained_layout=True)
    for ax, (preset, metrics) in zip(axes.flat, runs.items()):
        steps = sorted({s for m in metrics for s in m["step"]})
        index = {s: i for i, s in enumerate(steps)}
        for key, color, label in (("train_acc", "tab:red", "train"), ("val_acc", "tab:green", "validation")):
            grid = np.full((len(metrics), len(steps)), np.nan)
            for i, m in enumerate(metrics):
                grid[i, [index[s] for s in m["step"]]] = m[key]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # steps a diverged run never reached
                q25, med, q75 = np.nanpercentile(grid, [25, 50, 75], axis=0)
            ax.plot(steps, med, color=color, label=f"{label} (median)")
            ax.fill_between(steps, q25, q75, color=color, alpha=0.2, linewidth=0)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("optimization step")
        ax.set_ylabel("accuracy")
        ax.set_title(wrap(f"{preset}: {len(metrics)} seeds, band 25-75%", 60), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    return fig
