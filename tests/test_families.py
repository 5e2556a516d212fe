"""The task families beyond the operation tables (tasks.FAMILIES: sum, parity, digits), each against
direct arithmetic; the model and config rules that go with them; the MSE loss; the sparse parity
measure; and the readers of the two claims these tasks serve (Merrill et al., Omnigrok)."""

import itertools
import unittest
from types import SimpleNamespace
from unittest import mock

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking import claims, measures, tasks
from grokking.config import TaskConfig
from grokking.engine import cross_entropy
from grokking.errors import ConfigError
from grokking.tasks import FAMILIES, build

from helpers import temp_dir, tiny_config


def sklearn_installed() -> bool:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


class Sum(unittest.TestCase):
    def test_against_direct_arithmetic(self):
        t = build(TaskConfig(family="sum", p=5, k=3))
        tuples = list(itertools.product(range(5), repeat=3))  # row-major: the last operand inner
        self.assertEqual((t.x.shape, t.n_tokens, t.n_classes), ((125, 15), 15, 5))
        self.assertEqual(t.labels.tolist(), [sum(c) % 5 for c in tuples])
        for row, c in zip(t.x, tuples):  # each operand's one-hot in its own block of p inputs
            self.assertEqual(np.flatnonzero(row).tolist(), [i * 5 + v for i, v in enumerate(c)])
        self.assertTrue(t.vectors and t.x.dtype == np.float32)

    def test_limits(self):
        with self.assertRaisesRegex(ConfigError, "task.k: the sum takes 2 to 8 operands"):
            build(TaskConfig(family="sum", p=5, k=1))
        with self.assertRaisesRegex(ConfigError, "at most 2,000,000 rows"):
            build(TaskConfig(family="sum", p=97, k=4))


class Parity(unittest.TestCase):
    def test_labels_are_the_parity_of_the_first_k_bits(self):
        t = build(TaskConfig(family="parity", bits=10, k=3, samples=300))
        self.assertEqual((t.x.shape, t.n_tokens, t.n_classes), ((300, 10), 10, 2))
        self.assertEqual(set(np.unique(t.x)), {-1.0, 1.0})
        bits = (t.x < 0).astype(int)  # -1 is a set bit
        self.assertEqual(t.labels.tolist(), [int(sum(b[:3]) % 2) for b in bits])
        # as a product of +-1 values: parity 1 where the product is -1
        np.testing.assert_array_equal(t.labels, (np.prod(t.x[:, :3], axis=1) < 0).astype(int))
        self.assertTrue(0.4 < t.labels.mean() < 0.6)

    def test_rows_are_a_function_of_the_task_config(self):
        a, b = (build(TaskConfig(family="parity", bits=8, k=2, samples=50)) for _ in range(2))
        c = build(TaskConfig(family="parity", bits=8, k=2, samples=50, data_seed=1))
        self.assertEqual(a.x.tobytes(), b.x.tobytes())
        self.assertNotEqual(a.x.tobytes(), c.x.tobytes())

    def test_refusals(self):
        for task, pattern in [(TaskConfig(family="parity", bits=4, k=5), "1 <= k <= bits"),
                              (TaskConfig(family="parity", samples=1), "task.samples must be >= 2"),
                              (TaskConfig(family="parity", data_seed=-1), "data_seed"),
                              (TaskConfig(family="parity", bits=1000, samples=100_000), "inputs in all"),
                              (TaskConfig(family="tables"), "unknown family 'tables'; allowed: table, sum")]:
            with self.subTest(pattern), self.assertRaisesRegex(ConfigError, pattern):
                build(task)


class Digits(unittest.TestCase):
    @unittest.skipUnless(sklearn_installed(), "scikit-learn (the digits extra) is not installed")
    def test_the_bundled_images_scaled(self):
        from sklearn.datasets import load_digits

        images, target = load_digits(return_X_y=True)
        t = build(TaskConfig(family="digits"))
        self.assertEqual((t.x.shape, t.n_tokens, t.n_classes), ((1797, 64), 64, 10))
        np.testing.assert_array_equal(t.x * 16, images)
        np.testing.assert_array_equal(t.labels, target)

    def test_missing_scikit_learn_is_one_line(self):
        with mock.patch.dict("sys.modules", {"sklearn": None, "sklearn.datasets": None}), \
                self.assertRaisesRegex(ConfigError, r"needs scikit-learn, which is not installed: pip install"):
            tiny_config("task.family=digits", "model.type=dense")


class Rules(unittest.TestCase):
    def test_every_family_is_tested_here(self):
        self.assertEqual(set(FAMILIES), {"table", "sum", "parity", "digits"})

    def test_models_read_the_rows_their_family_gives(self):
        with self.assertRaisesRegex(ConfigError, "model.type=mlp does not read the rows of task.family=parity: "
                                                 "they are input vectors, which model.type=dense reads"):
            tiny_config("task.family=parity")
        with self.assertRaisesRegex(ConfigError, "model.type=dense reads input vectors, which only "
                                                 "task.family=sum/parity/digits gives"):
            tiny_config("model.type=dense")

    def test_measures_of_tables_are_refused_on_vectors(self):
        parity = TaskConfig(family="parity")
        self.assertEqual(measures.parse_measures("all", parity),
                         ["norms", "movement", "parity_bits", "logit_scale", "softmax_collapse"])
        with self.assertRaisesRegex(ConfigError, "'fourier' does not apply to 'parity of 3 of 40 bits'"):
            measures.parse_measures("fourier", parity)
        with self.assertRaisesRegex(ConfigError, "'parity_bits' does not apply to 'x\\+y'"):
            measures.parse_measures("parity_bits", TaskConfig())

    def test_task_names(self):
        self.assertEqual([tasks.task_name(TaskConfig(family=f)) for f in FAMILIES],
                         ["x+y", "sum of 3 mod 97", "parity of 3 of 40 bits", "digits"])


class MeanSquaredError(unittest.TestCase):
    def test_by_hand(self):
        # z = (0.5, 2), answer 1: ((0.5 - 0)^2 + (2 - 1)^2) / 2 = 0.625; gradient 2 (z - onehot) / 2.
        loss, correct, grad = cross_entropy(np.array([[0.5, 2.0], [1.0, 0.0]]), np.array([1, 1]), 1.0, "mse")
        self.assertAlmostEqual(loss, 0.625 + (1.0 + 1.0) / 2, places=15)
        self.assertEqual(correct, 1)  # the row whose answer's output is largest
        np.testing.assert_allclose(grad, [[0.5, 1.0], [1.0, -1.0]], rtol=1e-15)


class ParityMeasure(unittest.TestCase):
    def test_by_hand(self):
        model = SimpleNamespace(operand_embedding=lambda params: params["W1"])
        initial = {"W1": np.zeros((4, 2))}
        params = {"W1": np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
                  "W_out": np.array([[1.0, 0.0], [0.0, 0.1]], dtype=np.float32)}
        row = measures.parity_bits(measures.Context(model, params, None, None, SimpleNamespace(k=2), initial=initial))
        self.assertAlmostEqual(row["relevant_weight"], np.sqrt((25 + 0) / 2), places=12)
        self.assertAlmostEqual(row["irrelevant_weight"], 1.0, places=12)
        self.assertAlmostEqual(row["relevant_ratio"], np.sqrt(12.5), places=12)
        self.assertAlmostEqual(row["relevant_moved"], np.sqrt(12.5), places=12)  # from zero: the norms
        self.assertAlmostEqual(row["irrelevant_moved"], 1.0, places=12)
        # neuron sizes: |(3, 0, 1, 0)| * 1 = sqrt(10) and |(4, 0, 0, 1)| * 0.1 = sqrt(17) / 10: the first
        # carries 88% of the total, so two neurons carry 90%
        self.assertEqual(row["active_neurons"], 2)
        params["W_out"][1, 1] = 0.01  # now the first alone carries 98.7%
        row = measures.parity_bits(measures.Context(model, params, None, None, SimpleNamespace(k=2), initial=initial))
        self.assertEqual(row["active_neurons"], 1)


class ParityRun(unittest.TestCase):
    def test_a_run_its_figures_and_its_report(self):
        from grokking.experiment import run_experiment
        from grokking.figures import draw
        from grokking.report import make_report

        tmp = temp_dir(self)
        config = tiny_config("task.family=parity", "task.bits=12", "task.k=2", "task.samples=400",
                             "model.type=dense", "model.d_hidden=64", "optimizer.name=sgd", "optimizer.lr=0.1",
                             "training.batch_size=32", "training.steps=300", "output.measures=parity_bits,movement",
                             "output.curves=false")
        summary = run_experiment(config, tmp / "run", log=lambda *a: None)
        self.assertEqual((summary["status"], summary["n_train"], summary["n_val"]), ("completed", 120, 280))
        header = (tmp / "run" / "measures.csv").read_text().split("\n")[0]
        self.assertTrue(header.startswith("step,relevant_weight,irrelevant_weight,relevant_moved"), header)
        notes = []
        made = draw(tmp / "run", tmp / "figures", ("curves", "measures", "embeddings"), note=notes.append)
        self.assertEqual([p.name for p in made], ["fig1_accuracy.png", "progress_measures.png"])
        self.assertEqual(notes, ["embeddings: skipped, task.family=parity has no operand embedding (its rows are "
                                 "input vectors)"])
        page = make_report(tmp / "run").read_text()
        self.assertIn("relevant_weight", page)
        self.assertNotIn("embedding PCA", page)


def write_csv(path, columns, rows):
    path.write_text(",".join(columns) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


class ClaimReaders(unittest.TestCase):
    METRICS = ("step", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "weight_norm")

    def run_dir(self, rows, measures_rows=None):
        d = temp_dir(self)
        write_csv(d / "metrics.csv", self.METRICS, [(s, 0, tr, 0, va, 0, n) for s, tr, va, n in rows])
        if measures_rows:
            write_csv(d / "measures.csv", ("step", "relevant_moved", "relevant_ratio", "active_neurons"), measures_rows)
        return d

    def test_hidden_progress_reads_the_plateau(self):
        # fits at 100; validation below 0.6 until 500 (plateau 100..400), 0.99 at 600
        rows = [(s, min(1.0, s / 100), 0.5 if s < 500 else (0.7 if s < 600 else 1.0), 1) for s in range(100, 701, 100)]
        d = self.run_dir(rows, [(s, s / 100, 1 + s / 400, 1000 // s) for s in range(100, 701, 100)])
        value, censored, details = claims._hidden_progress(d, 1000)
        self.assertEqual((value, censored), (600.0, False))
        self.assertEqual(details["plateau"], [100, 400])
        self.assertEqual(details["ratio"], [1.25, 2.0])
        self.assertIn(details["ratio_middle"], (1.5, 1.75))  # 200 or 300: both as near the middle, 250
        self.assertEqual(details["distance_grew"], 1.0)
        self.assertEqual(details["active"], [10, 2, 1, 1])  # at the fit, the plateau's end, solved, the end
        verdict, why = claims._hidden_progress_rule("a")({"a": {"details": [details]}})
        self.assertEqual(verdict, "reproduced", why)
        dense = {**details, "active": [10, 8, 5, 2]}  # still leaning on a fifth of its neurons
        self.assertEqual(claims._hidden_progress_rule("a")({"a": {"details": [dense]}})[0], "not reproduced")
        flat = {**details, "ratio": [1.25, 1.3]}  # the relevant bits gained too little
        self.assertEqual(claims._hidden_progress_rule("a")({"a": {"details": [details, flat]}})[0],
                         "partly reproduced")

    def test_the_norm_story(self):
        def run(val_step, norms):
            rows = [(s, 1.0 if s >= 100 else 0.5, 0.95 if val_step and s >= val_step else 0.3, n)
                    for s, n in zip(range(100, 100 * len(norms) + 1, 100), norms)]
            return claims._norm_story(self.run_dir(rows), 5000)[2]

        large = run(500, [90, 80, 70, 60, 50])  # fits at 100 with norm 90, 0.9 at 500 with norm 50
        self.assertEqual((large["fit"], large["val_90"], large["norm_at_fit"], large["norm_at_val_90"]),
                         (100, 500, 90, 50))
        still = run(None, [90, 91, 92, 93, 94])
        small = run(100, [10, 9, 9, 9, 9])
        rule = claims._norm_story_rule("large", "none", "small")
        results = {"large": {"details": [large]}, "none": {"details": [still]}, "small": {"details": [small]}}
        self.assertEqual(rule(results)[0], "reproduced")
        results["none"] = {"details": [large]}  # without weight decay it generalizes after all
        self.assertEqual(rule(results)[0], "partly reproduced")


if __name__ == "__main__":
    unittest.main()
