"""Interventions on named activations (grokking.activations) and the 2-D frequency analysis they
use (analysis.frequency_shares_2d, keep_frequencies_2d, keep_frequencies), against direct arithmetic;
and, on every registered model in the variants of tests/test_models_contract.py, the cache, the
hooks and the interventions as a model runs them."""

import unittest

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking import activations as act
from grokking import analysis
from grokking.tasks import build_table
from grokking.transformer import Transformer

from test_models_contract import build, variants

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
        # cross=True keeps the product of two key frequencies too, and removes it with them.
        cross = np.cos(W * 3 * A) * np.cos(W * 2 * B) + np.cos(W * 4 * B)
        np.testing.assert_allclose(analysis.keep_frequencies_2d(cross[:, None], [2, 3], cross=True)[:, 0],
                                   np.cos(W * 3 * A) * np.cos(W * 2 * B), atol=1e-12)
        np.testing.assert_allclose(analysis.keep_frequencies_2d(cross[:, None], [2, 3])[:, 0], 0, atol=1e-12)
        np.testing.assert_allclose(analysis.keep_frequencies_2d(cross[:, None], [2, 3], keep=False, cross=True)[:, 0],
                                   np.cos(W * 4 * B), atol=1e-12)
        noise = np.random.default_rng(3).standard_normal((P * P, 2))
        np.testing.assert_allclose(analysis.keep_frequencies_2d(noise, range(1, P // 2 + 1), cross=True), noise,
                                   atol=1e-12)
        rows = np.stack([np.cos(W * 2 * np.arange(P)) + 1, np.sin(W * 5 * np.arange(P))], axis=1)
        np.testing.assert_allclose(analysis.keep_frequencies(rows, [2]), [[c, 0] for c in rows[:, 0]], atol=1e-12)
        np.testing.assert_allclose(analysis.keep_frequencies(rows, [2], keep=False), np.stack(
            [np.ones(P), rows[:, 1]], axis=1), atol=1e-12)


class Readouts(unittest.TestCase):
    def test_dominant_frequencies_of_cos_neurons(self):
        # Neurons cos(w_k (a + b) + phase) with amplitudes and offsets; one dead (constant) neuron.
        rng = np.random.default_rng(1)
        ks = [1, 3, 5, 3, 2]
        values = np.stack([(1 + i) * np.cos(W * k * (A + B) + rng.uniform(0, 6)) + i for i, k in enumerate(ks)]
                          + [np.full(P * P, 2.0)], axis=1)
        freq, share = analysis.dominant_frequencies(values)
        np.testing.assert_array_equal(freq, ks + [0])
        np.testing.assert_allclose(share, [1] * len(ks) + [0], atol=1e-12)
        # Frequency 4 in x alone (amplitude 1) and 2 in y alone (0.8): 1 / 1.64 of the variance at 4.
        freq, share = analysis.dominant_frequencies((np.cos(W * 4 * A) + 0.8 * np.sin(W * 2 * B))[:, None])
        self.assertEqual(freq[0], 4)
        self.assertAlmostEqual(share[0], 1 / 1.64, places=12)


class EmbeddingFrequencies(unittest.TestCase):
    def test_against_the_written_out_projection(self):
        # hook_embed rows (E[x], E[y]) over the table: each position's rows projected on the
        # constant and frequencies {2, 4} by least squares on cos/sin(w_k t), looked up at x and y.
        table = build_table("x+y", P)
        embed = np.random.default_rng(2).standard_normal((P, 3))
        value = np.stack([embed[table.x], embed[table.y]], axis=1)
        t = np.arange(P)
        design = np.stack([np.ones(P)] + [f(W * k * t) for k in (2, 4) for f in (np.cos, np.sin)], axis=1)
        fitted = design @ np.linalg.lstsq(design, embed, rcond=None)[0]
        kept = act.embed_frequencies([2, 4], table.x, table.y, P)(value, "hook_embed")
        np.testing.assert_allclose(kept, np.stack([fitted[table.x], fitted[table.y]], axis=1), atol=1e-12)
        removed = act.embed_frequencies([2, 4], table.x, table.y, P, keep=False)(value, "hook_embed")
        rest = embed - fitted + embed.mean(axis=0)
        np.testing.assert_allclose(removed, np.stack([rest[table.x], rest[table.y]], axis=1), atol=1e-12)
        every = range(1, P // 2 + 1)
        np.testing.assert_allclose(act.embed_frequencies(every, table.x, table.y, P)(value, "e"), value, atol=1e-12)
        mean = act.embed_frequencies(every, table.x, table.y, P, keep=False)(value, "e")
        np.testing.assert_allclose(mean, np.broadcast_to(embed.mean(axis=0), value.shape), atol=1e-12)
        # "x op y =": operands at 0 and 2, the operation's and "=" rows untouched.
        four = np.stack([embed[table.x], np.ones((P * P, 3)), embed[table.y], np.zeros((P * P, 3))], axis=1)
        out = act.embed_frequencies([2, 4], table.x, table.y, P)(four, "hook_embed")
        np.testing.assert_allclose(out[:, [0, 2]], kept, atol=1e-12)
        np.testing.assert_array_equal(out[:, [1, 3]], four[:, [1, 3]])
        with self.assertRaisesRegex(ValueError, "every operand"):
            act.embed_frequencies([2], table.x[:5], table.y[:5], P)(value[:5], "hook_embed")


class EveryModel(unittest.TestCase):
    def test_cache_hooks_and_interventions(self):
        for what, overrides in variants():
            with self.subTest(what):
                config, table, model = build(overrides, "model.dtype=float64")
                params = model.init_params(np.random.default_rng(0))
                t, names = table, model.activation_names
                logits, cache = model.run_with_cache(params, t.x, t.y)
                self.assertEqual(logits.shape, (len(t), t.n_classes))
                hidden = [n for n in names if n.endswith("mlp.hook_post")]
                self.assertTrue(hidden and all(cache[n].shape[-1] == cache[n.replace("post", "pre")].shape[-1]
                                               for n in hidden))
                if "hook_embed" in names:
                    self.assertEqual(cache["hook_embed"].shape[:2], (len(t), {"mlp": 2}.get(config.model.type, 3 if
                                     config.model.sequence == "x y =" else 4)))
                if config.model.loss == "softmax" and not model.uses_rng:
                    loss, acc = act.loss_with(model, params, t.x, t.y, t.labels)
                    expected = model.evaluate(params, t.x, t.y, t.labels)
                    np.testing.assert_allclose((loss, acc), expected, rtol=1e-10)
                # A replaced activation is what the cache holds, and what the layers after it read.
                first, last = names[0], names[-1]
                _, zeroed = model.run_with_cache(params, t.x, t.y, hooks={first: act.zero},
                                                 names=lambda n: n in (first, last))
                self.assertEqual(list(zeroed), [first, last])
                self.assertFalse(zeroed[first].any())
                self.assertGreater(np.abs(zeroed[last] - cache[last]).max(), 1e-9)
                _, meaned = model.run_with_cache(params, t.x, t.y, hooks={last: act.mean_ablate}, names=[last])
                np.testing.assert_allclose(meaned[last], np.broadcast_to(cache[last].mean(axis=0), cache[last].shape))
                with self.assertRaisesRegex(ValueError, "hook_nothing"):
                    model.run_with_cache(params, t.x, t.y, hooks={"hook_nothing": act.zero})
                if "hook_embed" in names:  # keeping every frequency of the embedding changes nothing
                    every = act.embed_frequencies(range(1, t.n_tokens // 2 + 1), t.x, t.y, config.task.p)
                    same, _ = model.run_with_cache(params, t.x, t.y, hooks={"hook_embed": every}, names=())
                    np.testing.assert_allclose(same, logits, atol=1e-10)
                if t.vectors:  # the frequency interventions read an operation table over Z_p
                    continue
                # Keeping every frequency of the neurons over the table changes nothing either.
                every = act.neuron_frequencies(range(1, config.task.p // 2 + 1), cross=True)
                same, _ = model.run_with_cache(params, t.x, t.y, hooks={hidden[-1]: every}, names=())
                np.testing.assert_allclose(same, logits, atol=1e-10)


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
