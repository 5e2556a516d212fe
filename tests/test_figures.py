import json
import tempfile
import unittest
from pathlib import Path

import numpy as np

from grokking import figures
from grokking.errors import ConfigError
from grokking.experiment import replay, run_experiment
from grokking.plotting import read_metrics

from helpers import run_script, tiny_config

PNG = b"\x89PNG\r\n\x1a\n"


def quiet(*_):
    pass


class Figures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp())
        cls.sweep = cls.tmp / "sweep"
        for op in ("x+y", "x-y"):
            for frac in (0.3, 0.6):
                for seed in (0, 1):
                    config = tiny_config(f"task.operation={op}", f"task.train_fraction={frac}",
                                         f"training.seed={seed}", "output.curves=false",
                                         "training.steps=60", "optimizer.lr=0.01")
                    run_experiment(config, cls.sweep / op / f"f{frac}" / f"seed_{seed}", log=quiet)

    def test_runs_found_and_labelled_by_what_varies(self):
        runs = figures.find_runs(self.sweep)
        self.assertEqual(len(runs), 8)
        self.assertEqual(sorted(set(figures.line_labels(runs))), ["operation=x+y", "operation=x-y"])

    def test_labels_name_what_departs_from_the_majority(self):
        def run(**optimizer):
            return {"config": {"optimizer": {"lr": 0.01, "grad_noise": 0.0, **optimizer},
                               "training": {"seed": 0}}}

        runs = [run(), run(grad_noise=0.01), run(lr=0.003), run()]
        self.assertEqual(figures.line_labels(runs), ["reference", "grad_noise=0.01", "lr=0.003", "reference"])

    def test_every_sweep_figure_is_a_png(self):
        made = figures.draw(self.sweep, self.tmp / "figs", ["fraction", "best", "interventions", "seeds"])
        self.assertEqual([p.name for p in made], ["fraction.png", "best.png", "interventions.png", "seeds.png"])
        for path in made:
            self.assertEqual(path.read_bytes()[:8], PNG)

    def test_replayed_metrics_give_the_summary(self):
        for run in figures.find_runs(self.sweep):
            record = replay(read_metrics(run["dir"] / "metrics.csv"))
            s = run["summary"]
            self.assertEqual((record.first99["train"], record.first99["val"]),
                             (s["steps_to_train_99"], s["steps_to_val_99"]))
            self.assertEqual(record.drops if s["grokked"] else None, s["val_drops_after_99"])
            self.assertEqual(record.best["val_acc"], s["best_val_acc"])

    def test_curves_of_one_run(self):
        made = figures.draw(self.sweep / "x+y" / "f0.3" / "seed_0", self.tmp / "one", ["curves"])
        self.assertEqual(made[0].read_bytes()[:8], PNG)

    def test_embedding_pca_finds_a_circle(self):
        run = self.tmp / "circle"
        run.mkdir()
        p = 11
        angle = 2 * np.pi * np.arange(p) / p
        rng = np.random.default_rng(0)
        basis = np.linalg.qr(rng.standard_normal((16, 2)))[0]  # a random plane in 16 dimensions
        embed = np.stack([np.cos(angle), np.sin(angle)], axis=1) @ basis.T * 3 + 0.01 * rng.standard_normal((p, 16))
        np.savez(run / "checkpoint.npz", **{"param.embed": embed})
        (run / "config.json").write_text(json.dumps({"task": {"operation": "x+y", "p": p}}))
        (run / "summary.json").write_text("{}")
        figures.embedding_pca(run, run / "pca.png")
        self.assertEqual((run / "pca.png").read_bytes()[:8], PNG)
        xy = figures.principal_components(embed)
        radius = np.hypot(xy[:, 0], xy[:, 1])
        self.assertLess(radius.std() / radius.mean(), 0.02)
        self.assertEqual(figures.key_frequency(embed), 1)
        angle3 = 2 * np.pi * 3 * np.arange(p) / p  # a circle of frequency 3
        self.assertEqual(figures.key_frequency(np.stack([np.cos(angle3), np.sin(angle3)], axis=1) @ basis.T), 3)

    def test_command_line(self):
        out = self.tmp / "cli"
        r = run_script("make_figures.py", str(self.sweep), "--out", str(out), "--figures", "fraction,best")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(p.name for p in out.iterdir()), ["best.png", "fraction.png"])
        r = run_script("make_figures.py", str(self.tmp / "missing"))
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)
        self.assertIn("not a directory", r.stderr)

    def test_bad_input(self):
        with self.assertRaisesRegex(ConfigError, "no finished run"):
            figures.find_runs(Path(tempfile.mkdtemp()))
        with self.assertRaisesRegex(ConfigError, "not a directory"):
            figures.find_runs(self.tmp / "missing")
        with self.assertRaisesRegex(ConfigError, "unknown figure 'fig9'"):
            figures.draw(self.sweep, self.tmp / "x", ["fig9"])


if __name__ == "__main__":
    unittest.main()
