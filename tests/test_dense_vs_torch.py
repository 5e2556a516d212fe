"""benchmarks/dense_vs_pytorch.py at a tiny size: the dense model and an independent PyTorch copy,
from the same weights on the same minibatches, stay together to rounding for 50 float64 steps, with
each update rule the dense presets use (SGD + softmax like sparse_parity, AdamW + MSE + 8x uniform
init like digits_omnigrok). Optional: skipped without torch, which is never a dependency."""

import csv
import io
import sys
import tempfile
import unittest
from contextlib import redirect_stdout
from pathlib import Path

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)

try:
    import torch
except ImportError:  # the cross-check is optional
    torch = None

TINY = ["task.bits=12", "task.samples=200", "model.d_hidden=64", "training.batch_size=16"]
# digits_omnigrok's rule on the tiny parity task (the digits need scikit-learn, another optional).
ADAMW_MSE = ["model.n_layers=2", "model.init_scale=8.0", "model.loss=mse", "optimizer.name=adamw",
             "optimizer.lr=1e-3", "optimizer.beta2=0.999"]


@unittest.skipUnless(torch is not None, "torch is not installed (the PyTorch cross-check is optional)")
class DenseMatchesPyTorch(unittest.TestCase):
    def trajectory(self, overrides):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
        import dense_vs_pytorch

        args = ["--presets", "sparse_parity", "--steps", "50", "--every", "10"]
        for o in overrides:
            args += ["--override", o]
        with tempfile.TemporaryDirectory() as tmp, redirect_stdout(io.StringIO()):
            out = Path(tmp) / "t.csv"
            self.assertEqual(dense_vs_pytorch.main([*args, "--out", str(out)]), 0)
            with out.open() as fh:
                return list(csv.DictReader(fh))

    def check(self, rows):
        self.assertEqual([int(r["step"]) for r in rows], [10, 20, 30, 40, 50])
        for row in rows:
            with self.subTest(step=row["step"]):
                self.assertLess(float(row["max_abs_param_diff"]), 1e-9)
                for split in ("train", "val"):
                    self.assertAlmostEqual(float(row[f"{split}_loss_ours"]), float(row[f"{split}_loss_torch"]),
                                           places=9)
                    self.assertEqual(row[f"{split}_acc_ours"], row[f"{split}_acc_torch"])

    def test_sgd_softmax_as_sparse_parity(self):
        self.check(self.trajectory(TINY))

    def test_adamw_mse_as_digits_omnigrok(self):
        self.check(self.trajectory(TINY + ADAMW_MSE))


if __name__ == "__main__":
    unittest.main()
