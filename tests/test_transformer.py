import itertools
import math
import platform
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking.engine import Batch
from grokking.optimizer import AdamW
from grokking.transformer import NORMALIZATIONS, SEQUENCES, SUFFIX_ROWS, Transformer, _chunks

from helpers import outcome

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the cross-check is optional; torch is never a dependency
    torch = None


def random_batch(rng, n_tokens, n_classes, n, dtype="float64"):
    return Batch(rng.integers(0, n_tokens, n), rng.integers(0, n_tokens, n),
                 rng.integers(0, n_classes, n), n_tokens, dtype)


def perturbed_params(model, rng):
    params = model.init_params(rng)
    for p in params.values():  # nonzero biases and non-unit gains, so their gradients are exercised
        p += 0.1 * rng.standard_normal(p.shape)
    return params


class Causality(unittest.TestCase):
    def test_later_tokens_do_not_change_earlier_positions(self):
        rng = np.random.default_rng(1)
        model = Transformer(6, 6, d_model=8, n_layers=3, n_heads=2, dtype="float64", positional="learned")
        params = perturbed_params(model, rng)
        tokens = rng.integers(0, model.vocab_size, (5, 4))
        before = model.hidden_states(params, tokens)
        for j in range(4):
            changed = tokens.copy()
            changed[:, j] = (changed[:, j] + 1) % model.vocab_size
            after = model.hidden_states(params, changed)
            for layer, (a, b) in enumerate(zip(before, after)):
                with self.subTest(position=j, layer=layer):
                    np.testing.assert_array_equal(a[:, :j], b[:, :j])
                    self.assertTrue(np.all(np.abs(a[:, j] - b[:, j]).max(axis=1) > 0))

    def test_fast_path_matches_plain_forward(self):
        # The fast path shares the prefix ("x op" or "x") per distinct x and skips rows the answer
        # cannot see.
        rng = np.random.default_rng(2)
        for n_layers, sequence, normalization in itertools.product((1, 2, 3), SEQUENCES, NORMALIZATIONS):
            with self.subTest(n_layers=n_layers, sequence=sequence, normalization=normalization):
                model = Transformer(7, 5, d_model=16, n_layers=n_layers, n_heads=4, dtype="float64",
                                    sequence=sequence, normalization=normalization)
                params = perturbed_params(model, rng)
                x, y = rng.integers(0, 7, 30), rng.integers(0, 7, 30)
                plain = model.hidden_states(params, model.tokens(x, y))[-1][:, -1] @ params["W_out"]
                np.testing.assert_allclose(model.logits(params, x, y), plain, rtol=1e-12, atol=1e-12)


class NamedActivations(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(3)
        self.model = Transformer(7, 7, d_model=8, n_layers=2, n_heads=2, dtype="float64", sequence="x y =",
                                 normalization="none", positional="learned", d_ff=12)
        self.params = perturbed_params(self.model, rng)
        self.x, self.y = rng.integers(0, 7, 20), rng.integers(0, 7, 20)

    def test_every_name_in_order_with_its_shape_and_the_logits_of_the_engine(self):
        m = self.model
        logits, cache = m.run_with_cache(self.params, self.x, self.y)
        np.testing.assert_allclose(logits, m.logits(self.params, self.x, self.y), rtol=1e-12, atol=1e-12)
        self.assertEqual(tuple(cache), m.activation_names)
        self.assertEqual(len(m.activation_names), 2 + 13 * m.n_layers)
        shapes = {"hook_embed": (20, 3, 8), "blocks.1.attn.hook_q": (20, 3, 2, 4),
                  "blocks.1.attn.hook_pattern": (20, 2, 3, 3), "blocks.0.mlp.hook_post": (20, 3, 12),
                  "blocks.1.hook_resid_post": (20, 3, 8)}
        for name, shape in shapes.items():
            self.assertEqual(cache[name].shape, shape, name)
        np.testing.assert_allclose(cache["blocks.0.attn.hook_pattern"].sum(axis=-1), 1.0, rtol=1e-12)
        self.assertTrue(np.all(cache["blocks.0.attn.hook_pattern"][:, :, 0, 1:] == 0), "causal")
        np.testing.assert_allclose(cache["blocks.1.hook_resid_post"][:, -1] @ self.params["W_out"], logits)

    def test_hooks_replace_activations_downstream(self):
        m, params = self.model, self.params
        same, _ = m.run_with_cache(params, self.x, self.y, hooks={"blocks.0.hook_mlp_out": lambda a, name: None})
        np.testing.assert_array_equal(same, m.run_with_cache(params, self.x, self.y)[0])
        # Zeroing every head's z is the model with the first block's W_o zero.
        zeroed, cache = m.run_with_cache(params, self.x, self.y, names=["blocks.0.attn.hook_z"],
                                         hooks={"blocks.0.attn.hook_z": lambda z, name: np.zeros_like(z)})
        self.assertEqual(list(cache), ["blocks.0.attn.hook_z"])
        self.assertFalse(cache["blocks.0.attn.hook_z"].any(), "the cache holds the replaced value")
        no_wo = {**params, "l0.W_o": np.zeros_like(params["l0.W_o"])}
        np.testing.assert_allclose(zeroed, m.logits(no_wo, self.x, self.y), rtol=1e-12, atol=1e-12)
        self.assertGreater(np.abs(zeroed - same).max(), 1e-3)

    def test_unknown_names_and_wrong_shapes_are_refused(self):
        with self.assertRaisesRegex(ValueError, "unknown activation name.*'blocks.0.hook_mlp'.*hook_embed"):
            self.model.run_with_cache(self.params, self.x, self.y, names=["blocks.0.hook_mlp"])
        with self.assertRaisesRegex(ValueError, "returned shape"):
            self.model.run_with_cache(self.params, self.x, self.y, hooks={"hook_embed": lambda a, n: a[:, :1]})


def torch_loss_and_grads(model, params, x, y, labels):
    """The same architecture written independently with torch.nn.functional and autograd."""
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    d, nh = model.d_model, model.n_heads
    dh = d // nh
    tokens = torch.stack([torch.tensor(x), torch.full((len(x),), model.n_tokens), torch.tensor(y),
                          torch.full((len(x),), model.n_tokens + 1)], dim=1)
    if model.positional == "learned":
        pos = t["pos"]
    else:  # PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))
        pos = torch.zeros(4, d, dtype=torch.float64)
        for p in range(4):
            for i in range(0, d, 2):
                pos[p, i] = math.sin(p / 10000 ** (i / d))
                pos[p, i + 1] = math.cos(p / 10000 ** (i / d))
    h = F.embedding(tokens, t["embed"]) + pos
    n = h.shape[0]
    causal = torch.ones(4, 4, dtype=torch.bool).tril()
    for i in range(model.n_layers):
        w = lambda name: t[f"l{i}.{name}"]  # noqa: E731
        q, k, v = F.linear(h, w("W_qkv").T).split(d, dim=-1)
        q, k, v = (a.view(n, 4, nh, dh).transpose(1, 2) for a in (q, k, v))
        att = (q @ k.transpose(-1, -2) / math.sqrt(dh)).masked_fill(~causal, float("-inf")).softmax(-1)
        o = (att @ v).transpose(1, 2).reshape(n, 4, d)
        h = F.layer_norm(h + F.linear(o, w("W_o").T), (d,), w("ln1_g"), w("ln1_b"), eps=1e-5)
        f = F.linear(F.relu(F.linear(h, w("W_ff1").T, w("b_ff1"))), w("W_ff2").T, w("b_ff2"))
        h = F.layer_norm(h + f, (d,), w("ln2_g"), w("ln2_b"), eps=1e-5)
    logits = F.linear(h[:, -1], t["W_out"].T)
    loss = F.cross_entropy(logits, torch.tensor(labels))
    loss.backward()
    return loss.item(), {k: v.grad.numpy() for k, v in t.items()}


@unittest.skipUnless(torch is not None, "torch is not installed")
class MatchesPyTorch(unittest.TestCase):
    def test_trajectory_script_trains_both_along_the_same_path(self):
        # benchmarks/trajectory_vs_pytorch.py at a tiny size: 40 steps of both engines, float64.
        import csv
        import io
        import sys
        from contextlib import redirect_stdout

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
        import trajectory_vs_pytorch

        with tempfile.TemporaryDirectory() as tmp, redirect_stdout(io.StringIO()):
            out = Path(tmp) / "t.csv"
            code = trajectory_vs_pytorch.main([
                "--steps", "40", "--every", "20", "--out", str(out), "--override", "task.p=11",
                "--override", "model.d_model=16", "--override", "model.n_heads=2",
                "--override", "training.batch_size=16"])
            with out.open() as fh:
                rows = list(csv.DictReader(fh))
        self.assertEqual(code, 0)
        self.assertEqual(len(rows), 40)
        for row in rows:
            self.assertLess(float(row["loss_diff"]), 1e-12, row["step"])
        self.assertLess(float(rows[-1]["max_rel_param_diff"]), 1e-12)
        self.assertEqual(rows[-1]["val_acc_numpy"], rows[-1]["val_acc_torch"])

    def test_loss_and_every_gradient(self):
        rng = np.random.default_rng(3)
        for n_layers, positional in ((1, "learned"), (2, "sinusoidal"), (3, "learned")):
            model = Transformer(11, 9, d_model=16, n_layers=n_layers, n_heads=4, dtype="float64",
                                positional=positional)
            params = perturbed_params(model, rng)
            # One example (one chunk, one prefix row), three (two chunks), and 64 (repeated x and y).
            for n in (1, 3, 64):
                batch = random_batch(rng, 11, 9, n)
                loss, _, grads = model.loss_and_grads(params, batch)
                tloss, tgrads = torch_loss_and_grads(model, params, batch.x, batch.y, batch.labels)
                self.assertAlmostEqual(loss, tloss, places=12)
                self.assertEqual(set(grads), set(tgrads))
                for name in params:
                    with self.subTest(n_layers=n_layers, n=n, param=name):
                        np.testing.assert_allclose(grads[name], tgrads[name], rtol=1e-9, atol=1e-12)

    def test_float32_paper_config(self):
        rng = np.random.default_rng(4)
        model = Transformer(97, 97)
        params = model.init_params(rng)
        batch = random_batch(rng, 97, 97, 128, "float32")
        loss, _, grads = model.loss_and_grads(params, batch)
        tloss, tgrads = torch_loss_and_grads(model, params, batch.x, batch.y, batch.labels)
        self.assertAlmostEqual(loss, tloss, places=4)
        for name in params:
            with self.subTest(param=name):
                self.assertEqual(grads[name].dtype, np.float32)
                scale = np.abs(tgrads[name]).max()
                np.testing.assert_allclose(grads[name] / scale, tgrads[name] / scale, atol=1e-4)


class Engine(unittest.TestCase):
    @unittest.skipUnless(platform.libc_ver()[0] == "glibc", "keep_freed_memory tunes glibc's malloc")
    def test_steps_reuse_freed_memory_instead_of_page_faulting(self):
        # Ten steps at the paper's shapes (minibatch 512), in a fresh process each way: glibc's default
        # thresholds return the step's 1 MB temporaries to the kernel and fault them in again.
        script = """if True:
            import resource, sys
            import numpy as np
            from grokking.engine import Batch
            from grokking.parallel import keep_freed_memory
            from grokking.transformer import Transformer
            if sys.argv[1] == "keep":
                assert keep_freed_memory() and keep_freed_memory()  # idempotent
            rng = np.random.default_rng(0)
            model = Transformer(97, 97)
            params = model.init_params(rng)
            batch = Batch(rng.integers(0, 97, 512), rng.integers(0, 97, 512), rng.integers(0, 97, 512), 97, "float32")
            model.loss_and_grads(params, batch)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(10):
                model.loss_and_grads(params, batch)
            print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        """
        faults = {how: int(subprocess.run([sys.executable, "-c", script, how], check=True, capture_output=True,
                                          text=True).stdout) for how in ("default", "keep")}
        self.assertGreater(faults["default"], 3000, faults)  # about 950 per step on one thread
        self.assertLess(faults["keep"], faults["default"] / 10, faults)

    def test_chunks_are_fixed_by_the_batch_size_and_even(self):
        # Two threads share a minibatch of 512 evenly; the full batch of Figure 1 in six chunks.
        self.assertEqual([(c.start, c.stop) for c in _chunks(512)], [(0, 256), (256, 512)])
        self.assertEqual(len(_chunks(4656)), 6)
        for n in (1, 2, 3, 511, 2 * SUFFIX_ROWS + 1, 9312):
            chunks = _chunks(n)
            self.assertEqual(sum(c.stop - c.start for c in chunks), n)
            self.assertTrue(all(c.stop > c.start for c in chunks))
            self.assertTrue(len(chunks) % 2 == 0 or len(chunks) == n == 1, n)

    def test_dropout_needs_a_generator_and_zero_dropout_draws_nothing(self):
        rng = np.random.default_rng(8)
        batch = random_batch(rng, 5, 5, 10, "float32")
        dropping = Transformer(5, 5, d_model=8, n_heads=2, dropout=0.1)
        params = dropping.init_params(rng)
        with self.assertRaises(ValueError):
            dropping.loss_and_grads(params, batch)
        plain = Transformer(5, 5, d_model=8, n_heads=2)
        stream = np.random.default_rng(9)
        state = stream.bit_generator.state
        self.assertEqual(plain.loss_and_grads(params, batch, stream)[0], plain.loss_and_grads(params, batch)[0])
        self.assertEqual(stream.bit_generator.state, state)
        # Dropout is active in training only: two streams give two losses, evaluate gives neither.
        a = dropping.loss_and_grads(params, batch, np.random.default_rng(1))[0]
        b = dropping.loss_and_grads(params, batch, np.random.default_rng(2))[0]
        self.assertNotEqual(a, b)
        self.assertAlmostEqual(dropping.evaluate(params, batch.x, batch.y, batch.labels)[0],
                               plain.evaluate(params, batch.x, batch.y, batch.labels)[0], places=6)


class Shapes(unittest.TestCase):
    def test_paper_config_parameter_count_and_dtype(self):
        # p = 97: vocabulary 97 operands + op + "=", 97 answers; d_model 128, 2 layers, 4 heads.
        model = Transformer(97, 97)
        params = model.init_params(np.random.default_rng(0))
        d, f = 128, 512
        per_layer = (d * 3 * d + d * d  # W_qkv, W_o
                     + d * f + f + f * d + d  # feed-forward with biases
                     + 4 * d)  # two LayerNorms, gain and bias
        self.assertEqual(per_layer, 197_760)
        self.assertEqual(params["embed"].shape, (99, 128))
        self.assertEqual(params["W_out"].shape, (128, 97))
        self.assertNotIn("pos", params)  # sinusoidal positions by default: no parameters
        self.assertEqual(sum(p.size for p in params.values()), 99 * 128 + 2 * per_layer + 128 * 97)
        self.assertEqual(sum(p.size for p in params.values()), 420_608)
        non_embedding = sum(p.size for k, p in params.items() if k not in ("embed", "pos"))
        self.assertEqual(non_embedding, 407_936)  # "about 4e5 non-embedding parameters" (App. A.1.2)
        self.assertTrue(all(p.dtype == np.float32 for p in params.values()))
        learned = Transformer(97, 97, positional="learned").init_params(np.random.default_rng(0))
        self.assertEqual(learned["pos"].shape, (4, 128))
        scaled = Transformer(97, 97, position_scale=0.01)
        np.testing.assert_allclose(scaled._positions(params), 0.01 * model._positions(params), rtol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(model._positions(params), axis=1), 8.0, rtol=1e-6)  # sqrt(128 / 2)
        uniform = Transformer(97, 97, init="uniform").init_params(np.random.default_rng(0))
        self.assertLessEqual(np.abs(uniform["l0.W_ff2"]).max(), 1 / np.sqrt(512))  # fan-in 512
        self.assertEqual(set(uniform), set(params))
        np.testing.assert_array_equal(uniform["embed"], params["embed"])  # drawn first, N(0, 1) either way

        rng = np.random.default_rng(1)
        batch = random_batch(rng, 97, 97, 32, "float32")
        self.assertEqual(model.logits(params, batch.x, batch.y).shape, (32, 97))
        self.assertEqual(model.logits(params, batch.x, batch.y).dtype, np.float32)
        _, _, grads = model.loss_and_grads(params, batch)
        for name, p in params.items():
            self.assertEqual((grads[name].shape, grads[name].dtype), (p.shape, p.dtype), name)
        params64 = Transformer(5, 5, d_model=8, n_heads=2, dtype="float64").init_params(rng)
        self.assertTrue(all(p.dtype == np.float64 for p in params64.values()))

    def test_bad_settings_are_refused(self):
        with self.assertRaises(ValueError):
            Transformer(5, 5, d_model=10, n_heads=4)
        with self.assertRaises(ValueError):
            Transformer(5, 5, positional="rotary")
        with self.assertRaises(ValueError):
            Transformer(5, 5, dropout=1.0)


class Training(unittest.TestCase):
    @outcome
    def test_memorizes_a_tiny_table(self):  # at step 44 under every kernel
        p = 7
        x, y = (a.ravel() for a in np.meshgrid(np.arange(p), np.arange(p), indexing="ij"))
        batch = Batch(x, y, (x + y) % p, p, "float32")
        model = Transformer(p, p, d_model=32, n_layers=2, n_heads=4)
        params = model.init_params(np.random.default_rng(0))
        opt = AdamW(params, beta2=0.98, weight_decay=0.1)
        for step in range(1, 301):
            loss, acc, grads = model.loss_and_grads(params, batch)
            if acc == 1.0:
                break
            opt.step(params, grads, 3e-3)
        self.assertEqual(model.evaluate(params, x, y, batch.labels)[1], 1.0, f"loss {loss} at step {step}")


if __name__ == "__main__":
    unittest.main()
