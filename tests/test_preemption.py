"""Preemption: SIGTERM (what Slurm, Kubernetes and a Dask cluster send) stops a run at a checkpoint
of the step it reached, with one line and status 143, and --resume (or the same sweep command)
continues it byte for byte; a Dask worker shut down under a run hands it to another."""

import os
import signal
import subprocess
import sys
import time
import unittest
from pathlib import Path
from unittest import mock

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)

from grokking import experiment, preemption
from grokking.checkpoint import load_checkpoint
from grokking.experiment import run_experiment
from grokking.preemption import Preempted
from grokking.sweeps import FAULT_ENV, run_suite

from helpers import ROOT, TINY, assert_same_run, quiet, run_script, temp_dir, tiny_config

HAS_DASK = __import__("importlib.util").util.find_spec("distributed") is not None


def sigterm_at(step):
    """Patch the training loop so that this process receives SIGTERM during update ``step``."""
    real = experiment.learning_rate

    def lr(s, *args):
        if s == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(s, *args)

    return mock.patch.object(experiment, "learning_rate", lr)


def wait_for_rows(path: Path, proc, at_least: int, deadline_s=120) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) > at_least:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never got {at_least} rows while the process ran")


class RunExperiment(unittest.TestCase):
    def setUp(self):
        self.tmp = temp_dir(self)

    def test_sigterm_mid_run_checkpoints_that_step_and_resume_gives_the_same_bytes(self):
        # Checkpoints every 25 steps; SIGTERM during steps 37 (between checkpoints), 30 (an
        # evaluation) and 25 (a checkpoint): nothing after the step it arrived in is lost.
        variants = {"mlp full batch": [],
                    "transformer, dropout, minibatch": ["model.type=transformer", "model.d_model=8",
                                                        "model.n_heads=2", "model.dropout=0.1",
                                                        "training.batch_size=16"],
                    "measures": ["output.measures=all"]}
        for what, extra in variants.items():
            config = tiny_config(*extra, "task.train_fraction=0.5", "output.curves=false",
                                 "output.checkpoint_interval=25")
            whole = self.tmp / f"{what}-whole"
            run_experiment(config, whole, log=quiet)
            for step in (37, 30, 25):
                with self.subTest(what, step=step):
                    cut = self.tmp / f"{what}-{step}"
                    with sigterm_at(step), self.assertRaises(Preempted) as stopped:
                        run_experiment(config, cut, log=quiet)
                    self.assertEqual(stopped.exception.step, step)
                    self.assertEqual(stopped.exception.code, 143)
                    self.assertIn(f"stopped by SIGTERM after step {step}", str(stopped.exception))
                    self.assertEqual(load_checkpoint(cut / "checkpoint.npz")[0]["step"], step)
                    self.assertFalse((cut / "summary.json").exists())
                    self.assertIs(signal.getsignal(signal.SIGTERM), signal.SIG_DFL)  # given back
                    self.assertFalse(preemption.requested())
                    run_experiment(config, cut, log=quiet, resume=True)
                    assert_same_run(self, whole, cut)

    def test_a_stop_callable_stops_the_run_the_same_way(self):
        config = tiny_config("output.curves=false", "output.checkpoint_interval=0")
        whole, cut = self.tmp / "whole", self.tmp / "cut"
        run_experiment(config, whole, log=quiet)
        polls = []
        with self.assertRaisesRegex(Preempted, "stopped by a stop request after step 12"):
            run_experiment(config, cut, log=quiet, stop=lambda: polls.append(1) or len(polls) == 12)
        self.assertEqual(load_checkpoint(cut / "checkpoint.npz")[0]["step"], 12)
        run_experiment(config, cut, log=quiet, resume=True, stop=lambda: False)
        assert_same_run(self, whole, cut)

    def test_a_sigterm_after_the_last_step_lets_the_run_finish_then_ends_the_process(self):
        # The run is complete, so it is written to the end; then the process ends as SIGTERM asked.
        out = self.tmp / "late"
        code = ("import os, signal, sys; import grokking; from grokking import experiment\n"
                "from grokking.config import resolve_config\n"
                "real = experiment._Run.summary\n"
                "def summary(self, wall):\n"
                "    os.kill(os.getpid(), signal.SIGTERM)\n"
                "    return real(self, wall)\n"
                "experiment._Run.summary = summary\n"
                f"config = resolve_config('mod_add_grokking', None, {TINY!r})\n"
                f"experiment.run_experiment(config, {str(out)!r}, log=lambda *a: None)\n"
                "print('after the run')\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=120)
        self.assertEqual(r.returncode, -signal.SIGTERM, r.stderr)
        self.assertNotIn("after the run", r.stdout)
        self.assertTrue((out / "summary.json").exists())


class CommandLine(unittest.TestCase):
    def test_sigterm_is_one_line_status_143_and_resume_gives_the_same_bytes(self):
        tmp = temp_dir(self)
        args = ["--preset", "mod_add_grokking", "--no-curves"]
        for kv in [*TINY, "training.steps=10000", "training.eval_interval=100",
                   "output.checkpoint_interval=5000"]:
            args += ["--override", kv]
        cut, whole = tmp / "cut", tmp / "whole"
        proc = subprocess.Popen([sys.executable, str(ROOT / "run_experiment.py"), *args, "--out", str(cut)],
                                env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_rows(cut / "metrics.csv", proc, 30)  # past step 1,500, before the checkpoint at 5,000
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
            proc.wait()
        self.assertEqual(proc.returncode, 143, err)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        step = load_checkpoint(cut / "checkpoint.npz")[0]["step"]
        self.assertLess(step, 5000)
        self.assertIn(f"stopped by SIGTERM after step {step}, at a checkpoint of that step; continue it "
                      f"with run_experiment --resume --out {cut}", lines[0])
        r = run_script("run_experiment.py", "--resume", "--out", str(cut))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_script("run_experiment.py", *args, "--out", str(whole))
        self.assertEqual(r.returncode, 0, r.stderr)
        assert_same_run(self, whole, cut)


def metrics(out: Path) -> dict:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.glob("*/seed_*/metrics.csv"))}


class Sweeps(unittest.TestCase):
    def test_sigterm_stops_the_sweep_at_checkpoints_and_the_same_command_resumes_it(self):
        tmp = temp_dir(self)
        overrides = [*TINY, "training.steps=40000", "training.eval_interval=1000", "output.checkpoint_interval=0"]
        args = ["--presets", "mod_add_grokking", "--seeds", "0,1,2", "--workers", "2", "--no-curves",
                "--out", str(tmp / "cut")] + [a for kv in overrides for a in ("--override", kv)]
        proc = subprocess.Popen([sys.executable, str(ROOT / "run_suite.py"), *args],
                                env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            for seed in (0, 1):
                wait_for_rows(tmp / "cut" / "mod_add_grokking" / f"seed_{seed}" / "metrics.csv", proc, 16)
            proc.send_signal(signal.SIGTERM)  # the sweep only: it passes the signal on to its workers
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
            proc.wait()
        self.assertEqual(proc.returncode, 143, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("run_suite: stopped by SIGTERM; 2 run(s) in flight stopped at a checkpoint", err)
        for seed in (0, 1):  # no scheduled checkpoint: these are the preemption's own
            run = tmp / "cut" / "mod_add_grokking" / f"seed_{seed}"
            self.assertFalse((run / "summary.json").exists())
            self.assertGreater(load_checkpoint(run / "checkpoint.npz")[0]["step"], 4000)
        self.assertFalse((tmp / "cut" / "mod_add_grokking" / "seed_2" / "checkpoint.npz").exists())

        rows = run_suite(["mod_add_grokking"], [0, 1, 2], tmp / "cut", overrides=overrides, curves=False,
                         workers=2, log=quiet)
        self.assertEqual([(r["status"], r["action"], r["attempts"]) for r in rows],
                         [("completed", "resumed", 1), ("completed", "resumed", 1), ("completed", "trained", 1)])
        run_suite(["mod_add_grokking"], [0, 1, 2], tmp / "whole", overrides=overrides, curves=False,
                  workers=2, log=quiet)
        self.assertEqual(metrics(tmp / "cut"), metrics(tmp / "whole"))

    @unittest.skipUnless(HAS_DASK, "dask.distributed is not installed (pip install -e '.[dask]')")
    def test_a_dask_worker_retired_under_a_run_hands_it_to_another_which_resumes_it(self):
        tmp = temp_dir(self)
        # Long enough (about 5 s) for the retirement, which takes a moment, to land mid-run.
        overrides = [*TINY, "training.steps=40000", "training.eval_interval=1000", "output.checkpoint_interval=0"]
        said = []
        with mock.patch.dict(os.environ, {FAULT_ENV: "mod_add_grokking/seed_1:retire-at-200"}):
            rows = run_suite(["mod_add_grokking"], [0, 1], tmp / "dask", overrides=overrides, curves=False,
                             workers=2, backend="dask", log=said.append)
        self.assertEqual([(r["status"], r["attempts"], r["action"]) for r in rows],
                         [("completed", 1, "trained"), ("completed", 1, "resumed")])
        self.assertFalse(any("retrying" in line or "failed after" in line for line in said), said)
        run_suite(["mod_add_grokking"], [0, 1], tmp / "local", overrides=overrides, curves=False,
                  workers=2, log=quiet)
        self.assertEqual(metrics(tmp / "dask"), metrics(tmp / "local"))


if __name__ == "__main__":
    unittest.main()
