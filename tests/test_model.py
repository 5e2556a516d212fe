import unittest

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking.engine import Batch, softmax_cross_entropy
from grokking.layers import ACTIVATIONS, draw_weight
from grokking.model import BLOCK_ROWS, INPUTS, MLP, engine_threads, mlp_chunks, reference_loss_and_grads, weight_norm


def random_batch(rng, n_tokens, n_classes, n, dtype="float32"):
    return Batch(rng.integers(0, n_tokens, n), rng.integers(0, n_tokens, n),
                 rng.integers(0, n_classes, n), n_tokens, dtype)


class TwoHot(unittest.TestCase):
    def test_the_network_cannot_tell_x_y_from_y_x(self):
        # One vector one-hot(x) + one-hot(y): the rows of W1 are shared by x and y.
        model = MLP(7, 5, d_hidden=6, dtype="float64", input="twohot")
        params = model.init_params(np.random.default_rng(0))
        self.assertEqual(params["W1"].shape, (7, 6))
        x, y = np.array([1, 2, 3]), np.array([4, 2, 0])
        np.testing.assert_array_equal(model.logits(params, x, y), model.logits(params, y, x))


class FastPathMatchesReference(unittest.TestCase):
    def test_float32_loss_and_grads(self):
        rng = np.random.default_rng(1)
        for activation in ACTIVATIONS:
            model = MLP(97, 97, d_embed=32, d_hidden=64, n_layers=2, activation=activation)
            params = model.init_params(rng)
            batch = random_batch(rng, 97, 97, 512)
            loss, acc, grads = model.loss_and_grads(params, batch)
            rloss, racc, rgrads = reference_loss_and_grads(model, params, batch.x, batch.y, batch.labels)
            self.assertAlmostEqual(loss, rloss, places=4)
            self.assertIsNone(acc)  # the training step skips accuracy; evaluate() measures it
            self.assertEqual(model.evaluate(params, batch.x, batch.y, batch.labels)[1], racc)
            for name in params:
                with self.subTest(activation=activation, param=name):
                    self.assertEqual(grads[name].dtype, np.float32)
                    scale = np.abs(rgrads[name]).max() + 1e-12
                    np.testing.assert_allclose(grads[name] / scale, rgrads[name] / scale, atol=2e-5)

    def test_chunked_and_threaded_batches(self):
        for input in INPUTS:
            with self.subTest(input=input):
                self.chunked_and_threaded(input)

    def chunked_and_threaded(self, input):
        # Large enough for several chunks, with a token that never occurs as x.
        rng = np.random.default_rng(2)
        model = MLP(13, 13, d_embed=8, d_hidden=16, dtype="float64", input=input)
        params = model.init_params(rng)
        self.assertEqual("embed" in params, input == "embedding")
        self.assertEqual(params["W1"].shape[0], {"embedding": 16, "onehot": 26, "twohot": 13}[input])
        n = 4 * BLOCK_ROWS + 77  # 4 blocks of y tokens
        x, y, labels = rng.integers(0, 13, n), rng.integers(0, 13, n), rng.integers(0, 13, n)
        x[x == 3] = 4
        batch = Batch(x, y, labels, 13, "float64")
        self.assertEqual(len(mlp_chunks(batch)), 4)
        rows = sorted(zip(*(np.concatenate([getattr(c, k) for c in mlp_chunks(batch)]).tolist()
                            for k in ("x", "y", "labels"))))
        self.assertEqual(rows, sorted(zip(x.tolist(), y.tolist(), labels.tolist())))  # a partition
        for c in mlp_chunks(batch):
            self.assertTrue(np.all((c.y >= c.y_tokens.start) & (c.y < c.y_tokens.stop)))  # its y block
            self.assertTrue(np.all(np.diff(c.x) >= 0))  # sorted by x
            # The x groups tile the tokens and the rows in order, each one-hot marking its rows' x.
            self.assertEqual([g[0].start for g in c.groups[1:]], [g[0].stop for g in c.groups[:-1]])
            self.assertEqual((c.groups[0][0].start, c.groups[-1][0].stop), (0, 13))
            self.assertEqual(sum(g[1].stop - g[1].start for g in c.groups), len(c.x))
            self.assertGreater(len(c.groups), 1)
            for tokens, rows_, onehot in c.groups:
                if onehot is not None:
                    np.testing.assert_array_equal(tokens.start + onehot.argmax(axis=0), c.x[rows_])
        rloss, racc, rgrads = reference_loss_and_grads(model, params, x, y, labels)
        for threads in (1, 2):
            with engine_threads(threads):
                loss, acc, grads = model.loss_and_grads(params, batch)
                eval_loss, eval_acc = model.evaluate(params, x, y, labels)
            self.assertAlmostEqual(loss, rloss, places=10)
            self.assertAlmostEqual(eval_loss, rloss, places=10)
            self.assertEqual((acc, eval_acc), (None, racc))
            for name in params:
                np.testing.assert_allclose(grads[name], rgrads[name], rtol=1e-9, atol=1e-12)


class NoSubnormals(unittest.TestCase):
    def test_confident_logits_give_normal_float32_gradients(self):
        # A memorized row: the right answer leads by 90, so exp(-90) of the others is subnormal.
        logits = np.zeros((4, 97), dtype=np.float32)
        logits[np.arange(4), [1, 2, 3, 4]] = 90
        loss_sum, correct, dlogits = softmax_cross_entropy(logits, np.array([1, 2, 3, 4]))
        tiny = np.finfo(np.float32).tiny
        self.assertFalse(np.any((dlogits != 0) & (np.abs(dlogits) < tiny)))
        self.assertEqual(correct, 4)
        self.assertLess(loss_sum, 1e-6)


    def test_loss_of_a_confidently_wrong_row_is_exact(self):
        logits = np.zeros((1, 5), dtype=np.float32)
        logits[0, 0] = 80  # the model says 0, the answer is 1: loss = 80 + log(1 + 4 e^-80)
        loss_sum, correct, _ = softmax_cross_entropy(logits, np.array([1]))
        self.assertAlmostEqual(loss_sum, 80.0, places=4)
        self.assertEqual(correct, 0)


class AnswerShift(unittest.TestCase):
    """The training step shifts logits by the answer's (tests/test_layers.py), unless it cannot be exact."""

    def test_training_step_falls_back_to_the_exact_form(self):
        rng = np.random.default_rng(9)
        model = MLP(11, 11, d_embed=8, d_hidden=16, dtype="float64")
        params = model.init_params(rng)
        params["b_out"][3] = 300.0  # class 3 leads every other answer by about 300
        batch = random_batch(rng, 11, 11, 200, "float64")
        loss, _, grads = model.loss_and_grads(params, batch)
        rloss, _, rgrads = reference_loss_and_grads(model, params, batch.x, batch.y, batch.labels)
        self.assertGreater(loss, 250)
        self.assertAlmostEqual(loss, rloss, places=8)
        for name in params:
            np.testing.assert_allclose(grads[name], rgrads[name], rtol=1e-9, atol=1e-12)


class Shapes(unittest.TestCase):
    def test_parameter_count_and_dtype(self):
        model = MLP(97, 97, d_embed=128, d_hidden=256, n_layers=1)
        params = model.init_params(np.random.default_rng(0))
        # embed 97*128 + W1 256*256 + b1 256 + W_out 256*97 + b_out 97
        self.assertEqual(sum(p.size for p in params.values()), 12416 + 65536 + 256 + 24832 + 97)
        self.assertTrue(all(p.dtype == np.float32 for p in params.values()))
        params64 = MLP(5, 5, dtype="float64").init_params(np.random.default_rng(0))
        self.assertTrue(all(p.dtype == np.float64 for p in params64.values()))

    def test_initial_weights_normal_or_uniform(self):
        # normal: N(0, s^2 / fan_in), as the models always drew it (the same generator calls);
        # uniform: PyTorch's nn.Linear rule, U(+-s / sqrt(fan_in)), a standard deviation 1/sqrt(3) of it.
        normal = draw_weight(np.random.default_rng(0), (512, 300), 2.0)
        np.testing.assert_array_equal(normal, np.random.default_rng(0).standard_normal((512, 300)) * (2.0 / np.sqrt(512)))
        uniform = draw_weight(np.random.default_rng(0), (512, 300), 2.0, "uniform")
        bound = 2.0 / np.sqrt(512)
        self.assertLessEqual(np.abs(uniform).max(), bound)
        self.assertGreater(np.abs(uniform).max(), 0.99 * bound)
        self.assertAlmostEqual(uniform.std() / (bound / np.sqrt(3)), 1.0, delta=0.01)
        for model in (MLP(7, 7, d_embed=8, d_hidden=16, init="uniform"),):
            params = model.init_params(np.random.default_rng(1))
            self.assertLessEqual(np.abs(params["W_out"]).max(), 1 / np.sqrt(16))
            self.assertGreater(np.abs(params["embed"]).max(), 1.0)  # embeddings stay N(0, 1)

    def test_weight_norm(self):
        params = {"a": np.array([3.0]), "b": np.array([[4.0]])}
        self.assertAlmostEqual(weight_norm(params), 5.0)


if __name__ == "__main__":
    unittest.main()
