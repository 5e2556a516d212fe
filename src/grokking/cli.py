"""Command lines: thin parsers over ``run_experiment``, ``run_suite`` and ``figures.draw``.

Bad input ends with one line on stderr and exit status 2; nothing is written to --out.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .artifacts import read_json
from .config import PRESETS, config_from_dict, describe_keys, resolve_config
from .errors import DISK_FULL, ConfigError, WriteFailed
from .experiment import run_experiment
from .preemption import Preempted
from .sweeps import BACKENDS, run_suite


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _fail(prog: str, err: Exception, status: int = 2) -> int:
    print(f"{prog}: error: {err}", file=sys.stderr)
    return status


def _stopped(prog: str, line: str, status: int) -> int:
    """Preemption (SIGTERM): not an error, so no "error:"; the status is SIGTERM's."""
    print(f"{prog}: {line}", file=sys.stderr)
    return status


def _write_failed(prog: str, err: OSError | WriteFailed) -> int:
    """A full disk: one line and exit 1 (not the user's input, so not 2); anything else propagates."""
    if isinstance(err, OSError):
        if err.errno not in DISK_FULL:
            raise err
        err = f"could not write {err.filename or 'a file'}: {err.strerror}; free space and run the same command again"
    return _fail(prog, err, 1)


def _list_presets() -> str:
    return "\n".join(f"{name:<20} {desc}" for name, (desc, _) in PRESETS.items())


def _csv(text: str, kind=str, what="value") -> list:
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        values = [kind(t) for t in items]
    except ValueError:
        raise ConfigError(f"--{what}: {text!r} must be a comma-separated list of "
                          f"{'whole numbers' if kind is int else 'names'}") from None
    if not values:
        raise ConfigError(f"--{what}: empty list")
    return values


def run_experiment_main(argv=None) -> int:
    prog = "run_experiment"
    p = _Parser(prog=prog, description="Train one run and write its artifacts to --out.")
    p.add_argument("--list-presets", action="store_true", help="print the built-in presets and exit")
    p.add_argument("--list-keys", action="store_true", help="print every config key with its default and exit")
    p.add_argument("--preset", help="built-in preset to start from (see --list-presets)")
    p.add_argument("--config", help="JSON config file, applied over the preset")
    p.add_argument("--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="set one config key, applied last; repeatable")
    p.add_argument("--no-curves", action="store_true", help="do not draw curves.png")
    p.add_argument("--out", help="run directory (default: runs/<preset or config name>)")
    p.add_argument("--force", action="store_true", help="replace a run already in --out")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out from its checkpoint, from its own "
                        "config.json with any --override applied (training.steps, "
                        "training.eval_interval and output settings may change; a larger "
                        "training.steps trains a finished run longer)")
    args = p.parse_args(argv)
    if args.list_presets:
        print(_list_presets())
        return 0
    if args.list_keys:
        print(describe_keys())
        return 0
    name = args.preset or (args.config and Path(args.config).stem) or "default"
    out = Path(args.out or f"runs/{name}")
    try:
        if args.resume and not (args.preset or args.config):
            config = _stored_config(out, args.override)
        else:
            config = resolve_config(args.preset, args.config, args.override)
        if args.no_curves:
            config.output.curves = False
        summary = run_experiment(config, out, force=args.force, name=name, resume=args.resume)
    except ConfigError as err:
        return _fail(prog, err)
    except WriteFailed as err:
        return _write_failed(prog, err)
    except Preempted as err:
        return _stopped(prog, f"{err}; continue it with run_experiment --resume --out {out}", err.code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; the run directory has no summary.json; continue it with --resume",
              file=sys.stderr)
        return 130
    if summary["status"] == "diverged":
        print(f"{prog}: the run diverged at step {summary['steps']} (a non-finite loss); its artifacts "
              f"are in {out}", file=sys.stderr)
        return 1
    return 0


def _stored_config(out: Path, overrides=()):
    """The config a run was started with, ``overrides`` applied, for --resume without --preset or
    --config (which, given, must agree with it)."""
    path = out / "config.json"
    if not path.exists():
        raise ConfigError(f"--resume: {str(out)!r} has no config.json; nothing to resume")
    try:
        return config_from_dict(read_json(path), overrides)
    except ConfigError as err:  # a bad --override, or a bad key in the file
        raise ConfigError(f"--resume: {err}") from None
    except ValueError as err:  # JSONDecodeError
        raise ConfigError(f"--resume: {str(path)!r} cannot be read: {err}") from None


def run_claims_main(argv=None) -> int:
    from .claims import CLAIMS, MEASURES, ClaimFailed, run_claims

    prog = "run_claims"
    p = _Parser(prog=prog, description="Check published claims: each claim's arms on the same seeds, "
                                       "medians with bootstrap intervals, paired ratios, verdicts.")
    p.add_argument("--claims", default=",".join(CLAIMS), help=f"comma-separated subset of: {', '.join(CLAIMS)}")
    p.add_argument("--seeds", help="comma-separated seeds for every claim, at least 3 (default: each claim's own; "
                                   "liu_toy_phases always trains their draw, seed 58, and adds these as other draws)")
    p.add_argument("--out", default="runs/claims", help="where the runs and claims.md/csv/json go")
    p.add_argument("--workers", type=int, default=_cores(), help=f"runs trained at once (default {_cores()})")
    p.add_argument("--list", action="store_true", help="print every claim with its setting and exit")
    args = p.parse_args(argv)
    if args.list:
        for c in CLAIMS.values():
            print(f"{c.name} ({c.source}, about {c.minutes:g} min): {c.published}\n  measured: "
                  f"{MEASURES[c.measure].description}\n  published setting: {c.published_setting}\n  here: {c.here}")
        return 0
    try:
        seeds = _csv(args.seeds, int, "seeds") if args.seeds else None
        run_claims(_csv(args.claims, str, "claims"), args.out, workers=args.workers, seeds=seeds)
    except ConfigError as err:
        return _fail(prog, err)
    except ClaimFailed as err:
        return _fail(prog, err, 1)
    except Preempted as err:
        return _stopped(prog, f"{err}; finished runs are kept", err.code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished runs are kept and the same command goes on", file=sys.stderr)
        return 130
    return 0


def run_suite_main(argv=None) -> int:
    prog = "run_suite"
    p = _Parser(prog=prog, description="Run presets over seeds; write per-run folders and a sweep summary.")
    p.add_argument("--presets", default=",".join(PRESETS),
                   help="comma-separated presets (default: all built-in presets)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    p.add_argument("--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="set one config key in every run; repeatable")
    p.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=V1,V2",
                   help="also sweep a config key over these values; repeatable (a Cartesian product)")
    p.add_argument("--no-curves", action="store_true", help="do not draw curves.png for each run")
    p.add_argument("--out", default="runs/suite", help="sweep directory (default: runs/suite)")
    p.add_argument("--force", action="store_true",
                   help="train every run again from scratch (default: skip finished runs, resume interrupted ones)")
    p.add_argument("--workers", type=int, default=_cores(),
                   help="runs trained at once, each on one core (default: the number of cores, "
                        f"{_cores()} here); with a --scheduler the cluster decides")
    p.add_argument("--backend", choices=BACKENDS, default="local",
                   help="local: a pool of processes on this machine; dask: Dask distributed "
                        "(pip install -e '.[dask]')")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="address of a Dask scheduler (with --backend dask; default: a local Dask cluster)")
    p.add_argument("--phases", action="store_true",
                   help="classify every run as comprehension, grokking, memorization or confusion "
                        "(Liu et al. 2022) and draw the phase diagram over the two --grid keys "
                        "(without --grid: optimizer.lr x optimizer.weight_decay, 8 x 8): "
                        "phases.csv, phases.json, phases.png")
    p.add_argument("--retries", type=int, default=1,
                   help="train a run that raised or whose worker died again up to this many times (default: 1)")
    args = p.parse_args(argv)
    try:
        presets = _csv(args.presets, str, "presets")
        seeds = _csv(args.seeds, int, "seeds")
        rows = run_suite(presets, seeds, args.out, overrides=args.override,
                         curves=not args.no_curves, force=args.force, workers=args.workers,
                         backend=args.backend, scheduler=args.scheduler, retries=args.retries,
                         grid=args.grid, phases=args.phases)
    except ConfigError as err:
        return _fail(prog, err)
    except (WriteFailed, OSError) as err:  # the sweep's own summary on a full disk
        return _write_failed(prog, err)
    except Preempted as err:
        return _stopped(prog, f"{err}; finished runs keep their summary.json", err.code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished runs keep their summary.json; the same command "
              "resumes the rest", file=sys.stderr)
        return 130
    bad = [r for r in rows if r["status"] != "completed"]
    if bad:
        listed = "; ".join(f"{r['group']} seed {r['seed']}: {r['status']} ({r['error']})" for r in bad)
        print(f"{prog}: {len(bad)} of {len(rows)} runs did not complete: {listed}", file=sys.stderr)
        return 1
    return 0


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use, not the machine's
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def make_figures_main(argv=None) -> int:
    from .figures import FIGURES, draw

    prog = "make_figures"
    p = _Parser(prog=prog, description="Draw the paper's figures from a run or sweep directory as PNG files.")
    p.add_argument("source", help="a run directory (curves, embeddings) or a sweep directory (all figures)")
    p.add_argument("--out", help="where to write the PNG files (default: <source>/figures)")
    p.add_argument("--figures", default=",".join(FIGURES),
                   help=f"comma-separated subset of: {', '.join(FIGURES)} (default: all that apply)")
    args = p.parse_args(argv)
    try:
        made = draw(Path(args.source), Path(args.out or Path(args.source) / "figures"),
                    _csv(args.figures, str, "figures"))
    except ConfigError as err:
        return _fail(prog, err)
    for path in made:
        print(path)
    return 0


def make_report_main(argv=None) -> int:
    from .report import make_report

    prog = "make_report"
    p = _Parser(prog=prog, description="Write one self-contained HTML report of a run or sweep directory.")
    p.add_argument("source", help="a run directory or a sweep directory")
    p.add_argument("--out", help="the HTML file to write (default: <source>/report.html)")
    args = p.parse_args(argv)
    try:
        path = make_report(Path(args.source), args.out)
    except ConfigError as err:
        return _fail(prog, err)
    print(path)
    return 0
