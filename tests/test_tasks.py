import itertools
import unittest

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking.errors import ConfigError
from grokking.tasks import (MODULAR_OPS, OPERATIONS, PERMUTATION_OPS, build_table, permutations,
                            split_indices)

# The operations written out independently, with Python integers (pow(y, -1, p) is the inverse).
DIRECT = {
    "x+y": lambda x, y, p: (x + y) % p,
    "x-y": lambda x, y, p: (x - y) % p,
    "x*y": lambda x, y, p: (x * y) % p,
    "x/y": lambda x, y, p: (x * pow(y, -1, p)) % p,
    "x/y if y odd else x-y": lambda x, y, p: (x * pow(y, -1, p)) % p if y % 2 else (x - y) % p,
    "x^2+y^2": lambda x, y, p: (x ** 2 + y ** 2) % p,
    "x^2+xy+y^2": lambda x, y, p: (x ** 2 + x * y + y ** 2) % p,
    "x^2+xy+y^2+x": lambda x, y, p: (x ** 2 + x * y + y ** 2 + x) % p,
    "x^3+xy": lambda x, y, p: (x ** 3 + x * y) % p,
    "x^3+xy^2+y": lambda x, y, p: (x ** 3 + x * y ** 2 + y) % p,
}


class ModularTables(unittest.TestCase):
    def test_every_operation_is_tested(self):
        self.assertEqual(set(DIRECT), set(MODULAR_OPS))

    def test_against_direct_arithmetic(self):
        for p in (97, 7):
            for name, direct in DIRECT.items():
                with self.subTest(op=name, p=p):
                    t = build_table(name, p)
                    ys = range(1, p) if name == "x/y" else range(p)
                    expected = [(x, y, direct(x, y, p)) for x in range(p) for y in ys]
                    got = list(zip(t.x.tolist(), t.y.tolist(), t.labels.tolist()))
                    self.assertEqual(got, expected)

    def test_table_sizes_and_vocabulary(self):
        self.assertEqual(len(build_table("x+y", 97)), 9409)
        self.assertEqual(len(build_table("x/y", 97)), 9312)
        t = build_table("x^3+xy^2+y", 97)
        self.assertEqual((t.n_tokens, t.n_classes), (97, 97))
        self.assertTrue(0 <= t.labels.min() and t.labels.max() < 97)

    def test_division_inverts_multiplication(self):
        t = build_table("x/y", 13)
        self.assertTrue(np.all(t.labels * t.y % 13 == t.x))

    def test_non_prime_modulus_refused_where_it_divides(self):
        for op in ("x/y", "x/y if y odd else x-y"):
            with self.assertRaisesRegex(ConfigError, "prime"):
                build_table(op, 96)
        self.assertEqual(len(build_table("x+y", 96)), 96 * 96)

    def test_modulus_range(self):
        for p in (1, 0, 5000):
            with self.assertRaisesRegex(ConfigError, "task.p"):
                build_table("x+y", p)

    def test_unknown_operation_lists_the_allowed(self):
        with self.assertRaisesRegex(ConfigError, r"allowed: .*'x\+y'"):
            build_table("x**y")


class PermutationTables(unittest.TestCase):
    def setUp(self):
        self.perms = [tuple(p) for p in permutations(5).tolist()]
        self.index = {p: i for i, p in enumerate(self.perms)}

    def compose(self, a, b):  # (a.b)(i) = a[b[i]]
        return tuple(a[b[i]] for i in range(len(a)))

    def inverse(self, a):
        inv = [0] * len(a)
        for i, v in enumerate(a):
            inv[v] = i
        return tuple(inv)

    def test_elements_are_s5_in_lexicographic_order(self):
        self.assertEqual(self.perms, list(itertools.permutations(range(5))))

    def test_size(self):
        t = build_table("x.y", n=5)
        self.assertEqual((len(t), t.n_tokens, t.n_classes), (14400, 120, 120))

    def test_against_direct_composition(self):
        for name in PERMUTATION_OPS:
            t = build_table(name, n=5)
            rng = np.random.default_rng(0)
            for row in rng.choice(len(t), 500, replace=False):
                a, b = self.perms[t.x[row]], self.perms[t.y[row]]
                if name == "x.y":
                    want = self.compose(a, b)
                elif name == "x.y.x^-1":
                    want = self.compose(self.compose(a, b), self.inverse(a))
                else:
                    want = self.compose(self.compose(a, b), a)
                with self.subTest(op=name, row=int(row)):
                    self.assertEqual(self.perms[t.labels[row]], want)

    def test_group_axioms(self):
        t = build_table("x.y", n=4)
        mul = np.zeros((24, 24), dtype=int)
        mul[t.x, t.y] = t.labels
        identity = 0  # (0, 1, 2, 3) comes first
        self.assertTrue(np.all(mul[identity] == np.arange(24)))
        self.assertTrue(np.all(mul[:, identity] == np.arange(24)))
        # Each row is a permutation of the group (closure + cancellation, i.e. inverses exist).
        for row in mul:
            self.assertEqual(sorted(row), list(range(24)))
        a, b, c = np.meshgrid(np.arange(24), np.arange(24), np.arange(24), indexing="ij")
        self.assertTrue(np.array_equal(mul[mul[a, b], c], mul[a, mul[b, c]]))  # associativity
        self.assertFalse(np.array_equal(mul, mul.T))  # S_4 is not abelian

    def test_conjugation_is_a_class_function(self):
        t = build_table("x.y.x^-1", n=4)
        # x y x^-1 has the same cycle type as y; check via fixed points of the permutation.
        perms = permutations(4)
        fixed = (perms == np.arange(4)).sum(axis=1)
        self.assertTrue(np.array_equal(fixed[t.labels], fixed[t.y]))

    def test_too_large_a_group_is_refused_with_the_limit(self):
        with self.assertRaisesRegex(ConfigError, "between 2 and 6"):
            build_table("x.y", n=7)
        with self.assertRaisesRegex(ConfigError, "between 2 and 6"):
            build_table("x.y", n=1)


class Splits(unittest.TestCase):
    def test_disjoint_covering_deterministic(self):
        for frac in (0.01, 0.3, 0.5, 0.99):
            tr, va = split_indices(9409, frac, np.random.default_rng(3))
            tr2, va2 = split_indices(9409, frac, np.random.default_rng(3))
            self.assertTrue(np.array_equal(tr, tr2) and np.array_equal(va, va2))
            self.assertEqual(len(np.intersect1d(tr, va)), 0)
            self.assertTrue(np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(9409)))
            self.assertEqual(len(tr), round(frac * 9409))

    def test_seed_changes_split(self):
        a, _ = split_indices(100, 0.5, np.random.default_rng(0))
        b, _ = split_indices(100, 0.5, np.random.default_rng(1))
        self.assertFalse(np.array_equal(a, b))

    def test_both_sides_nonempty(self):
        tr, va = split_indices(10, 0.001, np.random.default_rng(0))
        self.assertEqual((len(tr), len(va)), (1, 9))

    def test_operations_listed_once(self):
        self.assertEqual(len(OPERATIONS), len(set(OPERATIONS)))
        self.assertEqual(len(OPERATIONS), 13)


if __name__ == "__main__":
    unittest.main()
