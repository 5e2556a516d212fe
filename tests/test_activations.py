"""Interventions on named activations (grokking.activations) and the 2-D frequency analysis they
use (analysis.frequency_shares_2d, keep_frequencies_2d, keep_frequencies), against direct arithmetic."""

import unittest

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking import activations as act
from grokking import analysis
from grokking.tasks import build_table
from grokking.transformer import Transformer

P = 11
A, B = (g.ravel() for g in np.meshgrid(np.arange(P), np.arange(P), indexing="ij"))  # the table's order
W = 2 * np.pi / P


class Frequencies(unittest.TestCase):
    def test_shares_of_known_neurons(self):
        noise = np.random.default_rng(0).standard_normal(P * P)
        values = np.stack([np.cos(W * 3 * A) * np.cos(W * 3 * B) + 2, np.sin(W * 2 * (A + B)) + np.cos(W * 4 * A),
                           noise], axis=1)
        shares = analysis.frequency_shares_2d(values)
        self.assertEqual(shares.shape, (3, P // 2))
        np.testing.assert_allclose(shares[0], np.eye(P // 2)[2], atol=1e-12)
        np.testing.assert_allclose(shares[1], 0.5 * (np.eye(P // 2)[1] + np.eye(P // 2)[3]), atol=1e-12)
        # Noise spreads evenly: 8 of the 120 components of each frequency, 40 in all, the rest mix two.
        self.assertTrue(0.15 < shares[2].sum() < 0.6, shares[2].sum())

    def test_keeping_and_removing_frequencies(self):
        mixed = np.cos(W * 3 * A) * np.sin(W * 3 * B) + 0.5 * np.cos(W * (A - 5 * B)) + 2  # (3, 3) and a cross term
        kept = analysis.keep_frequencies_2d(mixed[:, None], [3])[:, 0]
        np.testing.assert_allclose(kept, np.cos(W * 3 * A) * np.sin(W * 3 * B) + 2, atol=1e-12)
        removed = analysis.keep_frequencies_2d(mixed[:, None], [3], keep=False)[:, 0]
        np.testing.assert_allclose(removed, 0.5 * np.cos(W * (A - 5 * B)) + 2, atol=1e-12)
        rows = np.stack([np.cos(W * 2 * np.arange(P)) + 1, np.sin(W * 5 * np.arange(P))], axis=1)
        np.testing.assert_allclose(analysis.keep_frequencies(rows, [2]), [[c, 0] for c in rows[:, 0]], atol=1e-12)
        np.testing.assert_allclose(analysis.keep_frequencies(rows, [2], keep=False), np.stack(
            [np.ones(P), rows[:, 1]], axis=1), atol=1e-12)


class Interventions(unittest.TestCase):
    def setUp(self):
        self.table = build_table("x+y", P)
        self.model = Transformer(P, P, d_model=8, n_heads=2, n_layers=1, d_ff=16, dtype="float64",
                                 sequence="x y =", normalization="none", positional="learned")
        self.params = self.model.init_params(np.random.default_rng(0))
        t = self.table
        self.args = (self.model, self.params, t.x, t.y, t.labels)

    def test_loss_with_no_hook_is_the_models_loss(self):
        loss, acc = act.loss_with(*self.args)
        expected = self.model.evaluate(self.params, self.table.x, self.table.y, self.table.labels)
        np.testing.assert_allclose((loss, acc), expected, rtol=1e-12)

    def test_head_zero_and_mean_ablations(self):
        m, params = self.model, self.params
        t = self.table
        zs = m.run_with_cache(params, t.x, t.y, hooks={"blocks.0.attn.hook_z": act.ablate_heads([1])},
                              names=["blocks.0.attn.hook_z"])[1]["blocks.0.attn.hook_z"]
        self.assertFalse(zs[:, :, 1].any())
        self.assertTrue(zs[:, :, 0].any())
        both = act.loss_with(*self.args, hooks={"blocks.0.attn.hook_z": act.ablate_heads([0, 1])})
        no_wo = {**params, "l0.W_o": np.zeros_like(params["l0.W_o"])}
        self.assertAlmostEqual(both[0], act.loss_with(m, no_wo, t.x, t.y, t.labels)[0], places=12)
        self.assertAlmostEqual(both[0], act.loss_with(*self.args, hooks={"blocks.0.attn.hook_z": act.zero})[0],
                               places=12)
        mean = act.mean_ablate(np.arange(6.0).reshape(3, 2), "x")
        np.testing.assert_array_equal(mean, [[2, 3]] * 3)

    def test_neuron_frequencies_keep_all_of_a_neuron_made_of_them(self):
        name = "blocks.0.mlp.hook_post"
        acts = self.model.run_with_cache(self.params, self.table.x, self.table.y, names=[name])[1][name]
        every = act.neuron_frequencies(range(1, P // 2 + 1))(acts, name)
        self.assertTrue(np.array_equal(every[:, :-1], acts[:, :-1]), "other positions untouched")
        expect = analysis.keep_frequencies_2d(acts[:, -1], range(1, P // 2 + 1))
        np.testing.assert_allclose(every[:, -1], expect, atol=1e-12)
        none = act.neuron_frequencies([], keep=True)(acts, name)[:, -1]
        np.testing.assert_allclose(none, np.broadcast_to(acts[:, -1].mean(axis=0), none.shape), atol=1e-12)


if __name__ == "__main__":
    unittest.main()
