"""The losses beyond the engines' default softmax: StableMax, and a loss precision of its own."""

import unittest

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking.engine import Batch, cross_entropy, softmax_cross_entropy
from grokking.model import MLP


def summed(loss, z, labels, dtype=None):
    return cross_entropy(np.array(z), np.asarray(labels), 1.0, loss, dtype)


class ByHand(unittest.TestCase):
    def test_stablemax_by_hand(self):
        # z = (0, 1), answer 0: s = (1, 2), p = (1/3, 2/3), loss log 3; gradient (p - onehot) / (1 + |z|).
        loss, correct, grad = summed("stablemax", [[0.0, 1.0]], [0], np.float64)
        self.assertAlmostEqual(loss, np.log(3.0), places=15)
        self.assertEqual(correct, 0)
        np.testing.assert_allclose(grad, [[-2 / 3, 1 / 3]], rtol=1e-15)
        # Negative logits: s(-1) = 1/2, s(-3) = 1/4; answer 0: p = 2/3, loss log 1.5.
        loss, correct, grad = summed("stablemax", [[-1.0, -3.0]], [0], np.float64)
        self.assertAlmostEqual(loss, np.log(1.5), places=15)
        self.assertEqual(correct, 1)
        np.testing.assert_allclose(grad, [[(2 / 3 - 1) / 2, (1 / 3) / 4]], rtol=1e-15)

    def test_general_softmax_agrees_with_the_engines(self):
        rng = np.random.default_rng(1)
        z = rng.standard_normal((8, 7))
        labels = rng.integers(0, 7, 8)
        a = softmax_cross_entropy(z.copy(), labels, 0.5)
        b = cross_entropy(z.copy(), labels, 0.5)
        self.assertAlmostEqual(a[0], b[0], places=12)
        self.assertEqual(a[1], b[1])
        np.testing.assert_allclose(a[2], b[2], atol=1e-15)

    def test_a_float64_loss_sees_what_float32_loses(self):
        # A float32 model's logits 20 apart: in float32 the wrong class's e^-20 vanishes next to 1
        # (the loss is exactly 0: softmax collapse); in float64 it is e^-20, and the gradient is kept
        # in the model's dtype.
        z = np.array([[20.0, 0.0]], dtype=np.float32)
        self.assertEqual(cross_entropy(z.copy(), np.array([0]), 1.0)[0], 0.0)
        loss, _, grad = cross_entropy(z.copy(), np.array([0]), 1.0, "softmax", np.float64)
        self.assertAlmostEqual(loss, np.log1p(np.exp(-20.0)), delta=1e-15)
        self.assertEqual(grad.dtype, np.float32)
        self.assertAlmostEqual(float(grad[0, 1]), float(np.exp(-20.0) / (1 + np.exp(-20.0))), delta=1e-15)
        # StableMax of the same logits is far from collapse: s(0) / s(20) = 1/21.
        self.assertAlmostEqual(cross_entropy(z.copy(), np.array([0]), 1.0, "stablemax")[0], np.log(22 / 21), places=6)


class Models(unittest.TestCase):
    """A loss in another precision than the model's (every model's StableMax gradients are checked in
    tests/test_models_contract.py, the losses' own in tests/test_layers.py)."""

    def test_a_float64_loss_over_a_float32_model(self):
        rng = np.random.default_rng(2)
        plain = MLP(7, 5, d_embed=4, d_hidden=6)
        precise = MLP(7, 5, d_embed=4, d_hidden=6, loss_dtype="float64")
        params = plain.init_params(rng)
        batch = Batch(rng.integers(0, 7, 9), rng.integers(0, 7, 9), rng.integers(0, 5, 9), 7)
        a, _, ga = plain.loss_and_grads(params, batch)
        b, _, gb = precise.loss_and_grads(params, batch)
        self.assertAlmostEqual(a, b, places=5)
        for key in params:
            self.assertEqual(gb[key].dtype, np.float32)
            np.testing.assert_allclose(ga[key], gb[key], rtol=1e-3, atol=1e-6)


if __name__ == "__main__":
    unittest.main()
