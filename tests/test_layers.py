"""Each layer of grokking.layers, forward and backward, against central finite differences (float64).

The models' own tests check how they combine the layers (tests/test_models_contract.py, over every
registered model); here each backward is checked once, on its own.
"""

import unittest

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking import layers
from grokking.engine import cross_entropy, softmax_cross_entropy

from helpers import numerical_grads


class FiniteDifferences(unittest.TestCase):
    def check(self, layer, point: dict, name: str = ""):
        """``layer(inputs)`` -> (output, backward), where backward(d output) gives the gradient of
        every input by name; checked on the linear function sum(output * w) of random w. Each call
        gets fresh copies of ``point``, as layers may overwrite their inputs."""
        def run():
            return layer({k: v.copy() for k, v in point.items()})

        out, backward = run()
        w = np.random.default_rng(1).standard_normal(np.shape(out))
        grads = backward(np.array(w))
        numeric = numerical_grads(lambda: float(np.vdot(run()[0], w)), point)
        self.assertEqual(set(grads), set(point))
        for key in point:
            with self.subTest(layer=name, input=key):
                np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-6, atol=1e-9)

    def setUp(self):
        self.rng = np.random.default_rng(0)

    def normal(self, *shape):
        return self.rng.standard_normal(shape)

    def test_embedding(self):
        ids = np.array([3, 0, 3, 1, 3])  # repeated and missing tokens

        def layer(p):
            return layers.embedding(p["table"], ids), lambda d: {"table": layers.embedding_backward(d, ids, p["table"])}

        self.check(layer, {"table": self.normal(5, 3)})

    def test_linear(self):
        for ones in (None, np.ones(6)):  # bias sums by np.sum or by BLAS
            for bias in (True, False):
                def layer(p):
                    def backward(d):
                        dx, dw, db = layers.linear_backward(p["x"], p["w"], d, bias=bias, ones=ones, work={})
                        return {"x": dx, "w": dw, **({"b": db} if bias else {})}
                    return layers.linear(p["x"], p["w"], p.get("b")), backward

                point = {"x": self.normal(6, 4), "w": self.normal(4, 3), **({"b": self.normal(3)} if bias else {})}
                self.check(layer, point, f"ones={ones is not None}, bias={bias}")

    def test_activations(self):
        for name in layers.ACTIVATIONS:
            def layer(p):
                a, saved = layers.activation(name, p["z"], np.empty_like(p["z"]))
                return a.copy(), lambda d: {"z": layers.activation_backward(name, saved, d, {})}

            self.check(layer, {"z": self.normal(5, 4)}, name)

    def test_dropout(self):
        def layer(p):  # the same stream each call: the same mask
            a, mask = layers.dropout(p["a"], np.random.default_rng(3), 0.3)
            return a, lambda d: {"a": layers.dropout_backward(d, mask)}

        self.check(layer, {"a": self.normal(8, 5)})
        a, mask = layers.dropout(np.ones((200, 50), np.float32), np.random.default_rng(4), 0.3)
        self.assertEqual((a.dtype, mask.dtype), (np.float32, np.float32))
        self.assertAlmostEqual(float(np.mean(a == 0)), 0.3, delta=0.02)
        self.assertTrue(np.all((a == 0) | np.isclose(a, 1 / 0.7)))
        self.assertIsNone(layers.dropout(a, None, 0.3)[1])

    def test_layer_norm(self):
        def layer(p):
            out, cache = layers.layer_norm(p["r"], p["gain"], p["bias"])
            return out, lambda d: dict(zip(("r", "gain", "bias"), layers.layer_norm_backward(d, p["gain"], cache)))

        self.check(layer, {"r": self.normal(5, 6), "gain": 1 + 0.1 * self.normal(6), "bias": self.normal(6)})

    def test_attention(self):
        mask = np.tril(np.ones((4, 4), dtype=bool))[1:]  # 3 queries over 4 keys, causal
        for name, m in (("masked", mask), ("every key visible", np.ones((1, 4), dtype=bool))):
            def layer(p):
                o, pattern = layers.attention(p["q"], p["k"], p["v"], m, 0.5)
                return o, lambda d: dict(zip("qkv", layers.attention_backward(p["q"], p["k"], p["v"], pattern, d, 0.5)))

            self.check(layer, {"q": self.normal(2, 2, len(m), 3), "k": self.normal(2, 2, 4, 3),
                               "v": self.normal(2, 2, 4, 3)}, name)

    def test_losses(self):
        labels = np.array([0, 4, 2, 2, 1, 3])
        point = {"z": 3 * self.normal(6, 5)}
        for loss in ("softmax", "stablemax"):  # Loss: softmax_cross_entropy with BLAS row sums; cross_entropy
            def layer(p):
                out = np.array(layers.Loss(loss, "", "float64", 5)(p["z"].copy(), labels)[0])
                return out, lambda d: {"z": layers.Loss(loss, "", "float64", 5)(p["z"], labels, float(d))[2]}

            self.check(layer, point, loss)

        def general(p):  # cross_entropy's softmax, which a loss in another precision takes
            return (np.array(cross_entropy(p["z"].copy(), labels, 1.0)[0]),
                    lambda d: {"z": cross_entropy(p["z"], labels, float(d), "softmax", np.float64)[2]})

        self.check(general, point, "cross_entropy softmax")
        index = np.arange(6) * 5 + labels

        def shifted(p):
            return (np.array(layers.answer_shifted_cross_entropy(p["z"].copy(), index, 1.0, np.ones(5))[0]),
                    lambda d: {"z": layers.answer_shifted_cross_entropy(p["z"], index, float(d), np.ones(5))[1]})

        self.check(shifted, point, "answer shifted")


class AnswerShift(unittest.TestCase):
    """The MLP's training step shifts logits by the answer's, not the row maximum (no row-max pass)."""

    def test_matches_the_row_max_form(self):
        rng = np.random.default_rng(8)
        logits = (10 * rng.standard_normal((64, 13))).astype(np.float32)
        labels = rng.integers(0, 13, 64)
        index = np.arange(64) * 13 + labels
        loss, _, grad = softmax_cross_entropy(logits.copy(), labels, 0.5)
        shifted_loss, shifted_grad = layers.answer_shifted_cross_entropy(logits.copy(), index, 0.5,
                                                                         np.ones(13, np.float32))
        self.assertAlmostEqual(shifted_loss, loss, places=3)
        np.testing.assert_allclose(shifted_grad, grad, atol=1e-6)

    def test_refuses_when_a_logit_leads_the_answer_by_the_ceiling(self):
        logits = np.zeros((2, 5), dtype=np.float32)
        logits[1, 0] = 85  # answer 1: exp(85) would have been clipped to exp(80)
        self.assertIsNone(layers.answer_shifted_cross_entropy(logits, np.array([1, 6]), 1.0, np.ones(5, np.float32)))


if __name__ == "__main__":
    unittest.main()
