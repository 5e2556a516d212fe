"""The command lines as a user runs them: tiny budgets, every artifact checked, every bad input refused."""

import csv
import json
import unittest

from helpers import ROOT, TINY, outcome, run_script, temp_dir

OVERRIDES = [arg for kv in TINY for arg in ("--override", kv)]


class RunExperimentCommand(unittest.TestCase):
    def setUp(self):
        self.tmp = temp_dir(self)

    def test_tiny_run_writes_every_artifact(self):
        out = self.tmp / "run"
        r = run_script("run_experiment.py", "--preset", "mod_add_grokking", *OVERRIDES, "--out", str(out))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("mod_add_grokking: completed after 40 steps", r.stdout)
        self.assertEqual({p.name for p in out.iterdir()},
                         {"config.json", "split.json", "metrics.csv", "checkpoint.npz", "summary.json",
                          "curves.png"})
        self.assertEqual(json.loads((out / "summary.json").read_text())["steps"], 40)
        with open(out / "metrics.csv") as fh:
            self.assertEqual(int(list(csv.DictReader(fh))[-1]["step"]), 40)
        self.assertEqual((out / "curves.png").read_bytes()[:4], b"\x89PNG")

    def test_config_file_and_no_curves(self):
        out = self.tmp / "s5"
        r = run_script("run_experiment.py", "--config", str(ROOT / "configs" / "perm_s5_grokking.json"),
                       "--override", "task.n=3", "--override", "training.steps=5", "--no-curves",
                       "--out", str(out))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse((out / "curves.png").exists())
        self.assertEqual(json.loads((out / "config.json").read_text())["task"]["n"], 3)

    def test_list_presets_and_keys(self):
        r = run_script("run_experiment.py", "--list-presets")
        self.assertEqual(r.returncode, 0)
        for name in ("mod_add_baseline", "mod_add_grokking", "perm_s5_baseline", "perm_s5_grokking"):
            self.assertIn(name, r.stdout)
        r = run_script("run_experiment.py", "--list-keys")
        self.assertIn("optimizer.weight_decay", r.stdout)

    def test_bad_input_is_one_line_exit_2_nothing_written(self):
        bad_json = self.tmp / "bad.json"
        bad_json.write_text("{not json")
        unknown = self.tmp / "unknown.json"
        unknown.write_text('{"task": {"prime": 7}}')
        inf_json = self.tmp / "inf.json"
        inf_json.write_text('{"task": {"train_fraction": Infinity}}')  # Python's json reads it
        cases = {
            "unknown preset": (["--preset", "nope"], "unknown preset 'nope'"),
            "unknown key": (["--override", "optimizer.weight_decy=1"], "optimizer.weight_decay"),
            "wrong type": (["--override", "training.steps=many"], "not a valid int"),
            "malformed json": (["--config", str(bad_json)], "not valid JSON"),
            "unknown json key": (["--config", str(unknown)], "unknown key 'task.prime'"),
            "non-prime p": (["--override", "task.operation=x/y", "--override", "task.p=91"], "must be prime"),
            "fraction": (["--override", "task.train_fraction=1"], "train_fraction must be in (0, 1)"),
            "steps": (["--override", "training.steps=0"], "steps must be >= 1"),
            "big group": (["--preset", "perm_s5_grokking", "--override", "task.n=7"], "between 2 and 6"),
            "bad flag": (["--bogus"], "unrecognized arguments"),
            "infinite decay": (["--override", "optimizer.weight_decay=inf"],
                               "optimizer.weight_decay must be a finite number, got inf"),
            "infinite rate": (["--override", "optimizer.lr=inf"], "optimizer.lr must be a finite number"),
            "nan init": (["--override", "model.init_scale=nan"], "model.init_scale must be a finite number, got nan"),
            "infinite json": ([f"--config={inf_json}"], "task.train_fraction must be a finite number"),
            "measure on S5": (["--preset", "perm_s5_grokking", "--override", "output.measures=fourier"],
                              "'fourier' does not apply to 'x.y'"),
            "two-hot transformer": (["--preset", "fig1_div_transformer", "--override", "model.input=twohot"],
                                    "model.input=twohot is an MLP setting"),
            "unknown input": (["--override", "model.input=threehot"], "model.input must be one of embedding, onehot, twohot"),
        }
        for what, (args, message) in cases.items():
            with self.subTest(what):
                out = self.tmp / what.replace(" ", "_")
                r = run_script("run_experiment.py", *args, "--out", str(out))
                self.assertEqual(r.returncode, 2)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertIn(message, r.stderr)
                self.assertNotIn("Traceback", r.stderr)
                self.assertFalse(out.exists())

    @outcome
    def test_a_diverged_run_exits_1_quietly_with_its_curves(self):
        out = self.tmp / "div"
        r = run_script("run_experiment.py", "--preset", "mod_add_grokking", *OVERRIDES, "--out", str(out),
                       "--override", "optimizer.lr=1e30", "--override", "optimizer.name=sgd",
                       "--override", "optimizer.weight_decay=0", "--override", "optimizer.warmup_steps=0",
                       "--override", "output.measures=all")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip().splitlines(),
                         [f"run_experiment: the run diverged at step 1 (a non-finite loss); its artifacts are in {out}"])
        self.assertEqual(json.loads((out / "summary.json").read_text())["status"], "diverged")
        self.assertEqual((out / "curves.png").read_bytes()[:4], b"\x89PNG")
        self.assertTrue((out / "measures.csv").exists())

    def test_occupied_out_refused_then_forced(self):
        out = self.tmp / "busy"
        args = ["--preset", "mod_add_baseline", *OVERRIDES, "--no-curves", "--out", str(out)]
        self.assertEqual(run_script("run_experiment.py", *args).returncode, 0)
        before = (out / "summary.json").read_bytes()
        r = run_script("run_experiment.py", *args)
        self.assertEqual(r.returncode, 2)
        self.assertIn("already holds a run", r.stderr)
        self.assertEqual((out / "summary.json").read_bytes(), before)
        self.assertEqual(run_script("run_experiment.py", *args, "--force").returncode, 0)


class RunSuiteCommand(unittest.TestCase):
    def test_tiny_sweep(self):
        out = temp_dir(self) / "sweep"
        r = run_script("run_suite.py", "--presets", "mod_add_baseline,mod_add_grokking", "--seeds", "0,1",
                       *OVERRIDES, "--no-curves", "--out", str(out))
        self.assertEqual(r.returncode, 0, r.stderr)
        for preset in ("mod_add_baseline", "mod_add_grokking"):
            self.assertIn(preset, r.stdout)
            for seed in (0, 1):
                self.assertTrue((out / preset / f"seed_{seed}" / "summary.json").exists())
        with open(out / "sweep_summary.csv") as fh:
            rows = list(csv.DictReader(fh))
        self.assertEqual([(r["preset"], r["seed"]) for r in rows],
                         [("mod_add_baseline", "0"), ("mod_add_baseline", "1"),
                          ("mod_add_grokking", "0"), ("mod_add_grokking", "1")])
        self.assertIn("steps_to_val_99", rows[0])
        summary = json.loads((out / "sweep_summary.json").read_text())
        self.assertEqual(len(summary["runs"]), 4)
        self.assertEqual(summary["by_preset"]["mod_add_grokking"]["runs"], 2)
        self.assertIn("median val 99%", r.stdout)

    def test_bad_input(self):
        out = temp_dir(self) / "sweep"
        for args, message in (((("--presets", "mod_add_grokking,nope")), "unknown preset 'nope'"),
                              (("--seeds", "0,x"), "comma-separated list of whole numbers")):
            r = run_script("run_suite.py", *args, "--out", str(out))
            self.assertEqual(r.returncode, 2)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertIn(message, r.stderr)
            self.assertFalse(out.exists())


if __name__ == "__main__":
    unittest.main()
