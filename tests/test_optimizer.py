import math
import unittest

import numpy as np

from grokking.optimizer import SGD, AdamW, learning_rate


class AdamWSteps(unittest.TestCase):
    def test_two_steps_by_hand(self):
        lr, b1, b2, eps, wd = 0.1, 0.9, 0.98, 1e-8, 0.5
        p = {"w": np.array([1.0, -2.0])}
        opt = AdamW(p, beta1=b1, beta2=b2, eps=eps, weight_decay=wd)
        g1, g2 = np.array([0.5, 1.0]), np.array([-1.0, 2.0])
        # Step 1 by hand: m = 0.1 g1, v = 0.02 g1^2, m_hat = g1, v_hat = g1^2.
        w = np.array([1.0, -2.0])
        w = w * (1 - lr * wd) - lr * g1 / (np.abs(g1) + eps)
        opt.step(p, {"w": g1}, lr)
        np.testing.assert_allclose(p["w"], w, rtol=1e-12)
        # Step 2 by hand.
        m = b1 * (1 - b1) * g1 + (1 - b1) * g2
        v = b2 * (1 - b2) * g1 ** 2 + (1 - b2) * g2 ** 2
        m_hat, v_hat = m / (1 - b1 ** 2), v / (1 - b2 ** 2)
        w = w * (1 - lr * wd) - lr * m_hat / (np.sqrt(v_hat) + eps)
        opt.step(p, {"w": g2}, lr)
        np.testing.assert_allclose(p["w"], w, rtol=1e-12)

    def test_decay_is_decoupled_from_the_gradient(self):
        # With zero gradient, AdamW only shrinks the weights: p <- p * (1 - lr * wd).
        p = {"w": np.array([2.0])}
        opt = AdamW(p, weight_decay=1.0)
        opt.step(p, {"w": np.array([0.0])}, 0.01)
        self.assertAlmostEqual(float(p["w"][0]), 2.0 * 0.99)

    def test_keeps_float32(self):
        p = {"w": np.ones(3, dtype=np.float32)}
        opt = AdamW(p, weight_decay=1.0)
        opt.step(p, {"w": np.ones(3, dtype=np.float32)}, 1e-3)
        self.assertEqual(p["w"].dtype, np.float32)
        self.assertEqual(opt.m["w"].dtype, np.float32)


class SGDSteps(unittest.TestCase):
    def test_momentum_and_weight_decay_by_hand(self):
        lr, mu, wd = 0.1, 0.9, 0.01
        p = {"w": np.array([1.0])}
        opt = SGD(p, momentum=mu, weight_decay=wd)
        d1 = 0.5 + wd * 1.0
        w1 = 1.0 - lr * d1
        opt.step(p, {"w": np.array([0.5])}, lr)
        self.assertAlmostEqual(float(p["w"][0]), w1)
        d2 = mu * d1 + (0.25 + wd * w1)
        opt.step(p, {"w": np.array([0.25])}, lr)
        self.assertAlmostEqual(float(p["w"][0]), w1 - lr * d2)

    def test_plain(self):
        p = {"w": np.array([1.0])}
        SGD(p).step(p, {"w": np.array([2.0])}, 0.1)
        self.assertAlmostEqual(float(p["w"][0]), 0.8)


class State(unittest.TestCase):
    def test_a_restored_optimizer_continues_identically(self):
        for make in (lambda p: AdamW(p, weight_decay=0.1), lambda p: SGD(p, momentum=0.9)):
            rng = np.random.default_rng(0)
            grads = [{"w": rng.standard_normal(3)} for _ in range(4)]
            a = {"w": np.ones(3)}
            opt_a = make(a)
            for g in grads:
                opt_a.step(a, g, 0.1)
            b = {"w": np.ones(3)}
            opt_b = make(b)
            for g in grads[:2]:
                opt_b.step(b, g, 0.1)
            state = {k: np.copy(v) for k, v in opt_b.state_dict().items()}
            c = {"w": b["w"].copy()}
            opt_c = make(c)
            opt_c.load_state_dict(state)
            for g in grads[2:]:
                opt_c.step(c, g, 0.1)
            np.testing.assert_array_equal(a["w"], c["w"])


class Warmup(unittest.TestCase):
    def test_linear_then_constant(self):
        rates = [learning_rate(s, 1e-3, 10) for s in range(1, 13)]
        for s, r in enumerate(rates, start=1):
            self.assertTrue(math.isclose(r, 1e-3 * min(s, 10) / 10))
        self.assertEqual(learning_rate(1, 1e-3, 0), 1e-3)


if __name__ == "__main__":
    unittest.main()
