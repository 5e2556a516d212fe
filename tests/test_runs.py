"""A run read back (grokking.open_run) and the parameters kept at chosen steps (output.snapshots):
the tables match the files, the snapshots are where they were asked for and the same after a
resume, --force clears them, and what cannot be read says why. Also runs docs/examples/open_a_run.py."""

import subprocess
import sys
import unittest
from unittest import mock

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking import ConfigError, open_run, run_experiment
from grokking.checkpoint import load_checkpoint, snapshot_steps
from grokking.plotting import read_metrics
from grokking.runs import RunNotReadable

from helpers import ROOT, quiet, temp_dir, tiny_config
from test_models_contract import interrupted


class Snapshots(unittest.TestCase):
    def test_steps_are_parsed_and_checked(self):
        self.assertEqual(snapshot_steps("", 100), [])
        self.assertEqual(snapshot_steps("log:4", 1000), [1, 10, 100, 1000])
        self.assertEqual(snapshot_steps("50, 10,50", 100), [10, 50])
        for bad in ("log:0", "log:x", "1;2", "0", "101"):
            with self.subTest(bad), self.assertRaises(ConfigError):
                snapshot_steps(bad, 100)
        with self.assertRaisesRegex(ConfigError, "output.snapshots"):
            tiny_config("output.snapshots=every 10")

    def test_kept_where_asked_the_same_after_a_resume_and_cleared_by_force(self):
        tmp = temp_dir(self)
        config = tiny_config("output.snapshots=5,12,30,40", "output.checkpoint_interval=25", "output.curves=false")
        whole, cut = tmp / "whole", tmp / "cut"
        run_experiment(config, whole, log=quiet)
        with interrupted("mlp", 37), self.assertRaises(KeyboardInterrupt):
            run_experiment(config, cut, log=quiet)
        run_experiment(config, cut, log=quiet, resume=True)
        run = open_run(cut)
        self.assertEqual(run.snapshot_steps, [5, 12, 30, 40])
        for step in run.snapshot_steps:
            a, b = (open_run(d).params(step) for d in (whole, cut))
            self.assertEqual([p.tobytes() for p in a.values()], [p.tobytes() for p in b.values()], step)
        self.assertNotEqual(run.params(5)["W1"].tobytes(), run.params(40)["W1"].tobytes())
        final = load_checkpoint(cut / "checkpoint.npz")[1]
        self.assertEqual([p.tobytes() for p in run.params().values()], [p.tobytes() for p in final.values()])
        with self.assertRaisesRegex(RunNotReadable, "no parameters of step 6; its snapshots: 5, 12, 30, 40"):
            run.params(6)
        run_experiment(tiny_config("output.curves=false"), cut, log=quiet, force=True)
        self.assertFalse((cut / "snapshots").exists(), "--force leaves nothing of the old run")


class OpenRun(unittest.TestCase):
    def setUp(self):
        self.tmp = temp_dir(self)
        self.path = self.tmp / "run"
        run_experiment(tiny_config("output.measures=fourier", "output.curves=false"), self.path, log=quiet)

    def test_tables_model_and_activations(self):
        run = open_run(self.path)
        metrics = read_metrics(self.path / "metrics.csv")
        with mock.patch.dict(sys.modules, {"pandas": None}):  # without pandas: a dict of arrays
            plain = open_run(self.path)
            self.assertIsInstance(plain.metrics, dict)
            np.testing.assert_array_equal(plain.metrics["val_acc"], metrics["val_acc"])
        try:
            import pandas  # noqa: F401
        except ImportError:
            pandas = None
        if pandas is not None:
            self.assertEqual(list(run.metrics.columns), list(metrics))
            np.testing.assert_array_equal(run.measures["step"].to_numpy(), metrics["step"])
        self.assertEqual(run.config.training.steps, 40)
        self.assertEqual(len(run.train_idx) + len(run.val_idx), len(run.table))
        self.assertEqual(run.summary["steps"], 40)
        logits, cache = run.run_with_cache(names=["blocks.0.mlp.hook_post"])
        np.testing.assert_allclose(logits, run.logits(), rtol=1e-5, atol=1e-5)
        self.assertEqual(cache["blocks.0.mlp.hook_post"].shape[0], len(run.table))
        self.assertEqual(run.embedding().shape[0], run.table.n_tokens)

    def test_what_cannot_be_opened_says_why(self):
        with self.assertRaisesRegex(RunNotReadable, "is not a directory"):
            open_run(self.tmp / "nowhere")
        (self.tmp / "empty").mkdir()
        with self.assertRaisesRegex(RunNotReadable, "has no config.json: it holds no run"):
            open_run(self.tmp / "empty")
        unfinished = self.tmp / "unfinished"
        with interrupted("mlp", 30), self.assertRaises(KeyboardInterrupt):
            run_experiment(tiny_config("output.curves=false", "output.checkpoint_interval=25"), unfinished, log=quiet)
        with self.assertRaisesRegex(RunNotReadable, "has not finished"):
            open_run(unfinished)
        self.assertEqual(len(open_run(unfinished, unfinished=True).params()), 5)
        with self.assertRaisesRegex(RunNotReadable, "measures.csv"):
            open_run(unfinished, unfinished=True).measures
        (unfinished / "checkpoint.npz").write_bytes(b"garbage")
        with self.assertRaisesRegex(RunNotReadable, "cannot read checkpoint"):
            open_run(unfinished, unfinished=True).params()


class Example(unittest.TestCase):
    def test_the_docs_example_runs(self):
        r = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "open_a_run.py")], capture_output=True,
                           text=True, timeout=300, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("validation accuracy 0.99", r.stdout)
        self.assertRegex(r.stdout, r"key frequencies removed: loss [3-9]\.")


if __name__ == "__main__":
    unittest.main()
