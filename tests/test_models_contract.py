"""The model contract (grokking.models.Model), checked for every entry of MODELS: a new model gets
these tests by being registered.

Each model runs in the variants of its config that take other code paths (VARIANTS; a model not
listed there runs in its defaults): its gradients against finite differences, the same bytes on one
thread or two, evaluate against the loss and the logits, the names Muon and the figures read, and a
run interrupted and resumed ending byte for byte where an uninterrupted run ends.
"""

import importlib.util
import itertools
import unittest
from contextlib import contextmanager
from unittest import mock

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking.engine import Batch, cross_entropy
from grokking.experiment import build_model, build_optimizer, run_experiment
from grokking.models import MODELS
from grokking.parallel import engine_threads
from grokking.tasks import build as build_task

from helpers import ROOT, assert_same_run, numerical_grads, quiet, temp_dir, tiny_config

# The docs' example of a new model, registered as its docstring says: one file and one line, and it
# passes these tests with no test of its own.
_spec = importlib.util.spec_from_file_location("new_model", ROOT / "docs" / "examples" / "new_model.py")
new_model = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(new_model)
_registered = mock.patch.dict(MODELS, {"embed_sum": new_model.build})


def setUpModule():
    _registered.start()


def tearDownModule():
    _registered.stop()

# Small enough for finite differences over every parameter; fields a model does not read are ignored.
SMALL = ["model.d_embed=4", "model.d_hidden=6", "model.d_model=4", "model.n_heads=2"]
# 16 ReLU units: with 6 (SMALL) some rows of 6 bits find every unit dead, and their two logits tie.
_PARITY = ["task.family=parity", "task.bits=6", "task.k=2", "task.samples=200", "model.d_hidden=16"]
VARIANTS = {
    "mlp": [["model.n_layers=2"], ["model.n_layers=2", "model.activation=tanh"],
            ["model.n_layers=2", "model.activation=quadratic"],
            ["model.input=onehot", "model.activation=quadratic"],
            ["model.input=twohot", "model.n_layers=2", "model.loss=stablemax"],
            ["model.input=onehot", "model.loss_dtype=float64"]],
    "transformer": [["model.n_layers=2"], ["model.positional=learned", "model.loss=stablemax"],
                    ["model.n_layers=2", "model.positional=learned", "model.dropout=0.3"],
                    # Nanda et al.'s model: no LayerNorm, "x y =", its width and initialization
                    ["model.normalization=none", "model.sequence=x y =", "model.positional=learned",
                     "model.d_ff=12", "model.init=nanda", "model.loss_dtype=float64"],
                    ["model.n_layers=2", "model.sequence=x y =", "model.dropout=0.3"]],
    # The families of vectors it reads: +-1 bits, one-hot sums, and (digits' real inputs) the MSE loss.
    "dense": [[*_PARITY, "model.n_layers=2"], [*_PARITY, "model.activation=tanh", "model.loss=mse"],
              ["task.family=sum", "task.p=5", "task.k=3", "model.activation=quadratic", "model.init=uniform"],
              [*_PARITY, "model.loss=stablemax", "model.loss_dtype=float64"]],
}


def variants():
    """(name, overrides) of every registered model's variants."""
    for name in MODELS:
        for extra in VARIANTS.get(name, [[]]):
            yield f"{name} {' '.join(extra)}".strip(), [f"model.type={name}", *SMALL, *extra]


def build(overrides, *extra):
    config = tiny_config(*overrides, *extra)
    table = build_task(config.task)
    return config, table, build_model(config, table.n_tokens, table.n_classes)


def rows(table, n, seed, dtype):
    """A batch of n rows drawn from the table, with repeats."""
    i = np.random.default_rng(seed).integers(0, len(table), n)
    return Batch(table.x[i], table.y[i], table.labels[i], table.n_tokens, dtype)


def step(model, params, batch):
    """loss_and_grads with a fresh stream: the same dropout masks each call."""
    return model.loss_and_grads(params, batch, np.random.default_rng(7) if model.uses_rng else None)


@contextmanager
def interrupted(model_type: str, call: int):
    """The registered model raises KeyboardInterrupt (as at Ctrl-C) in training step number ``call``."""
    real_build = MODELS[model_type]

    def build_interrupted(*args):
        model = real_build(*args)
        real, calls = model.loss_and_grads, itertools.count(1)

        def loss_and_grads(*a, **k):
            if next(calls) == call:
                raise KeyboardInterrupt
            return real(*a, **k)

        model.loss_and_grads = loss_and_grads
        return model

    with mock.patch.dict(MODELS, {model_type: build_interrupted}):
        yield


class Contract(unittest.TestCase):
    def test_gradients_match_finite_differences(self):
        for what, overrides in variants():
            with self.subTest(what):
                _, table, model = build(overrides, "model.dtype=float64")
                rng = np.random.default_rng(0)
                params = model.init_params(rng)
                for p in params.values():  # nonzero biases, non-unit gains: their gradients count too
                    p += 0.1 * rng.standard_normal(p.shape)
                batch = rows(table, 12, 1, model.dtype)  # repeated tokens, and tokens that never occur
                loss, _, grads = step(model, params, batch)
                self.assertEqual(list(grads), list(params))
                numeric = numerical_grads(lambda: step(model, params, batch)[0], params)
                for name in params:
                    np.testing.assert_allclose(grads[name], numeric[name], rtol=1e-5, atol=1e-8, err_msg=name)

    def test_the_same_bytes_on_one_thread_or_two(self):
        # 6,000 rows: three or more chunks of every model here (two parts add the same either way).
        for what, overrides in variants():
            with self.subTest(what):
                _, table, model = build(overrides)
                params = model.init_params(np.random.default_rng(0))
                batch = rows(table, 6000, 2, model.dtype)
                results = []
                for threads in (1, 2):
                    with engine_threads(threads):
                        loss, acc, grads = step(model, params, batch)
                        results.append((loss, acc, model.evaluate(params, batch.x, batch.y, batch.labels),
                                        model.logits(params, batch.x, batch.y).tobytes(),
                                        b"".join(g.tobytes() for g in grads.values())))
                self.assertEqual(results[0], results[1])

    def test_evaluate_agrees_with_the_loss_and_the_logits(self):
        for what, overrides in variants():
            with self.subTest(what):
                config, table, model = build(overrides, "model.dtype=float64")
                params = model.init_params(np.random.default_rng(0))
                batch = rows(table, 50, 3, model.dtype)
                loss, acc = model.evaluate(params, batch.x, batch.y, batch.labels)
                logits = model.logits(params, batch.x, batch.y)
                self.assertEqual((logits.shape, logits.dtype), ((50, table.n_classes), model.dtype))
                self.assertEqual(acc, np.mean(logits.argmax(axis=1) == batch.labels))
                self.assertAlmostEqual(loss, cross_entropy(logits, batch.labels, None, config.model.loss)[0] / 50,
                                       places=12)
                if model.uses_rng:
                    continue
                stream = np.random.default_rng(4)
                state = stream.bit_generator.state
                step_loss, step_acc, _ = model.loss_and_grads(params, batch, stream)
                self.assertEqual(stream.bit_generator.state, state)  # a step that uses no rng draws nothing
                self.assertAlmostEqual(step_loss, loss, places=12)
                self.assertIn(step_acc, (None, acc))

    def test_parameters_and_their_names(self):
        for what, overrides in variants():
            with self.subTest(what):
                config, table, model = build(overrides, "optimizer.name=muon")
                params = model.init_params(np.random.default_rng(0))
                again = model.init_params(np.random.default_rng(0))
                self.assertEqual([(k, p.tobytes()) for k, p in params.items()],
                                 [(k, p.tobytes()) for k, p in again.items()])
                self.assertTrue(all(p.dtype == model.dtype for p in params.values()))
                _, _, grads = step(model, params, rows(table, 20, 5, model.dtype))
                self.assertEqual([(k, g.shape, g.dtype) for k, g in grads.items()],
                                 [(k, p.shape, p.dtype) for k, p in params.items()])
                self.assertIn("W_out", params)
                self.assertTrue(set(model.embeddings) <= set(params), model.embeddings)
                self.assertTrue(all(params[k].ndim == 2 for k in model.embeddings))
                # Muon, as the run builds it, orthogonalizes every matrix but the embeddings and W_out.
                matrices = [k for k, p in params.items() if p.ndim == 2 and k not in (*model.embeddings, "W_out")]
                self.assertEqual(build_optimizer(config, params, model.embeddings).matrices, matrices)
                embedding = model.operand_embedding(params)
                self.assertEqual((embedding.ndim, len(embedding)), (2, table.n_tokens))

    def test_named_activations_and_hooks(self):
        for what, overrides in variants():
            with self.subTest(what):
                _, table, model = build(overrides, "model.dtype=float64")
                params = model.init_params(np.random.default_rng(0))
                batch = rows(table, 30, 6, model.dtype)
                logits, cache = model.run_with_cache(params, batch.x, batch.y)
                np.testing.assert_allclose(logits, model.logits(params, batch.x, batch.y), rtol=1e-10, atol=1e-12)
                names = model.activation_names
                self.assertEqual(tuple(cache), names)  # every name, in forward order
                self.assertTrue(all(len(a) == 30 for a in cache.values()))
                identity, kept = model.run_with_cache(params, batch.x, batch.y, names=names[-1:],
                                                      hooks={n: (lambda a, n: None) for n in names})
                np.testing.assert_array_equal(identity, logits)
                self.assertEqual(list(kept), [names[-1]])
                # Every activation, replaced, changes the answer: the hooks reach the logits. (Not
                # by a constant, which softmax over keys or scores would not see.)
                for name in names:
                    changed, _ = model.run_with_cache(
                        params, batch.x, batch.y, names=(),
                        hooks={name: lambda a, n: a + np.linspace(0.5, 1.5, a.size).reshape(a.shape)})
                    self.assertGreater(np.abs(changed - logits).max(), 1e-9, name)
                with self.assertRaisesRegex(ValueError, "unknown activation name"):
                    model.run_with_cache(params, batch.x, batch.y, names=["hook_nothing"])

    def test_a_run_interrupted_and_resumed_gives_the_same_bytes(self):
        # Checkpoints at 25; interrupted in step 37, after the evaluation of step 30, which resume
        # must drop and redo. The uninterrupted run on one thread, the other on two.
        tmp = temp_dir(self)
        for i, (what, overrides) in enumerate(variants()):
            with self.subTest(what):
                config = tiny_config(*overrides, "task.train_fraction=0.5", "output.curves=false",
                                     "output.checkpoint_interval=25", "output.measures=norms")
                whole, cut = tmp / f"{i}-whole", tmp / f"{i}-cut"
                run_experiment(config, whole, log=quiet, threads=1)
                with interrupted(config.model.type, 37), self.assertRaises(KeyboardInterrupt):
                    run_experiment(config, cut, log=quiet, threads=2)
                self.assertIn(b"\n30,", (cut / "metrics.csv").read_bytes())
                run_experiment(config, cut, log=quiet, threads=2, resume=True)
                assert_same_run(self, whole, cut)


if __name__ == "__main__":
    unittest.main()
