"""Command lines: thin parsers over ``run_experiment`` and ``run_suite``.

Bad input ends with one line on stderr and exit status 2; nothing is written to --out.
"""

from __future__ import annotations

import argparse
import sys

from .config import PRESETS, describe_keys, resolve_config
from .errors import ConfigError
from .experiment import run_experiment
from .sweeps import run_suite


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _fail(prog: str, err: Exception) -> int:
    print(f"{prog}: error: {err}", file=sys.stderr)
    return 2


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
    args = p.parse_args(argv)
    if args.list_presets:
        print(_list_presets())
        return 0
    if args.list_keys:
        print(describe_keys())
        return 0
    name = args.preset or (args.config and _stem(args.config)) or "default"
    try:
        config = resolve_config(args.preset, args.config, args.override)
        if args.no_curves:
            config.output.curves = False
        run_experiment(config, args.out or f"runs/{name}", force=args.force, name=name)
    except ConfigError as err:
        return _fail(prog, err)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; the run directory has no summary.json", file=sys.stderr)
        return 130
    return 0


def _stem(path: str) -> str:
    from pathlib import Path

    return Path(path).stem


def run_suite_main(argv=None) -> int:
    prog = "run_suite"
    p = _Parser(prog=prog, description="Run presets over seeds; write per-run folders and a sweep summary.")
    p.add_argument("--presets", default=",".join(PRESETS),
                   help="comma-separated presets (default: all built-in presets)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    p.add_argument("--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="set one config key in every run; repeatable")
    p.add_argument("--no-curves", action="store_true", help="do not draw curves.png for each run")
    p.add_argument("--out", default="runs/suite", help="sweep directory (default: runs/suite)")
    p.add_argument("--force", action="store_true", help="replace runs already in --out")
    args = p.parse_args(argv)
    try:
        presets = _csv(args.presets, str, "presets")
        seeds = _csv(args.seeds, int, "seeds")
        run_suite(presets, seeds, args.out, overrides=args.override,
                  curves=not args.no_curves, force=args.force)
    except ConfigError as err:
        return _fail(prog, err)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished runs keep their summary.json", file=sys.stderr)
        return 130
    return 0
