"""Gradient transforms: the stage between the gradients and the optimizer."""

import unittest
from unittest import mock

import numpy as np

from grokking import transforms
from grokking.transforms import GradNoise, Transforms, WeightNoise

from helpers import tiny_config


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


if __name__ == "__main__":
    unittest.main()
