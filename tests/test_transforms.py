"""Gradient transforms: the stage between the gradients and the optimizer."""

import unittest
from unittest import mock

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking import transforms
from grokking.errors import ConfigError
from grokking.transforms import (ConstantNorm, GradNoise, GrokfastEMA, GrokfastMA, PerpGrad, Transforms,
                                 WeightNoise, lr_factor)

from helpers import outcome, quiet, temp_dir, tiny_config


class Noise(unittest.TestCase):
    def test_noise_is_a_pure_function_of_the_step(self):
        seed = np.random.SeedSequence(7)
        a, b, c = ({"w": np.zeros(1000)} for _ in range(3))
        GradNoise(seed, 0.1)(a, {}, step=5)
        GradNoise(seed, 0.1)(b, {}, step=5)
        np.testing.assert_array_equal(a["w"], b["w"])
        self.assertAlmostEqual(float(np.std(a["w"])), 0.1, delta=0.01)
        GradNoise(seed, 0.1)(c, {}, step=6)
        self.assertFalse(np.array_equal(a["w"], c["w"]))
        w = {"w": np.zeros(1000)}
        WeightNoise(seed, 0.1)(w, step=5)
        self.assertFalse(np.array_equal(a["w"], w["w"]))  # weights and gradients draw apart
        untouched = {"w": np.zeros(3)}
        WeightNoise(seed, 0.0)(untouched, 1)
        self.assertFalse(untouched["w"].any())


class Pipeline(unittest.TestCase):
    def test_only_enabled_transforms_run_in_registry_order_with_prefixed_state(self):
        calls = []

        class Scale:
            def __init__(self, factor):
                self.factor, self.t = factor, 0

            def __call__(self, grads, params, step):
                calls.append(self.factor)
                self.t = step
                for g in grads.values():
                    g *= self.factor

            def state_dict(self):
                return {"t": self.t}

            def load_state_dict(self, state):
                self.t = state["t"]

        registry = {"double": lambda config, seed: Scale(2.0), "off": lambda config, seed: None,
                    "triple": lambda config, seed: Scale(3.0)}
        with mock.patch.dict(transforms.TRANSFORMS, registry, clear=True):
            stages = Transforms(tiny_config(), np.random.SeedSequence(0))
        self.assertEqual(list(stages.stages), ["double", "triple"])
        grads = {"w": np.ones(2)}
        stages(grads, {}, step=4)
        self.assertEqual(calls, [2.0, 3.0])
        np.testing.assert_array_equal(grads["w"], [6.0, 6.0])
        self.assertEqual(stages.state_dict(), {"transform.double.t": 4, "transform.triple.t": 4})
        stages.load_state_dict({"transform.double.t": 9, "transform.triple.t": 7, "m.w": np.zeros(2)})
        self.assertEqual((stages.stages["double"].t, stages.stages["triple"].t), (9, 7))

    def test_grad_noise_is_built_from_the_config(self):
        self.assertEqual(list(Transforms(tiny_config(), np.random.SeedSequence(0)).stages), [])
        built = Transforms(tiny_config("optimizer.grad_noise=0.5"), np.random.SeedSequence(0)).stages
        self.assertEqual(built["grad_noise"].std, 0.5)


class Methods(unittest.TestCase):
    """Each method against a step computed by hand."""

    G = [np.array([1.0, 2.0]), np.array([3.0, -1.0]), np.array([0.0, 1.0])]

    def steps(self, transform, n):
        out = []
        for t, g in enumerate(self.G[:n], start=1):
            grads = {"w": g.copy()}
            transform(grads, {"w": np.ones(2)}, t)
            out.append(grads["w"])
        return out

    def test_grokfast_ema(self):
        # alpha 0.5, lambda 2. Step 1: mu starts at g1 (as the official code), g1 + 2 g1 = (3, 6).
        # Step 2: mu = 0.5 (1, 2) + 0.5 (3, -1) = (2, 0.5); (3, -1) + 2 (2, 0.5) = (7, 0).
        a, b = self.steps(GrokfastEMA(alpha=0.5, lamb=2.0), 2)
        np.testing.assert_array_equal(a, [3.0, 6.0])
        np.testing.assert_array_equal(b, [7.0, 0.0])

    def test_grokfast_ma(self):
        # window 2, lambda 4: nothing until the window is full; then g + 4 * mean of the window.
        # Step 2: (3, -1) + 2 (4, 1) = (11, 1). Step 3: the window is g2, g3: (0, 1) + 2 (3, 0) = (6, 1).
        a, b, c = self.steps(GrokfastMA(window=2, lamb=4.0), 3)
        np.testing.assert_array_equal(a, [1.0, 2.0])
        np.testing.assert_array_equal(b, [11.0, 1.0])
        np.testing.assert_array_equal(c, [6.0, 1.0])

    def test_filters_carry_their_state_through_a_state_dict(self):
        for make in (lambda: GrokfastEMA(0.5, 2.0), lambda: GrokfastMA(2, 4.0)):
            whole = self.steps(make(), 3)
            first = make()
            self.steps(first, 2)
            second = make()
            second.load_state_dict(first.state_dict())
            grads = {"w": self.G[2].copy()}
            second(grads, {"w": np.ones(2)}, 3)
            np.testing.assert_array_equal(grads["w"], whole[2])

    def test_perp_grad(self):
        theta, g = {"w": np.array([1.0, 0.0])}, {"w": np.array([1.0, 1.0])}
        PerpGrad(rescale=False)(g, theta, 1)
        np.testing.assert_allclose(g["w"], [0.0, 1.0])
        g = {"w": np.array([1.0, 1.0])}
        PerpGrad()(g, theta, 1)
        np.testing.assert_allclose(g["w"], [0.0, np.sqrt(2.0)])  # the official code keeps |g|
        rng = np.random.default_rng(0)
        theta = {"a": rng.standard_normal((4, 3)), "b": rng.standard_normal(5)}
        g = {k: rng.standard_normal(v.shape) for k, v in theta.items()}
        norms = {k: np.linalg.norm(v) for k, v in g.items()}
        PerpGrad()(g, theta, 1)
        for k in theta:  # per tensor: orthogonal to its weights, with the gradient's norm
            self.assertAlmostEqual(float(np.vdot(g[k], theta[k])), 0.0, places=12)
            self.assertAlmostEqual(float(np.linalg.norm(g[k])), norms[k], places=12)

    def test_constant_norm(self):
        hold = ConstantNorm({"a": np.array([3.0, 0.0]), "b": np.array([4.0])})  # total norm 5
        params = {"a": np.array([6.0, 0.0]), "b": np.array([8.0])}
        hold(params, 1)
        np.testing.assert_allclose(params["a"], [3.0, 0.0])
        np.testing.assert_allclose(params["b"], [4.0])

    @outcome
    def test_a_run_with_constant_norm_keeps_its_initial_norm(self):
        from grokking.experiment import run_experiment
        from grokking.plotting import read_metrics

        tmp = temp_dir(self)
        run_experiment(tiny_config("output.curves=false", "optimizer.constant_norm=true", "model.init_scale=0.5"),
                       tmp / "r", log=quiet)
        norms = read_metrics(tmp / "r" / "metrics.csv")["weight_norm"]
        np.testing.assert_allclose(norms, norms[0], rtol=1e-5)
        run_experiment(tiny_config("output.curves=false", "model.init_scale=0.5"), tmp / "free", log=quiet)
        free = read_metrics(tmp / "free" / "metrics.csv")["weight_norm"]
        self.assertGreater(abs(free[-1] - free[0]) / free[0], 1e-2)  # without it, the norm moves (by 48%)

    def test_config_builds_them_and_scales_the_rate(self):
        stages = Transforms(tiny_config("optimizer.grokfast=ma", "optimizer.grokfast_window=7",
                                        "optimizer.perp_grad=true", "optimizer.grad_noise=0.1"),
                            np.random.SeedSequence(0)).stages
        self.assertEqual(list(stages), ["grad_noise", "grokfast", "perp_grad"])
        self.assertEqual(stages["grokfast"].window, 7)
        self.assertEqual(lr_factor(tiny_config("optimizer.grokfast=ema")), 1.0)
        self.assertEqual(lr_factor(tiny_config("optimizer.grokfast=ema", "optimizer.grokfast_scale_lr=true")), 1 / 3)
        self.assertEqual(lr_factor(tiny_config("optimizer.grokfast_scale_lr=true")), 1.0)  # no filter, no change
        with self.assertRaisesRegex(ConfigError, "optimizer.grokfast must be ema, ma or empty, got 'sma'"):
            tiny_config("optimizer.grokfast=sma")


if __name__ == "__main__":
    unittest.main()
