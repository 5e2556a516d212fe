import csv
import json
import unittest

from grokking.errors import ConfigError
from grokking.experiment import METRIC_COLUMNS, _Record, eval_schedule, run_experiment

from helpers import outcome, quiet, temp_dir, tiny_config



class Runs(unittest.TestCase):
    def setUp(self):
        self.tmp = temp_dir(self)

    def run_tiny(self, name, *extra, **kw):
        return run_experiment(tiny_config(*extra, "output.curves=false"), self.tmp / name, log=quiet, **kw)

    def test_byte_identical_metrics_for_the_same_config(self):
        for extra in ([], ["training.batch_size=16"]):  # full batch and minibatch
            with self.subTest(extra=extra):
                self.run_tiny("a", *extra, force=True)
                self.run_tiny("b", *extra, force=True)
                a = (self.tmp / "a" / "metrics.csv").read_bytes()
                self.assertEqual(a, (self.tmp / "b" / "metrics.csv").read_bytes())
                self.run_tiny("c", *extra, "training.seed=1", force=True)
                self.assertNotEqual(a, (self.tmp / "c" / "metrics.csv").read_bytes())

    def test_artifacts(self):
        s = self.run_tiny("run")
        run = self.tmp / "run"
        cfg = json.loads((run / "config.json").read_text())
        self.assertEqual(cfg["task"]["p"], 11)
        self.assertEqual(set(cfg["meta"]), {"grokking", "python", "numpy", "numerics"})
        self.assertEqual(cfg["meta"]["numerics"]["id"], s["numerics"])
        split = json.loads((run / "split.json").read_text())
        self.assertEqual(sorted(split["train"] + split["val"]), list(range(121)))
        with open(run / "metrics.csv") as fh:
            rows = list(csv.DictReader(fh))
        self.assertEqual(tuple(rows[0]), METRIC_COLUMNS)
        self.assertEqual([int(r["step"]) for r in rows], eval_schedule(40, 10))
        summary = json.loads((run / "summary.json").read_text())
        self.assertEqual(summary, json.loads(json.dumps(s)))
        for key in ("status", "steps", "final_train_acc", "final_val_acc", "best_train_acc",
                    "best_val_acc", "final_train_loss", "final_val_loss", "steps_to_train_99",
                    "steps_to_val_99", "grok_delay", "grokked", "wall_time_s", "steps_per_s"):
            self.assertIn(key, summary)
        self.assertEqual((summary["status"], summary["steps"]), ("completed", 40))
        self.assertEqual(summary["final_val_acc"], float(rows[-1]["val_acc"]))
        self.assertEqual(summary["best_val_acc"], max(float(r["val_acc"]) for r in rows))

    @outcome
    def test_first_99_steps_and_delay_follow_the_metrics(self):
        # p = 23, wider layers and 80% of the table generalize: val 99% at step 320 (train 99% at 60)
        # under Haswell and SkylakeX kernels alike, and with a gradient noise of 1e-7 to 1e-4 standing
        # in for other kernels; the budget is 800. (60% with 64 hidden units got there at 1,040 under
        # Haswell, 1,260 under SkylakeX.) The TINY run memorizes by step 80 and does not generalize
        # in 3,000 steps.
        grokking = ["task.p=23", "model.d_embed=16", "model.d_hidden=128", "training.steps=800",
                    "training.eval_interval=20", "task.train_fraction=0.8"]
        for name, extra, grokked in (("groks", grokking, True), ("fit", ["training.steps=300"], False)):
            s = self.run_tiny(name, "optimizer.lr=0.01", *extra)
            with open(self.tmp / name / "metrics.csv") as fh:
                rows = list(csv.DictReader(fh))
            first = {k: next((int(r["step"]) for r in rows if float(r[k]) >= 0.99), None)
                     for k in ("train_acc", "val_acc")}
            self.assertIsNotNone(first["train_acc"])  # both memorize
            self.assertEqual(s["steps_to_train_99"], first["train_acc"])
            self.assertEqual(s["steps_to_val_99"], first["val_acc"])
            self.assertEqual(s["grokked"], grokked, name)
            self.assertEqual(first["val_acc"] is not None, grokked)
            expected = first["val_acc"] / first["train_acc"] if grokked else None
            self.assertEqual(s["grok_delay"], expected)

    @outcome
    def test_drops_after_the_first_99_are_counted(self):
        record = _Record()
        for step, val in enumerate([0.5, 0.95, 0.99, 0.5, 0.995, 0.89, 0.9, 1.0], start=1):
            record.add({"step": step, "train_acc": 1.0, "val_acc": val, "train_loss": 0.1, "val_loss": 0.2})
        self.assertEqual(record.first99["val"], 3)
        self.assertEqual(record.drops, 2)  # 0.5 and 0.89 after step 3; 0.9 is not below
        self.assertEqual(record.min_val_after, 0.5)
        s = self.run_tiny("never")  # 40 steps (best val 0.12; none in 3,000): nothing to count
        self.assertIsNone(s["steps_to_val_99"])
        self.assertEqual((s["val_drops_after_99"], s["min_val_acc_after_99"]), (None, None))

    @outcome
    def test_divergence_stops_the_run(self):
        s = self.run_tiny("div", "optimizer.lr=1e30", "optimizer.weight_decay=0", "optimizer.warmup_steps=0",
                          "optimizer.name=sgd", "training.steps=200")
        self.assertEqual(s["status"], "diverged")
        self.assertLess(s["steps"], 200)
        self.assertTrue((self.tmp / "div" / "summary.json").exists())

    def test_occupied_out_is_refused_without_force(self):
        self.run_tiny("x")
        before = (self.tmp / "x" / "metrics.csv").read_bytes()
        with self.assertRaisesRegex(ConfigError, "already holds a run.*--force"):
            self.run_tiny("x", "training.seed=5")
        self.assertEqual((self.tmp / "x" / "metrics.csv").read_bytes(), before)
        self.run_tiny("x", "training.seed=5", force=True)
        self.assertNotEqual((self.tmp / "x" / "metrics.csv").read_bytes(), before)

    def test_force_clears_files_of_the_earlier_run(self):
        run_experiment(tiny_config(), self.tmp / "y", log=quiet)  # draws curves.png
        self.assertTrue((self.tmp / "y" / "curves.png").exists())
        self.run_tiny("y", force=True)  # no curves this time: the old picture must not survive
        self.assertFalse((self.tmp / "y" / "curves.png").exists())

    def test_artifacts_get_the_usual_permissions(self):
        import os
        import stat

        self.run_tiny("perm")
        mask = os.umask(0)
        os.umask(mask)
        for name in ("config.json", "split.json", "summary.json", "checkpoint.npz"):
            mode = stat.S_IMODE((self.tmp / "perm" / name).stat().st_mode)
            self.assertEqual(mode, 0o666 & ~mask, name)

    def test_curves_png(self):
        run_experiment(tiny_config(), self.tmp / "png", log=quiet)
        self.assertEqual((self.tmp / "png" / "curves.png").read_bytes()[:8], b"\x89PNG\r\n\x1a\n")


class Interventions(unittest.TestCase):
    """Every intervention of Power et al. Fig. 2 is a config field that changes the run, reproducibly."""

    def test_each_changes_the_metrics_and_repeats_byte_for_byte(self):
        tmp = temp_dir(self)

        def metrics(name, *extra):
            run_experiment(tiny_config(*extra, "output.curves=false"), tmp / name, log=quiet)
            return (tmp / name / "metrics.csv").read_bytes()

        base = metrics("base")
        variants = {
            "adam": ["optimizer.name=adam"],
            "sgd": ["optimizer.name=sgd", "optimizer.lr=0.1"],
            "decay to init": ["optimizer.decay_toward=init"],
            "gradient noise": ["optimizer.grad_noise=0.01"],
            "weight noise": ["optimizer.weight_noise=0.01"],
            "minibatch": ["training.batch_size=8"],
            "lr": ["optimizer.lr=0.003"],
            "transformer": ["model.type=transformer", "model.d_model=8", "model.n_heads=2"],
            "transformer dropout": ["model.type=transformer", "model.d_model=8", "model.n_heads=2",
                                    "model.dropout=0.2"],
        }
        for what, extra in variants.items():
            with self.subTest(what):
                first = metrics(what, *extra)
                self.assertNotEqual(first, base)
                self.assertEqual(metrics(what + " again", *extra), first)


class Schedule(unittest.TestCase):
    def test_log_spaced_then_regular_and_last(self):
        s = eval_schedule(1050, 100)
        self.assertEqual(s[:2], [1, 2])
        self.assertIn(100, s)
        self.assertEqual(s[-3:], [900, 1000, 1050])
        self.assertEqual(s, sorted(set(s)))
        self.assertLessEqual(sum(x < 100 for x in s), 12)
        self.assertEqual(eval_schedule(5, 100), [1, 2, 4, 5])


if __name__ == "__main__":
    unittest.main()
