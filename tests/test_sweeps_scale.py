"""Sweeps at scale: parallel workers give the serial bytes, a re-run trains nothing twice, failures
and dead workers are recorded and retried without taking the sweep down, Dask runs the same code."""

import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
import contextlib
import csv
import importlib.util
import io
import json
import math
import os
import unittest
from pathlib import Path
from unittest import mock

from grokking import experiment
from grokking.cli import run_suite_main
from grokking.experiment import run_experiment
from grokking.errors import ConfigError
from grokking.sweeps import (FAULT_ENV, Attempt, _execute, aggregate, format_table, plan_runs, quantile,
                             run_suite, train_run)

from helpers import TINY, outcome, quiet, run_script, temp_dir

PRESETS = ["mod_add_baseline", "mod_add_grokking"]
TIMING = ("wall_time_s", "eval_time_s", "steps_per_s", "time_to_val_99_s")
HAS_DASK = importlib.util.find_spec("distributed") is not None



def files(out: Path, name: str) -> dict:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.glob(f"*/seed_*/{name}"))}


def untimed(rows, drop=()):
    return [{k: v for k, v in r.items() if k not in TIMING + drop} for r in rows]


class Parallel(unittest.TestCase):
    def test_two_workers_give_the_serial_bytes(self):
        # 2,822 training rows: large enough that a multi-threaded BLAS would split the batch sums.
        over = ["task.p=97", "model.d_embed=16", "model.d_hidden=32", "training.steps=30",
                "training.eval_interval=10"]
        tmp = temp_dir(self)
        serial = run_suite(PRESETS, [0, 1], tmp / "serial", overrides=over, curves=False, workers=1, log=quiet)
        parallel = run_suite(PRESETS, [0, 1], tmp / "parallel", overrides=over, curves=False, workers=2,
                             log=quiet)
        self.assertEqual(untimed(serial), untimed(parallel))
        self.assertEqual([r["status"] for r in parallel], ["completed"] * 4)
        for name in ("metrics.csv", "split.json"):
            a, b = files(tmp / "serial", name), files(tmp / "parallel", name)
            self.assertEqual(len(a), 4)
            self.assertEqual(a, b)


class Idempotent(unittest.TestCase):
    def test_rerun_skips_finished_resumes_interrupted_and_trains_nothing_twice(self):
        tmp = temp_dir(self)
        over = [*TINY, "output.checkpoint_interval=10"]
        clean = run_suite(PRESETS, [0, 1], tmp / "clean", overrides=over, log=quiet)
        self.assertTrue((tmp / "clean" / "sweep_curves.png").read_bytes().startswith(b"\x89PNG"))

        # A sweep where one run finished and another was interrupted at step 25 (checkpoint at 20).
        out = tmp / "sweep"
        specs = {s.key: s for s in plan_runs(PRESETS, [0, 1], out, over)}
        done, cut = specs["mod_add_baseline/seed_0"], specs["mod_add_grokking/seed_1"]
        run_experiment(done.config, done.out, name=done.name, log=quiet)
        real = experiment.learning_rate
        with mock.patch.object(experiment, "learning_rate",
                               lambda s, *a: (_ for _ in ()).throw(KeyboardInterrupt) if s == 25 else real(s, *a)), \
                self.assertRaises(KeyboardInterrupt):
            run_experiment(cut.config, cut.out, name=cut.name, log=quiet)
        finished = {n: (done.out / n).stat().st_mtime_ns for n in ("metrics.csv", "summary.json", "checkpoint.npz")}

        rows = run_suite(PRESETS, [0, 1], out, overrides=over, log=quiet)
        self.assertEqual({f"{r['preset']}/seed_{r['seed']}": r["action"] for r in rows},
                         {"mod_add_baseline/seed_0": "skipped", "mod_add_baseline/seed_1": "trained",
                          "mod_add_grokking/seed_0": "trained", "mod_add_grokking/seed_1": "resumed"})
        self.assertEqual(finished, {n: (done.out / n).stat().st_mtime_ns for n in finished})
        self.assertEqual(files(out, "metrics.csv"), files(tmp / "clean", "metrics.csv"))
        self.assertEqual(untimed((r for r in rows if r["action"] != "skipped"), ("action",)),
                         untimed((r for r in clean if (r["preset"], r["seed"]) != ("mod_add_baseline", 0)),
                                 ("action",)))

        # Again: everything is skipped, the summary is rebuilt from the run directories.
        (out / "sweep_summary.json").unlink()
        again = run_suite(PRESETS, [0, 1], out, overrides=over, log=quiet)
        self.assertEqual({r["action"] for r in again}, {"skipped"})
        self.assertEqual(json.loads((out / "sweep_summary.json").read_text())["by_preset"].keys(), set(PRESETS))

        # --force trains everything again; a changed setting without it is refused, nothing written.
        forced = run_suite(PRESETS, [0], out, overrides=over, log=quiet, force=True, curves=False)
        self.assertEqual({r["action"] for r in forced}, {"trained"})
        before = files(out, "summary.json")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = run_suite_main(["--presets", ",".join(PRESETS), "--seeds", "0",
                                   *[a for kv in over for a in ("--override", kv)],
                                   "--override", "optimizer.weight_decay=0.5", "--out", str(out)])
        self.assertEqual(code, 2)
        self.assertIn("holds a run with another config: optimizer.weight_decay (0.0 there, 0.5 here)", err.getvalue())
        self.assertEqual(files(out, "summary.json"), before)


class TrainLonger(unittest.TestCase):
    def test_the_same_sweep_with_a_larger_budget_trains_its_runs_on(self):
        tmp = temp_dir(self)
        short = [*TINY, "training.steps=1000", "training.eval_interval=100"]
        longer = [*TINY, "training.steps=2000", "training.eval_interval=100"]
        run_suite(PRESETS, [0, 1], tmp / "sweep", overrides=short, curves=False, workers=2, log=quiet)
        rows = run_suite(PRESETS, [0, 1], tmp / "sweep", overrides=longer, curves=False, workers=2, log=quiet)
        self.assertEqual({(r["action"], r["steps"]) for r in rows}, {("trained longer", 2000)})  # from step 1,000
        whole = run_suite(PRESETS, [0, 1], tmp / "whole", overrides=longer, curves=False, workers=2, log=quiet)
        self.assertEqual(files(tmp / "sweep", "metrics.csv"), files(tmp / "whole", "metrics.csv"))
        self.assertEqual(untimed(rows, ("action",)), untimed(whole, ("action",)))
        with self.assertRaisesRegex(ConfigError, "holds a run of 2000 steps, more than training.steps=1000"):
            run_suite(PRESETS, [0, 1], tmp / "sweep", overrides=short, curves=False, workers=1, log=quiet)


class Failures(unittest.TestCase):
    def test_dead_worker_and_raising_run_are_recorded_and_retried(self):
        # seed 1 of mod_add_grokking kills its worker (os._exit) on every attempt; seed 0 of
        # mod_add_baseline raises on its first attempt only. On two workers the death also breaks
        # the run in flight beside it (2,000 steps keep it there), which must not be charged for it.
        out = temp_dir(self) / "sweep"
        faults = "mod_add_grokking/seed_1:exit,mod_add_baseline/seed_0:raise:1"
        with mock.patch.dict(os.environ, {FAULT_ENV: faults}):
            r = run_script("run_suite.py", "--presets", ",".join(PRESETS), "--seeds", "0,1",
                           *[a for kv in [*TINY, "training.steps=2000"] for a in ("--override", kv)],
                           "--no-curves", "--workers", "2", "--retries", "1", "--out", str(out))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("1 of 4 runs did not complete: mod_add_grokking seed 1: failed (worker process died)",
                      r.stderr)
        with open(out / "sweep_summary.csv") as fh:
            rows = {(row["preset"], row["seed"]): row for row in csv.DictReader(fh)}
        dead = rows[("mod_add_grokking", "1")]
        self.assertEqual((dead["status"], dead["error"], dead["attempts"]), ("failed", "worker process died", "2"))
        self.assertEqual(dead["steps"], "")
        self.assertFalse((out / "mod_add_grokking" / "seed_1" / "summary.json").exists())
        raised = rows[("mod_add_baseline", "0")]
        self.assertEqual((raised["status"], raised["attempts"]), ("completed", "2"))
        for key in (("mod_add_baseline", "1"), ("mod_add_grokking", "0")):
            self.assertEqual((rows[key]["status"], rows[key]["attempts"]), ("completed", "1"))
        agg = json.loads((out / "sweep_summary.json").read_text())["by_preset"]
        self.assertEqual((agg["mod_add_grokking"]["runs"], agg["mod_add_grokking"]["failed"]), (2, 1))

    @outcome
    def test_final_failure_without_retries_and_divergence(self):
        tmp = temp_dir(self)
        with mock.patch.dict(os.environ, {FAULT_ENV: "mod_add_grokking/seed_0:raise"}):
            rows = run_suite(["mod_add_grokking"], [0], tmp / "raise", overrides=TINY, curves=False,
                             workers=1, retries=0, log=quiet)
        self.assertEqual((rows[0]["status"], rows[0]["attempts"]), ("failed", 1))
        self.assertEqual(rows[0]["error"], f"RuntimeError: injected fault ({FAULT_ENV})")
        # Divergence is a result, not an accident: recorded, and not retried (it would recur bit for bit).
        diverge = [*TINY, "optimizer.lr=1e30", "optimizer.weight_decay=0", "optimizer.warmup_steps=0",
                   "optimizer.name=sgd", "training.steps=200"]
        rows = run_suite(["mod_add_grokking"], [0], tmp / "div", overrides=diverge, curves=False,
                         workers=1, log=quiet)
        self.assertEqual((rows[0]["status"], rows[0]["attempts"]), ("diverged", 1))
        self.assertIn("non-finite", rows[0]["error"])

    def test_bad_backend_arguments_are_one_line_exit_2_nothing_written(self):
        out = temp_dir(self) / "sweep"
        cases = {
            ("--workers", "0"): "--workers must be >= 1",
            ("--retries", "-1"): "--retries must be >= 0",
            ("--scheduler", "tcp://127.0.0.1:1"): "add --backend dask",
            ("--backend", "slurm"): "invalid choice",
        }
        for args, message in cases.items():
            with self.subTest(args=args):
                err = io.StringIO()
                with contextlib.redirect_stderr(err), self.assertRaises(SystemExit) if "slurm" in args \
                        else contextlib.nullcontext() as caught:
                    code = run_suite_main(["--presets", "mod_add_grokking", *args, "--out", str(out)])
                code = caught.exception.code if caught else code
                self.assertEqual(code, 2)
                self.assertEqual(len(err.getvalue().strip().splitlines()), 1, err.getvalue())
                self.assertIn(message, err.getvalue())
                self.assertFalse(out.exists())


class SharedDeath:
    """A stand-in for the process pool: when the culprit's worker dies, every run in flight fails
    with BrokenProcessPool and nothing says whose worker it was."""

    death_is_shared = preemption_is_shared = True

    def __init__(self, slots, culprit):
        self.slots, self.culprit = slots, culprit
        self.in_flight, self.batches = {}, []

    def submit(self, fn, attempt):
        future = cf.Future()
        self.in_flight[future] = attempt
        return future

    def wait(self, futures, timeout=None):
        if self.in_flight:
            keys = sorted(a.spec.key for a in self.in_flight.values())
            self.batches.append(keys)
            for future, attempt in self.in_flight.items():
                if self.culprit in keys:
                    future.set_exception(BrokenProcessPool("a worker died"))
                else:
                    future.set_result({"action": "trained", "summary": summary_of(attempt)})
            self.in_flight = {}
        return {f for f in futures if f.done()}

    wait_all = wait

    def worker_died(self, err):
        return isinstance(err, BrokenProcessPool)

    def recover(self):
        pass


def summary_of(attempt):
    return {"name": attempt.spec.name, "status": "completed", "steps": 1, "steps_to_train_99": None,
            "steps_to_val_99": None, "grok_delay": None, "grokked": False, "best_val_acc": 0.1,
            "wall_time_s": 0.1}


class SharedDeathRecovery(unittest.TestCase):
    def test_runs_beside_a_dying_one_are_not_charged(self):
        specs = plan_runs(["mod_add_grokking"], [0, 1, 2], temp_dir(self), TINY)
        backend = SharedDeath(slots=2, culprit="mod_add_grokking/seed_1")
        rows = {}
        _execute([Attempt(s) for s in specs], backend, 1, lambda spec, r: rows.__setitem__(r["seed"], r), quiet)
        self.assertEqual({k: (r["status"], r["attempts"]) for k, r in rows.items()},
                         {0: ("completed", 1), 1: ("failed", 2), 2: ("completed", 1)})
        # Seeds 0 and 1 broke together; then each trained alone, so the culprit was named.
        self.assertEqual(backend.batches[0], ["mod_add_grokking/seed_0", "mod_add_grokking/seed_1"])
        self.assertTrue(all(len(b) == 1 for b in backend.batches[1:3]), backend.batches)


class LostResult(unittest.TestCase):
    def test_a_run_finished_before_the_pool_broke_is_not_trained_again(self):
        # The race behind a rare CI failure: a run beside a dying worker finished, but the broken
        # pool failed its future. Its uncharged second try must take the finished run, not try to
        # resume it (which is refused) and be charged a retry.
        spec = plan_runs(["mod_add_grokking"], [0], temp_dir(self), TINY)[0]
        first = train_run(Attempt(spec))
        written = (spec.out / "metrics.csv").read_bytes(), (spec.out / "summary.json").read_bytes()
        again = train_run(Attempt(spec))
        self.assertEqual((again["action"], again["summary"]), ("trained", first["summary"]))
        self.assertEqual(((spec.out / "metrics.csv").read_bytes(), (spec.out / "summary.json").read_bytes()),
                         written)
        # Under --force a summary.json may be older than the sweep, so it is not taken as this sweep's.
        with self.assertRaises(ConfigError):
            train_run(Attempt(spec, force=True))


class Aggregates(unittest.TestCase):
    def test_median_iqr_and_share_count_never_as_infinitely_late(self):
        def row(seed, v99, status="completed"):
            ran = status != "failed"
            return {"preset": "p", "seed": seed, "status": status,
                    "steps_to_val_99": v99, "steps_to_train_99": 10 if ran else None,
                    "grokked": v99 is not None if ran else None,
                    "best_val_acc": 1.0 if v99 else 0.5, "wall_time_s": 2.0}

        rows = [row(0, 100), row(1, 200), row(2, None), row(3, 400), row(4, None, "failed")]
        a = aggregate(rows)["p"]
        # Over the four that ran: 100, 200, 400, never.
        self.assertEqual((a["runs"], a["failed"], a["grokked"]), (5, 1, 3))
        self.assertEqual(a["grokked_share"], 0.75)
        self.assertEqual(a["median_steps_to_val_99"], 300)
        self.assertEqual(a["q25_steps_to_val_99"], 175)
        self.assertIsNone(a["q75_steps_to_val_99"])  # the upper quartile lies beyond the budget
        self.assertIsNone(a["iqr_steps_to_val_99"])
        table = format_table({"p": a})
        self.assertIn("3/4 (75%)", table)
        self.assertIn("175-never", table)
        self.assertEqual(quantile([1, 2, 3, 4], 0.5), 2.5)
        self.assertEqual(quantile([1, math.inf], 0.5), math.inf)
        self.assertEqual(aggregate([row(0, 100), row(1, 300)])["p"]["iqr_steps_to_val_99"], 100)


@unittest.skipUnless(HAS_DASK, "dask.distributed is not installed (pip install -e '.[dask]')")
class Dask(unittest.TestCase):
    def test_local_dask_cluster_runs_the_sweep_and_survives_a_dead_worker(self):
        tmp = temp_dir(self)
        local = run_suite(PRESETS, [0, 1], tmp / "local", overrides=TINY, curves=False, workers=2, log=quiet)
        # The first attempt of one run kills its Dask worker; the nanny restarts it and the retry
        # trains the run; the run beside it never notices.
        with mock.patch.dict(os.environ, {FAULT_ENV: "mod_add_grokking/seed_1:exit:1"}):
            rows = run_suite(PRESETS, [0, 1], tmp / "dask", overrides=TINY, curves=False, workers=2,
                             backend="dask", log=quiet)
        self.assertEqual([r["status"] for r in rows], ["completed"] * 4)
        self.assertEqual([r["attempts"] for r in rows], [1, 1, 1, 2])
        self.assertEqual(files(tmp / "dask", "metrics.csv"), files(tmp / "local", "metrics.csv"))
        self.assertEqual(untimed({**r, "attempts": 1} for r in rows), untimed(local))


class Grid(unittest.TestCase):
    """--grid sweeps any config key; each point gets its folder, its columns and its aggregate."""

    def test_grid_points_folders_columns_and_groups(self):
        out = temp_dir(self) / "grid"
        overrides = [arg for kv in TINY + ["training.steps=20"] for arg in ("--override", kv)]
        r = run_script("run_suite.py", "--presets", "mod_add_grokking", "--seeds", "0,1",
                       "--grid", "task.train_fraction=0.3,0.6", "--grid", "task.operation=x+y,x/y",
                       *overrides, "--no-curves", "--workers", "1", "--out", str(out))
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out / "sweep_summary.csv") as fh:
            rows = list(csv.DictReader(fh))
        self.assertEqual(len(rows), 8)
        self.assertEqual({(row["task.train_fraction"], row["task.operation"]) for row in rows},
                         {("0.3", "x+y"), ("0.3", "x/y"), ("0.6", "x+y"), ("0.6", "x/y")})
        run = out / "mod_add_grokking" / "train_fraction=0.3,operation=xovery" / "seed_1"
        config = json.loads((run / "config.json").read_text())
        self.assertEqual((config["task"]["operation"], config["task"]["train_fraction"]), ("x/y", 0.3))
        groups = json.loads((out / "sweep_summary.json").read_text())["by_preset"]
        self.assertIn("mod_add_grokking train_fraction=0.6 operation=x/y", groups)
        self.assertEqual({g["runs"] for g in groups.values()}, {2})

    def test_bad_grid(self):
        for args, message in ((["--grid", "task.train_fracton=0.3"], "task.train_fraction"),
                              (["--grid", "task.train_fraction"], "section.key=v1,v2"),
                              (["--grid", "training.seed=1,2"], "--seeds"),
                              (["--grid", "task.train_fraction=0.3,1.5"], "train_fraction must be in")):
            out = temp_dir(self) / "g"
            r = run_script("run_suite.py", "--presets", "mod_add_grokking", *args, "--out", str(out))
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertIn(message, r.stderr)
            self.assertFalse(out.exists())


if __name__ == "__main__":
    unittest.main()
