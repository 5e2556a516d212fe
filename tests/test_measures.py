"""Progress measures: each checked against direct arithmetic, and measures.csv as a run writes it."""

import csv
import unittest
from unittest import mock

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking import analysis, measures
from grokking.config import TaskConfig
from grokking.errors import ConfigError
from grokking.experiment import eval_schedule, run_experiment
from grokking.models import MODELS
from grokking.tasks import build_table

from helpers import quiet, temp_dir, tiny_config


def unit_basis(p: int) -> np.ndarray:
    """Nanda et al.'s Fourier basis over Z_p written out: (1 + 2 * (p // 2) rows, p), orthonormal for odd p."""
    x = np.arange(p)
    rows = [np.ones(p)]
    for k in range(1, p // 2 + 1):
        rows += [np.cos(2 * np.pi * k * x / p), np.sin(2 * np.pi * k * x / p)]
    return np.array([r / np.linalg.norm(r) if np.linalg.norm(r) > 1e-9 else r for r in rows])


class Fourier(unittest.TestCase):
    def test_frequency_norms_match_the_written_out_basis(self):
        for p in (11, 12):  # an even p has a cosine-only frequency p/2
            rows = np.random.default_rng(p).standard_normal((p, 5))
            coefficients = unit_basis(p) @ rows
            expected = [np.linalg.norm(coefficients[2 * k - 1:2 * k + 1]) for k in range(1, p // 2 + 1)]
            np.testing.assert_allclose(analysis.frequency_norms(rows), expected, rtol=1e-12)

    def test_a_circle_has_one_frequency(self):
        p, k = 13, 4
        angle = 2 * np.pi * k * np.arange(p) / p
        norms = analysis.frequency_norms(np.stack([np.cos(angle), np.sin(angle)], axis=1) * 3)
        self.assertEqual(analysis.key_frequency(np.stack([np.cos(angle), np.sin(angle)], axis=1)), k)
        np.testing.assert_allclose(norms[k - 1], 3 * np.sqrt(p), rtol=1e-12)  # both columns: 3 sqrt(p/2) each
        self.assertLess(np.delete(norms, k - 1).max(), 1e-9)
        self.assertGreater(analysis.gini(norms), 0.8)

    def test_gini_and_key_frequencies_by_hand(self):
        self.assertEqual(analysis.gini(np.ones(4)), 0.0)
        self.assertAlmostEqual(analysis.gini(np.array([0, 0, 0, 1.0])), 0.75)
        self.assertAlmostEqual(analysis.gini(np.array([1.0, 3.0])), (-1 * 1 + 1 * 3) / (2 * 4))
        # Squared norms 9, 16, 0.25: frequency 2 alone carries 64%, with 1 it carries 99%.
        np.testing.assert_array_equal(analysis.key_frequencies(np.array([3.0, 4.0, 0.5])), [2, 1])
        np.testing.assert_array_equal(analysis.key_frequencies(np.array([3.0, 4.0, 0.5]), share=0.5), [2])


class CircuitLosses(unittest.TestCase):
    def test_components_of_a_plus_b_match_least_squares(self):
        # Project every class's logits over the p^2 pairs on {1, cos/sin(w_k (a + b)) for k in keys}.
        p, keys = 7, [2, 3]
        table = build_table("x+y", p)
        logits = np.random.default_rng(0).standard_normal((p * p, p))
        u = (table.x + table.y) % p
        w = 2 * np.pi * u / p
        design = np.stack([np.ones(p * p)] + [f(k * w) for k in keys for f in (np.cos, np.sin)], axis=1)
        fitted = design @ np.linalg.lstsq(design, logits, rcond=None)[0]
        parts = analysis.fourier_components(logits, np.argsort(u, kind="stable"), [0, *keys])
        np.testing.assert_allclose(parts[u], fitted, atol=1e-12)

    def test_restricted_and_excluded_loss_of_a_pure_circuit(self):
        # Logits that are exactly the constant plus frequency 3 of a + b: restricted loss equals the
        # loss, and excluding frequency 3 leaves only the constant.
        p = 11
        task = TaskConfig(operation="x+y", p=p)
        table = build_table("x+y", p)
        u = (table.x + table.y) % p
        c = np.arange(p)
        logits = 5 * np.cos(2 * np.pi * 3 * (u[:, None] - c[None, :]) / p) + 0.3 * c

        class Model:
            def logits(self, params, x, y):
                return logits

            def operand_embedding(self, params):
                angle = 2 * np.pi * 3 * np.arange(p) / p
                return np.stack([np.cos(angle), np.sin(angle)], axis=1)

        train = np.arange(0, p * p, 2)
        ctx = measures.Context(Model(), {}, table, train, task)
        row = measures.circuit_losses(ctx)
        loss = analysis.cross_entropy(logits[train], table.labels[train])
        self.assertEqual(row["n_key_frequencies"], 1)
        self.assertAlmostEqual(row["restricted_loss"], loss, places=10)
        constant_only = np.broadcast_to(0.3 * c, (len(train), p))
        self.assertAlmostEqual(row["excluded_loss"], analysis.cross_entropy(constant_only, table.labels[train]),
                               places=10)


class LogitMeasures(unittest.TestCase):
    def context(self, logits, labels):
        class Table:
            pass

        table = Table()
        table.labels = np.asarray(labels)

        class Model:
            def logits(self, params, x, y):
                return np.asarray(logits)

        table.x = table.y = np.zeros(len(labels), dtype=int)
        return measures.Context(Model(), {}, table, np.arange(len(labels)), None)

    def test_softmax_collapse_by_hand(self):
        # Row 0: the others are e^-200 below: loss and gradient exactly 0 in float32. Row 1: e^-20 is
        # lost in the sum (loss 0) but is still a gradient. Row 2: neither. Row 3: wrong answer.
        ctx = self.context([[0, -200, -200], [0, -20, -30], [0, -1, -2], [-50, 0, 0]], [0, 0, 0, 0])
        row = measures.softmax_collapse(ctx)
        self.assertEqual(row, {"sc_zero_loss": 0.5, "sc_zero_grad": 0.25})

    def test_logit_scale_by_hand(self):
        ctx = self.context([[3.0, 1.0, -1.0], [0.0, 2.0, 1.0]], [0, 1])
        row = measures.logit_scale(ctx)
        # Both rows have variance 8/3 and 2/3 about their means; margins 2 and 1.
        self.assertAlmostEqual(row["logit_rms"], np.sqrt((8 / 3 + 2 / 3) / 2))
        self.assertEqual(row["logit_margin"], 1.5)
        ctx = self.context([[1.0, 4.0, 0.0]], [0])  # a wrong row has a negative margin
        self.assertEqual(measures.logit_scale(ctx)["logit_margin"], -3.0)

    def test_norms_are_per_tensor(self):
        params = {"embed": np.full((2, 2), 1.0), "W_out": np.array([3.0, 4.0])}
        row = measures.norms(measures.Context(None, params, None, None, None))
        self.assertEqual(row, {"norm_embed": 2.0, "norm_W_out": 5.0})


    def test_movement_by_hand(self):
        initial = {"embed": np.array([[3.0, 0.0]]), "W_out": np.array([0.0, 0.0])}
        params = {"embed": np.array([[0.0, 4.0]], dtype=np.float32), "W_out": np.array([1.0, 0.0], dtype=np.float32)}
        row = measures.movement(measures.Context(None, params, None, None, None, initial=initial))
        self.assertEqual(row["weight_distance"], np.sqrt(26.0))  # 3^2 + 4^2 + 1^2
        self.assertEqual(row["weight_distance_rel"], np.sqrt(26.0) / 3.0)
        self.assertEqual(row["moved_embed"], 5.0 / 3.0)
        self.assertEqual(row["moved_W_out"], 1.0)  # an all-zero start: the absolute distance

    def test_movement_in_a_run_starts_from_the_initial_weights(self):
        from grokking.checkpoint import load_checkpoint
        from grokking.experiment import _Run

        out = temp_dir(self) / "moved"
        config = tiny_config("output.curves=false", "output.measures=movement")
        run_experiment(config, out, log=quiet)
        with open(out / measures.MEASURES_CSV, newline="") as fh:
            rows = list(csv.DictReader(fh))
        start = _Run(config, temp_dir(self), "").params  # drawn from the seed, as the run drew them
        final = load_checkpoint(out / "checkpoint.npz")[1]
        moved = np.sqrt(sum(np.sum((final[k].astype(np.float64) - start[k]) ** 2) for k in start))
        self.assertAlmostEqual(float(rows[-1]["weight_distance"]), moved, places=9)
        self.assertGreater(float(rows[0]["weight_distance"]), 0)  # the first evaluation is after step 1
        self.assertLess(float(rows[0]["weight_distance"]), float(rows[-1]["weight_distance"]))


class Neurons(unittest.TestCase):
    def test_neurons_by_frequency_read_from_the_activations(self):
        # Three neurons over the table at "=": two at frequency 3 (the embedding's key frequency),
        # one at 4; their variances 1, 1 and 4 (amplitudes 1, 1, 2 over cos(w a) cos(w b) terms).
        p = 11
        table = build_table("x+y", p)
        w = 2 * np.pi / p
        a, b = table.x, table.y
        post = np.stack([np.cos(w * 3 * a) * np.cos(w * 3 * b), np.sin(w * 3 * (a + b)),
                         2 * np.cos(w * 4 * a) * np.sin(w * 4 * b)], axis=1) + 0.5
        calls = []

        class Model:
            activation_names = ("blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post")

            def run_with_cache(self, params, x, y, hooks=None, names=None):
                calls.append(list(names))
                return None, {"blocks.0.mlp.hook_post": post[:, None, :].repeat(3, axis=1)}  # (rows, seq, d)

            def operand_embedding(self, params):
                angle = w * 3 * np.arange(p)
                return np.stack([np.cos(angle), np.sin(angle)], axis=1)

        ctx = measures.Context(Model(), {}, table, np.arange(0, p * p, 2), TaskConfig(operation="x+y", p=p))
        row = measures.neurons(ctx)
        variance = ((post - post.mean(axis=0)) ** 2).sum(axis=0)
        self.assertAlmostEqual(row["neuron_key_share"], (variance[0] + variance[1]) / variance.sum(), places=12)
        self.assertAlmostEqual(row["neuron_top_share"], 1.0, places=12)
        self.assertEqual(row["neuron_n_freqs"], 2)  # frequencies 3 and 4
        measures.neurons(ctx)
        self.assertEqual(calls, [["blocks.0.mlp.hook_post"]], "computed once per evaluation")


class Selection(unittest.TestCase):
    def test_names_all_and_refusals(self):
        s5, add, div = TaskConfig(operation="x.y"), TaskConfig(operation="x+y"), TaskConfig(operation="x/y")
        self.assertEqual(measures.parse_measures("", add), [])
        self.assertEqual(measures.parse_measures("all", add), ["fourier", "circuit", "neurons", "norms", "movement",
                                                             "logit_scale", "softmax_collapse"])
        self.assertEqual(measures.parse_measures("all", s5), ["irreps", "irrep_circuit", "norms", "movement", "logit_scale",
                                                            "softmax_collapse"])
        self.assertEqual(measures.parse_measures("all", div), ["fourier", "norms", "movement", "logit_scale", "softmax_collapse"])
        self.assertEqual(measures.parse_measures(" norms, fourier,norms", add), ["norms", "fourier"])
        with self.assertRaisesRegex(ConfigError, "unknown measure 'fourir'; choose from fourier, circuit"):
            measures.parse_measures("fourir", add)
        with self.assertRaisesRegex(ConfigError, "'fourier' does not apply to 'x.y'"):
            measures.parse_measures("fourier", s5)
        with self.assertRaisesRegex(ConfigError, "'circuit' does not apply to 'x/y'"):
            measures.parse_measures("circuit", div)

    def test_config_validation_refuses_at_once(self):
        with self.assertRaisesRegex(ConfigError, "does not apply"):
            tiny_config("output.measures=fourier", preset="perm_s5_grokking")


class MeasuresCsv(unittest.TestCase):
    def test_a_run_writes_one_row_per_evaluation_and_metrics_do_not_change(self):
        tmp = temp_dir(self)
        plain = tiny_config("output.curves=false")
        measured = tiny_config("output.curves=false", "output.measures=all")
        run_experiment(plain, tmp / "plain", log=quiet)
        run_experiment(measured, tmp / "measured", log=quiet)
        self.assertEqual((tmp / "plain" / "metrics.csv").read_bytes(), (tmp / "measured" / "metrics.csv").read_bytes())
        self.assertFalse((tmp / "plain" / measures.MEASURES_CSV).exists())
        with open(tmp / "measured" / measures.MEASURES_CSV, newline="") as fh:
            rows = list(csv.DictReader(fh))
        self.assertEqual([int(r["step"]) for r in rows], eval_schedule(40, 10))
        p = plain.task.p
        for column in ["fourier_gini", "fourier_n90", "restricted_loss", "excluded_loss", "norm_W_out",
                       "logit_rms", "sc_zero_grad", *(f"freq_norm_{k}" for k in range(1, p // 2 + 1))]:
            self.assertIn(column, rows[0])
        self.assertTrue(all(np.isfinite(float(v)) for r in rows for v in r.values()))
        # The last row's norms are the final parameters'.
        from grokking.checkpoint import load_checkpoint

        params = load_checkpoint(tmp / "measured" / "checkpoint.npz")[1]
        self.assertAlmostEqual(float(rows[-1]["norm_W_out"]), float(np.linalg.norm(params["W_out"])), places=5)

    def test_a_new_measure_is_one_function_and_one_entry(self):
        # The example of the README's "Extending" and of measures.py's docstring, verbatim.
        def logit_max(ctx):
            return {"logit_max": float(ctx.train_logits.max())}

        tmp = temp_dir(self)
        with mock.patch.dict(measures.MEASURES, {"logit_max": measures.Measure(logit_max, "the largest training logit")}):
            run_experiment(tiny_config("output.curves=false", "output.measures=logit_max,norms"), tmp / "r", log=quiet)
        with open(tmp / "r" / measures.MEASURES_CSV, newline="") as fh:
            header = next(csv.reader(fh))
        self.assertEqual(header[:2], ["step", "logit_max"])
        self.assertIn("norm_W1", header)

    def test_the_transformer_writes_measures_on_the_figure_1_task(self):
        tmp = temp_dir(self)
        config = tiny_config("model.type=transformer", "model.d_model=8", "model.n_heads=2", "task.p=13",
                             "output.curves=false", "output.measures=all", preset="fig1_div_transformer")
        run_experiment(config, tmp / "t", log=quiet)
        with open(tmp / "t" / measures.MEASURES_CSV, newline="") as fh:
            rows = list(csv.DictReader(fh))
        self.assertEqual(len(rows), len(eval_schedule(40, 10)))
        self.assertIn("freq_norm_6", rows[0])
        self.assertIn("norm_l1.W_qkv", rows[0])
        self.assertNotIn("restricted_loss", rows[0])  # x/y: not a function of a + b

    def test_operand_embeddings_are_one_row_per_operand(self):
        table = build_table("x+y", 11)
        for kind, extra in (("mlp", []), ("transformer", ["model.d_model=8", "model.n_heads=2"])):
            config = tiny_config(f"model.type={kind}", *extra)
            model = MODELS[kind](config.model, table.n_tokens, table.n_classes)
            params = model.init_params(np.random.default_rng(0))
            self.assertEqual(model.operand_embedding(params).shape[0], 11)

    def test_the_mlp_embedding_does_not_depend_on_how_the_first_layer_is_factored(self):
        # E A and A^-1 W1 (both halves) compute the same network: the measured embedding agrees.
        table = build_table("x+y", 11)
        config = tiny_config("model.dtype=float64")
        model = MODELS["mlp"](config.model, table.n_tokens, table.n_classes)
        params = model.init_params(np.random.default_rng(0))
        a = np.random.default_rng(1).standard_normal((8, 8)) + 3 * np.eye(8)
        inv = np.linalg.inv(a)
        other = {**params, "embed": params["embed"] @ a,
                 "W1": np.concatenate([inv @ params["W1"][:8], inv @ params["W1"][8:]])}
        np.testing.assert_allclose(model.logits(other, table.x, table.y), model.logits(params, table.x, table.y),
                                   atol=1e-10)
        np.testing.assert_allclose(model.operand_embedding(other), model.operand_embedding(params), atol=1e-10)
        self.assertGreater(np.abs(other["embed"] - params["embed"]).max(), 0.1)


if __name__ == "__main__":
    unittest.main()
