"""The phase diagram (Liu et al. 2022): the rule on hand-made curves, cells by majority with median
steps, and run_suite --phases, make_figures and make_report on a real grid."""

import json
import unittest
from pathlib import Path

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)

from grokking import phases
from grokking.errors import ConfigError

from helpers import TINY, run_script, temp_dir


def curves(train_at, val_at, last=5000, every=50):
    """metrics.csv columns whose train (val) accuracy crosses 0.9 at ``train_at`` (``val_at``)."""
    steps = list(range(every, last + 1, every))
    return {"step": steps,
            "train_acc": [0.95 if train_at is not None and s >= train_at else 0.5 for s in steps],
            "val_acc": [0.9 if val_at is not None and s >= val_at else 0.89 for s in steps]}


def fake_run(root: Path, lr, wd, seed, train_at, val_at) -> dict:
    run = root / f"lr={lr},wd={wd}" / f"seed_{seed}"
    run.mkdir(parents=True)
    m = curves(train_at, val_at)
    lines = ["step,train_acc,val_acc"] + [f"{s},{t},{v}" for s, t, v in zip(m["step"], m["train_acc"], m["val_acc"])]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    config = {"optimizer": {"lr": lr, "weight_decay": wd}, "training": {"seed": seed}, "task": {"p": 97}}
    (run / "config.json").write_text(json.dumps(config))
    return {"dir": run, "config": config}


class Rule(unittest.TestCase):
    def test_the_four_phases_and_the_edges_of_the_rule(self):
        cases = [((100, 150), "comprehension"), ((100, 1100), "comprehension"),  # 1,000 apart: within
                 ((100, 1150), "grokking"), ((100, None), "memorization"), ((None, None), "confusion"),
                 ((None, 300), "confusion")]  # validation without training: the rule's "neither"
        for (train_at, val_at), phase in cases:
            with self.subTest(train_at=train_at, val_at=val_at):
                got = phases.classify(curves(train_at, val_at))
                self.assertEqual(got["phase"], phase)
                self.assertEqual((got["train_step"], got["val_step"]), (train_at, val_at))
        # 0.9 counts as there, 0.89 not (curves() puts validation at exactly these two values).
        self.assertEqual(phases.first_step([1, 2], [0.89, 0.9]), 2)
        self.assertIsNone(phases.first_step([1, 2], [0.5, 0.899]))

    def test_cells_take_the_majority_of_their_seeds_and_median_steps(self):
        root = temp_dir(self)
        runs = [fake_run(root, 0.01, 1.0, 0, 100, 2000), fake_run(root, 0.01, 1.0, 1, 100, 3000),
                fake_run(root, 0.01, 1.0, 2, 100, None),  # grokking 2 of 3; median val step 3,000
                fake_run(root, 0.001, 1.0, 0, 100, 150), fake_run(root, 0.001, 1.0, 1, 100, None),  # a tie
                fake_run(root, 0.01, 0.0, 0, 200, None), fake_run(root, 0.001, 0.0, 0, None, None)]
        d = phases.diagram(runs)
        self.assertEqual((d["x"], d["y"], d["xs"], d["ys"]),
                         ("optimizer.lr", "optimizer.weight_decay", [0.001, 0.01], [0.0, 1.0]))
        cells = {(c["optimizer.lr"], c["optimizer.weight_decay"]): c for c in d["cells"]}
        self.assertEqual(cells[0.01, 1.0]["phase"], "grokking")
        self.assertEqual(cells[0.01, 1.0]["seeds"], {"comprehension": 0, "grokking": 2, "memorization": 1,
                                                     "confusion": 0})
        self.assertEqual(cells[0.01, 1.0]["median_val_step"], 3000)
        self.assertEqual(cells[0.001, 1.0]["phase"], "comprehension")  # the tie goes to the earlier phase
        self.assertIsNone(cells[0.001, 1.0]["median_val_step"])  # half never got there: infinitely late
        self.assertEqual(cells[0.01, 0.0]["phase"], "memorization")
        self.assertEqual(cells[0.001, 0.0]["phase"], "confusion")
        png = phases.draw(d, root / "phases.png")
        self.assertGreater(png.stat().st_size, 5000)

    def test_a_sweep_over_one_setting_has_no_diagram(self):
        root = temp_dir(self)
        runs = [fake_run(root, lr, 1.0, 0, 100, 150) for lr in (0.01, 0.1)]
        with self.assertRaisesRegex(ConfigError, "needs a sweep over two settings .* varies optimizer.lr"):
            phases.diagram(runs)


class Command(unittest.TestCase):
    def test_run_suite_phases_then_make_figures_and_the_report(self):
        out = temp_dir(self) / "grid"
        over = [a for kv in TINY + ["training.steps=200"] for a in ("--override", kv)]
        r = run_script("run_suite.py", "--presets", "mod_add_grokking", "--seeds", "0,1", "--phases", "--no-curves",
                       "--grid", "optimizer.lr=1e-3,3e-2", "--grid", "optimizer.weight_decay=0,1", "--workers", "2",
                       "--out", str(out), *over)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("phases of 4 cells:", r.stdout)
        d = json.loads((out / "phases.json").read_text())
        self.assertEqual((d["x"], d["y"]), ("optimizer.lr", "optimizer.weight_decay"))
        self.assertEqual(len(d["runs"]), 8)
        self.assertEqual(len((out / "phases.csv").read_text().splitlines()), 9)
        for row in d["runs"]:  # each run's phase is the rule applied to its own metrics.csv
            from grokking.plotting import read_metrics

            self.assertEqual(row["phase"], phases.classify(read_metrics(Path(row["run"]) / "metrics.csv"))["phase"])
        self.assertTrue((out / "phases.png").exists())
        r = run_script("make_figures.py", str(out), "--figures", "phases", "--out", str(out / "figs"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue((out / "figs" / "phases.png").exists())
        r = run_script("make_report.py", str(out))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('alt="phases"', (out / "report.html").read_text())

    def test_phases_needs_two_grid_keys(self):
        out = temp_dir(self) / "one"
        r = run_script("run_suite.py", "--presets", "mod_add_grokking", "--seeds", "0", "--phases",
                       "--grid", "optimizer.lr=1e-3,3e-2", "--out", str(out))
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("--phases draws a diagram over two settings: give two --grid keys, not 1", r.stderr)
        self.assertFalse(out.exists())


if __name__ == "__main__":
    unittest.main()
