"""grokking.toy, Liu et al.'s toy model of addition: gradients, data, initial weights, the phase
rule on their published steps, and a cell's steps."""

import unittest
from collections import Counter

import grokking  # noqa: F401  (before NumPy, as everywhere)
import numpy as np

from grokking import phases, toy
from helpers import ROOT, outcome

THEIRS = ROOT / "benchmarks" / "data" / "liu2022_fig5b_steps.csv"


class Gradients(unittest.TestCase):
    def test_backward_matches_central_differences(self):
        params = toy.init_params(dtype="float64")
        data = toy.make_data()
        pairs = data["pairs"][data["train"][:12]]
        target = data["templates"].astype(np.float64)[data["sums"][data["train"][:12]]]

        def loss(p):
            return toy.mse(toy.forward(p, pairs), target)[0]

        out, cache = toy.forward(params, pairs, cache=True)
        grads = toy.backward(params, toy.mse(out, target)[1], cache)
        rng = np.random.default_rng(0)
        h = 1e-6
        for name, value in params.items():
            for flat in rng.choice(value.size, min(5, value.size), replace=False):
                idx = np.unravel_index(flat, value.shape)
                up, down = dict(params), dict(params)
                up[name], down[name] = value.copy(), value.copy()
                up[name][idx] += h
                down[name][idx] -= h
                numeric = (loss(up) - loss(down)) / (2 * h)
                self.assertAlmostEqual(grads[name][idx], numeric, delta=1e-7 + 1e-5 * abs(numeric), msg=name)


class Data(unittest.TestCase):
    def test_templates_and_split_are_their_seed_58_draws(self):
        saved = np.random.get_state()
        try:  # their way: the global legacy generator
            np.random.seed(58)
            templates = np.random.normal(0, 1, size=(19, 30))
            train = np.random.choice(55, 45, replace=False)
        finally:
            np.random.set_state(saved)
        d = toy.make_data()
        np.testing.assert_array_equal(d["templates"], templates.astype(np.float32))
        np.testing.assert_array_equal(d["train"], train)
        self.assertEqual(d["test"].tolist(), [2, 4, 14, 16, 21, 34, 36, 40, 43, 44])
        self.assertEqual(d["templates"][0, :2].tolist(), [np.float32(-0.7601861357688904), np.float32(-2.101583957672119)])
        self.assertEqual(len(d["pairs"]), 55)
        self.assertEqual(d["sums"].max(), 18)

    def test_initial_weights_are_torch_manual_seed_58(self):
        p = toy.init_params()
        self.assertEqual(p["reprs"].ravel()[:3].tolist(),
                         [np.float32(v) for v in (-0.03297215700149536, -0.1441326141357422, 0.008714139461517334)])
        self.assertEqual(p["W2"][0, :2].tolist(), [np.float32(-0.0076222834177315235), np.float32(0.005199437960982323)])
        self.assertEqual({k: v.shape for k, v in p.items()},
                         {"reprs": (10, 1), "W1": (1, 200), "b1": (200,), "W2": (200, 200), "b2": (200,),
                          "W3": (200, 30), "b3": (30,)})
        try:
            import torch
        except ImportError:
            self.skipTest("torch not installed")
        torch.manual_seed(58)
        reprs = torch.rand(10, 1) - 1 / 2
        linears = [torch.nn.Linear(1, 200), torch.nn.Linear(200, 200), torch.nn.Linear(200, 30)]
        np.testing.assert_array_equal(p["reprs"], reprs.numpy())
        for k, layer in enumerate(linears, start=1):
            np.testing.assert_array_equal(p[f"W{k}"], layer.weight.detach().numpy().T)
            np.testing.assert_array_equal(p[f"b{k}"], layer.bias.detach().numpy())


class Rule(unittest.TestCase):
    def test_their_published_steps_give_their_diagram(self):
        cells = toy.read_steps(THEIRS)
        self.assertEqual(len(cells), 110)
        counts = Counter(toy.liu_phase(c["train_step"], c["test_step"]) for c in cells)
        self.assertEqual(counts, {"comprehension": 12, "grokking": 18, "memorization": 49, "confusion": 31})

    def test_corners_of_their_rule_and_how_phases_classify_reads_them(self):
        never = toy.STEPS - 1
        cases = {  # (train, test): (their notebook, phases.classify)
            (100, 1100): ("comprehension", "comprehension"),  # a gap of exactly 1000
            (100, 1101): ("grokking", "grokking"),
            (3000, 100): ("comprehension", "grokking"),  # test leads by more than the gap
            (never, 500): ("comprehension", "confusion"),  # test only
            (100, never): ("memorization", "memorization"),
            (never, never): ("confusion", "confusion"),
        }
        for (train, test), (theirs, ours) in cases.items():
            self.assertEqual(toy.liu_phase(train, test), theirs, (train, test))
            steps = list(range(toy.STEPS))
            acc = {"train_acc": [float(s >= train and train < never) for s in steps],
                   "val_acc": [float(s >= test and test < never) for s in steps]}
            self.assertEqual(phases.classify({"step": steps, **acc})["phase"], ours, (train, test))


class Runs(unittest.TestCase):
    def test_same_bytes_twice(self):
        a, b = toy.run(1e-3, 1.0, steps=40), toy.run(1e-3, 1.0, steps=40)
        self.assertEqual(a["loss_train"].tobytes(), b["loss_train"].tobytes())
        for k in a["params"]:
            self.assertEqual(a["params"][k].tobytes(), b["params"][k].tobytes())

    @outcome
    def test_a_cell_reaches_train_accuracy_at_their_step(self):
        # eta_dec = 0.01, no decay: their file says training gets there at loop step 245.
        r = toy.run(0.01, 0.0, steps=400)
        self.assertEqual(r["train_step"], 245)
        self.assertEqual(r["test_step"], 399)  # not within 400 steps (theirs: never in 10^4)

    def test_bad_arguments_exit_2(self):
        import contextlib
        import io

        with contextlib.redirect_stderr(io.StringIO()) as err:
            self.assertEqual(toy.main(["--steps", "1"]), 2)
        self.assertEqual(len(err.getvalue().strip().splitlines()), 1)


if __name__ == "__main__":
    unittest.main()
