import math
import unittest

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking.optimizer import (NS_COEFFICIENTS, SGD, Adam, AdamW, Muon, _buffer_of, flatten, learning_rate,
                                muon_parameters, newton_schulz)


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


class Interventions(unittest.TestCase):
    def test_decay_toward_the_initial_weights(self):
        # Zero gradient: p <- p + lr * wd * (p0 - p), so a moved weight is pulled back toward p0.
        p = {"w": np.array([2.0])}
        opt = AdamW(p, weight_decay=1.0, decay_to_init=True)
        p["w"][0] = 3.0
        opt.step(p, {"w": np.array([0.0])}, 0.1)
        self.assertAlmostEqual(float(p["w"][0]), 3.0 + 0.1 * (2.0 - 3.0))

    def test_coupled_adam_adds_l2_to_the_gradient(self):
        lr, wd, eps = 0.1, 0.5, 1e-8
        p = {"w": np.array([1.0, -2.0])}
        g = np.array([0.5, 1.0])
        Adam(p, eps=eps, weight_decay=wd, decoupled=False).step(p, {"w": g}, lr)
        g_l2 = g + wd * np.array([1.0, -2.0])
        # First step: m_hat = g, v_hat = g^2, so the update is lr * sign(g), with no separate decay.
        np.testing.assert_allclose(p["w"], np.array([1.0, -2.0]) - lr * g_l2 / (np.abs(g_l2) + eps))


class FlatParameters(unittest.TestCase):
    def test_flatten_keeps_names_shapes_values_in_one_buffer(self):
        rng = np.random.default_rng(0)
        params = {"a": rng.standard_normal((3, 4)).astype(np.float32), "b": np.arange(5, dtype=np.float32)}
        flat = flatten(params)
        self.assertIsNotNone(_buffer_of(flat))
        self.assertIsNone(_buffer_of(params))
        for k in params:
            np.testing.assert_array_equal(flat[k], params[k])
        flat["b"][0] = 42  # a view: writes reach the buffer
        self.assertEqual(_buffer_of(flat)[12], 42)

    def test_flat_update_equals_per_tensor_update_bit_for_bit(self):
        rng = np.random.default_rng(1)
        shapes = {"embed": (7, 3), "W1": (6, 5), "b1": (5,)}
        for kwargs in ({"weight_decay": 1.0}, {"weight_decay": 0.5, "decoupled": False},
                       {"weight_decay": 1.0, "decay_to_init": True}):
            start = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
            apart = {k: v.copy() for k, v in start.items()}
            together = flatten(start)
            opt_a, opt_t = Adam(apart, **kwargs), Adam(together, **kwargs)
            self.assertIsNone(opt_a.flat)
            self.assertIsNotNone(opt_t.flat)
            for _ in range(3):
                grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
                opt_a.step(apart, grads, 0.01)
                opt_t.step(together, grads, 0.01)
            for k in shapes:
                with self.subTest(kwargs=kwargs, param=k):
                    self.assertEqual(apart[k].tobytes(), together[k].tobytes())
                    self.assertEqual(opt_a.v[k].tobytes(), opt_t.v[k].tobytes())


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
        for make in (lambda p: AdamW(p, weight_decay=0.1), lambda p: SGD(p, momentum=0.9),
                     lambda p: AdamW(p, weight_decay=0.1, decay_to_init=True)):
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




class MuonSteps(unittest.TestCase):
    @staticmethod
    def scalar_newton_schulz(s, steps=5):
        # On a diagonal matrix the iteration acts on each singular value alone: x <- a x + b x^3 + c x^5.
        a, b, c = NS_COEFFICIENTS
        for _ in range(steps):
            s = a * s + b * s ** 3 + c * s ** 5
        return s

    def test_newton_schulz_on_diagonal_and_rotated_matrices(self):
        g = np.diag([3.0, 4.0])
        expected = self.scalar_newton_schulz(np.array([3.0, 4.0]) / 5.0)
        np.testing.assert_allclose(newton_schulz(g), np.diag(expected), rtol=1e-6)
        # Rotations on both sides carry through: the result keeps g's singular vectors.
        rng = np.random.default_rng(0)
        u, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        v, _ = np.linalg.qr(rng.standard_normal((2, 2)))
        tall = u[:, :2] @ np.diag([3.0, 4.0]) @ v.T
        np.testing.assert_allclose(newton_schulz(tall), u[:, :2] @ np.diag(expected) @ v.T, atol=1e-6)
        # And it is about orthogonal: singular values in Muon's band.
        sing = np.linalg.svd(newton_schulz(rng.standard_normal((8, 5))), compute_uv=False)
        self.assertTrue(np.all((sing > 0.6) & (sing < 1.25)), sing)

    def test_one_step_by_hand(self):
        # W (2x2) gets Muon, b and embed get AdamW. Step 1: B = G, Nesterov U = NS(G + 0.9 G) = NS(1.9 G),
        # whose normalization makes it NS(G); W <- W (1 - lr_m wd) - lr_m U (square: no aspect factor).
        params = {"embed": np.ones((2, 2)), "W": np.eye(2), "b": np.zeros(2)}
        g = {"embed": np.full((2, 2), 0.5), "W": np.diag([3.0, 4.0]), "b": np.array([1.0, -1.0])}
        opt = Muon(params, peak_lr=0.01, muon_lr=0.1, momentum=0.9, weight_decay=0.5)
        self.assertEqual(opt.matrices, ["W"])
        opt.step(params, g, lr=0.005)  # half the peak: warmup halves Muon's rate too
        rate = 0.1 * 0.5
        u = np.diag(self.scalar_newton_schulz(np.array([3.0, 4.0]) / 5.0))
        np.testing.assert_allclose(params["W"], np.eye(2) * (1 - rate * 0.5) - rate * u, rtol=1e-6)
        # The AdamW part: the first step moves each entry by lr against its gradient's sign, after decay.
        np.testing.assert_allclose(params["b"], [-0.005, 0.005], rtol=1e-6)
        np.testing.assert_allclose(params["embed"], np.ones((2, 2)) * (1 - 0.005 * 0.5) - 0.005, rtol=1e-6)

    def test_which_parameters_it_takes(self):
        shapes = {"embed": (5, 4), "W1": (8, 6), "b1": (6,), "W2": (6, 6), "W_out": (6, 5), "pos": (4, 4)}
        params = {k: np.zeros(s) for k, s in shapes.items()}
        self.assertEqual(muon_parameters(params), ["W1", "W2"])
        self.assertEqual(muon_parameters(params, onehot_input=True), ["W2"])
        self.assertEqual(muon_parameters(params, embeddings=("embed", "W1")), ["W2", "pos"])  # the model's own


if __name__ == "__main__":
    unittest.main()
