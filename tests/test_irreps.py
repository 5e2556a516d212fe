"""The irreducible representations of S_n (grokking.irreps) checked on the whole group, and the
measures built on them (Chughtai et al. 2023) against direct arithmetic on hand-made cases."""

import csv
import math
import unittest

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking import analysis, irreps, measures
from grokking.config import TaskConfig
from grokking.errors import ConfigError
from grokking.experiment import eval_schedule, run_experiment
from grokking.tasks import build_table, permutations

from helpers import quiet, temp_dir, tiny_config


def sign(perm) -> int:
    """The parity of a permutation, from its cycles: (-1)^(n - number of cycles)."""
    seen, cycles = set(), 0
    for start in range(len(perm)):
        if start not in seen:
            cycles += 1
            k = start
            while k not in seen:
                seen.add(k)
                k = perm[k]
    return (-1) ** (len(perm) - cycles)


def hook_dimension(shape) -> int:
    """The number of standard tableaux of ``shape`` by the hook length formula."""
    conjugate = [sum(1 for part in shape if part > c) for c in range(shape[0])]
    hooks = math.prod(shape[r] - c + conjugate[c] - r - 1 for r in range(len(shape)) for c in range(shape[r]))
    return math.factorial(sum(shape)) // hooks


def conjugate(shape) -> tuple:
    return tuple(sum(1 for part in shape if part > c) for c in range(shape[0]))


class Representations(unittest.TestCase):
    def test_homomorphism_on_the_whole_group(self):
        # rho(x.y) = rho(x) rho(y) for every pair, the composition the tasks tabulate; on S6 (518,400
        # pairs) a sample of 3,000.
        for n in (2, 3, 4, 5, 6):
            table = build_table("x.y", n=n)
            rows = np.arange(len(table)) if n < 6 else np.random.default_rng(0).choice(len(table), 3000, replace=False)
            for rep in irreps.irreps(n):
                m = rep.matrices
                np.testing.assert_allclose(m[table.labels[rows]], m[table.x[rows]] @ m[table.y[rows]], atol=1e-12,
                                           err_msg=f"S{n} {rep.name}")
                np.testing.assert_allclose(m[0], np.eye(rep.dim), atol=0, err_msg="the identity is element 0")

    def test_orthogonal_matrices_and_orthonormal_characters(self):
        for n in (2, 3, 4, 5, 6):
            reps = irreps.irreps(n)
            order = math.factorial(n)
            for rep in reps:
                m = rep.matrices
                np.testing.assert_allclose(m @ m.transpose(0, 2, 1), np.broadcast_to(np.eye(rep.dim), m.shape),
                                           atol=1e-12, err_msg=f"S{n} {rep.name}")
            # <chi_a, chi_b> = delta_ab: each irreducible (inner product 1), no two equivalent.
            chars = np.stack([rep.character for rep in reps])
            np.testing.assert_allclose(chars @ chars.T / order, np.eye(len(reps)), atol=1e-10, err_msg=f"S{n}")
            self.assertEqual(sum(rep.dim ** 2 for rep in reps), order)
            self.assertEqual(len(reps), {2: 2, 3: 3, 4: 5, 5: 7, 6: 11}[n])  # the partitions of n

    def test_the_partitions_name_the_right_irreps(self):
        # Independent of Young's construction: the dimension is the hook length formula's, the trivial
        # irrep is 1, the sign irrep the parity, (n-1, 1) has chi = fixed points - 1, and the
        # conjugate partition's character is the sign times this one's.
        for n in (3, 4, 5):
            perms = permutations(n)
            parity = np.array([sign(p) for p in perms])
            fixed = (perms == np.arange(n)).sum(axis=1)
            by_name = {rep.partition: rep for rep in irreps.irreps(n)}
            for shape, rep in by_name.items():
                self.assertEqual(rep.dim, hook_dimension(shape), shape)
                np.testing.assert_allclose(by_name[conjugate(shape)].character, parity * rep.character, atol=1e-10)
            np.testing.assert_allclose(by_name[(n,)].character, 1, atol=1e-12)
            np.testing.assert_allclose(by_name[(1,) * n].character, parity, atol=1e-12)
            np.testing.assert_allclose(by_name[(n - 1, 1)].character, fixed - 1, atol=1e-10)
        self.assertEqual([rep.name for rep in irreps.irreps(5)],
                         ["5", "4_1", "3_2", "3_1_1", "2_2_1", "2_1_1_1", "1_1_1_1_1"])

    def test_the_bases_together_are_orthonormal_and_complete(self):
        basis, slices = irreps.full_basis(5)
        np.testing.assert_allclose(basis.T @ basis, np.eye(120), atol=1e-12)
        self.assertEqual([s.stop - s.start for s in slices], [rep.dim ** 2 for rep in irreps.irreps(5)])
        # chi(g z^-1) as tr(rho(g) rho(z)^-1) written out, against the table
        rep = irreps.irreps(4)[2]
        inverse = np.linalg.inv(rep.matrices)
        direct = np.trace(rep.matrices[:, None] @ inverse[None], axis1=2, axis2=3)
        np.testing.assert_allclose(irreps.character_tables(4)[2], direct, atol=1e-12)

    def test_refuses_what_is_not_tabulated(self):
        with self.assertRaisesRegex(ConfigError, "n must be between 2 and 6"):
            irreps.irreps(7)


class FakeModel:
    def __init__(self, embedding=None, logits=None):
        self.embedding, self._logits = embedding, logits

    def operand_embedding(self, params):
        return self.embedding

    def logits(self, params, x, y):
        return self._logits


def context(n, model, train=None):
    table = build_table("x.y", n=n)
    train = np.arange(0, len(table), 3) if train is None else train
    return measures.Context(model, {}, table, train, TaskConfig(operation="x.y", n=n)), table, train


class Shares(unittest.TestCase):
    def test_an_embedding_from_one_irrep_lies_there_alone(self):
        rng = np.random.default_rng(0)
        for k, rep in enumerate(irreps.irreps(5)):
            flat = rep.matrices.reshape(120, -1)
            embedding = flat @ rng.standard_normal((flat.shape[1], 7))  # 7 columns, each a mix of rho's entries
            ctx, _, _ = context(5, FakeModel(embedding=embedding))
            row = measures.irrep_shares(ctx)
            expected = np.eye(7)[k]
            np.testing.assert_allclose([row[f"irrep_share_{r.name}"] for r in irreps.irreps(5)], expected, atol=1e-12)
            self.assertEqual(row["irrep_n90"], 1)

    def test_shares_match_least_squares_on_each_span(self):
        # A random embedding: each irrep's share is the squared norm of its least-squares fit on the
        # span of rho's matrix entries (no normalization assumed), over the total.
        embedding = np.random.default_rng(1).standard_normal((24, 5))
        ctx, _, _ = context(4, FakeModel(embedding=embedding))
        row = measures.irrep_shares(ctx)
        fits = []
        for rep in irreps.irreps(4):
            design = rep.matrices.reshape(24, -1)
            fitted = design @ np.linalg.lstsq(design, embedding, rcond=None)[0]
            fits.append(np.sum(fitted ** 2) / np.sum(embedding ** 2))
            self.assertAlmostEqual(row[f"irrep_share_{rep.name}"], fits[-1], places=12)
        self.assertAlmostEqual(sum(fits), 1.0, places=12)
        carried = np.cumsum(sorted(fits, reverse=True))
        self.assertEqual(row["irrep_n90"], int(np.argmax(carried >= 0.9)) + 1)

    def test_two_irreps_at_80_and_20_percent(self):
        reps = irreps.irreps(5)
        a, b = reps[1].basis()[:, 0], reps[3].basis()[:, 5]  # unit vectors in (4,1) and (3,1,1)
        ctx, _, _ = context(5, FakeModel(embedding=np.stack([np.sqrt(0.8) * a, np.sqrt(0.2) * b], axis=1)))
        row = measures.irrep_shares(ctx)
        self.assertAlmostEqual(row["irrep_share_4_1"], 0.8, places=12)
        self.assertAlmostEqual(row["irrep_share_3_1_1"], 0.2, places=12)
        self.assertEqual(row["irrep_n90"], 2)


    def test_the_unembedding_per_irrep(self):
        # W_out's columns (one per answer) built from the sign irrep alone: all its share lies there.
        reps = irreps.irreps(4)
        sign = reps[-1].matrices.reshape(24, -1)
        w_out = (sign @ np.random.default_rng(2).standard_normal((1, 6))).T  # (hidden 6, classes 24)
        ctx, _, _ = context(4, FakeModel(embedding=np.ones((24, 3))))
        ctx.params = {"W_out": w_out}
        row = measures.irrep_shares(ctx)
        np.testing.assert_allclose([row[f"irrep_unembed_share_{r.name}"] for r in reps], [0, 0, 0, 0, 1], atol=1e-12)
        self.assertAlmostEqual(row["irrep_share_4"], 1.0, places=12)  # a constant embedding: the trivial irrep


class Circuit(unittest.TestCase):
    def character_logits(self, rep, table, scale):
        """scale * tr(rho(x) rho(y) rho(z)^-1) for every row (x, y) and class z, written out."""
        m = rep.matrices
        xy = m[table.x] @ m[table.y]
        return scale * np.einsum("rij,zij->rz", xy, m)  # rho(z) orthogonal: rho(z)^-1 = rho(z)^T

    def test_logits_of_one_character(self):
        # Logits = 4 chi_rho(x y z^-1) plus an offset per row: the projection on rho's direction keeps
        # them whole (restricted loss = the loss); without it nothing is left (excluded = chance).
        n = 4
        table = build_table("x.y", n=n)
        for k in (1, 2, 4):  # (3,1), (2,2), the sign
            rep = irreps.irreps(n)[k]
            offsets = np.random.default_rng(k).standard_normal((len(table), 1))
            logits = self.character_logits(rep, table, 4.0) + offsets
            ctx, _, train = context(n, FakeModel(logits=logits))
            row = measures.irrep_circuit(ctx)
            loss = analysis.cross_entropy(logits[train], table.labels[train])
            self.assertAlmostEqual(row[f"irrep_sim_{rep.name}"], 1.0, places=12)
            self.assertAlmostEqual(row[f"irrep_restricted_{rep.name}"], loss, places=10)
            self.assertAlmostEqual(row[f"irrep_excluded_{rep.name}"], np.log(24), places=10)
            for other in irreps.irreps(n)[1:]:
                if other.name != rep.name:
                    self.assertAlmostEqual(row[f"irrep_sim_{other.name}"], 0.0, places=12)
                    self.assertAlmostEqual(row[f"irrep_restricted_{other.name}"], np.log(24), places=10)
                    self.assertAlmostEqual(row[f"irrep_excluded_{other.name}"], loss, places=10)
            self.assertEqual(row["irrep_n_key"], 1)
            self.assertAlmostEqual(row["irrep_key_restricted"], loss, places=10)
            self.assertAlmostEqual(row["irrep_key_excluded"], np.log(24), places=10)
            self.assertAlmostEqual(row["irrep_logit_explained"], 1.0, places=12)

    def test_random_logits_against_the_definitions_written_out(self):
        n = 4
        table = build_table("x.y", n=n)
        rng = np.random.default_rng(3)
        reps = irreps.irreps(n)
        # Mostly (3,1) and (2,1,1), some noise: two key irreps
        logits = (self.character_logits(reps[1], table, 2.0) + self.character_logits(reps[3], table, -1.0)
                  + 0.5 * rng.standard_normal((len(table), 24))).astype(np.float32)
        train = np.sort(rng.choice(len(table), 200, replace=False))
        ctx, _, _ = context(n, FakeModel(logits=logits), train)
        row = measures.irrep_circuit(ctx)
        z = logits.astype(np.float64)
        centered = (z - z.mean(axis=1, keepdims=True)).ravel()
        labels = table.labels[train]
        key, key_names = np.zeros_like(z), []
        for rep in reps[1:]:
            t = self.character_logits(rep, table, 1.0)
            sim = centered @ t.ravel() / np.linalg.norm(centered) / np.linalg.norm(t)
            kept = (z.ravel() @ t.ravel() / (t.ravel() @ t.ravel())) * t
            self.assertAlmostEqual(row[f"irrep_sim_{rep.name}"], sim, places=10)
            self.assertAlmostEqual(row[f"irrep_restricted_{rep.name}"],
                                   analysis.cross_entropy(kept[train], labels), places=9)
            self.assertAlmostEqual(row[f"irrep_excluded_{rep.name}"],
                                   analysis.cross_entropy(z[train] - kept[train], labels), places=9)
            if sim > measures.KEY_SIMILARITY:
                key += kept
                key_names.append(rep.name)
        self.assertEqual(row["irrep_n_key"], len(key_names))
        self.assertIn("3_1", key_names)
        self.assertNotIn("2_1_1", key_names)  # its scale -1 makes its cosine negative: not key (signed rule)
        self.assertAlmostEqual(row["irrep_key_restricted"], analysis.cross_entropy(key[train], labels), places=9)
        self.assertAlmostEqual(row["irrep_key_excluded"], analysis.cross_entropy(z[train] - key[train], labels),
                               places=9)


class Selection(unittest.TestCase):
    def test_permutation_tasks_only(self):
        for name in ("irreps", "irrep_circuit"):
            with self.assertRaisesRegex(ConfigError, f"'{name}' does not apply to 'x\\+y': it needs a permutation"):
                measures.parse_measures(name, TaskConfig(operation="x+y"))
            for op in ("x.y", "x.y.x^-1", "x.y.x"):
                self.assertEqual(measures.parse_measures(name, TaskConfig(operation=op)), [name])

    def test_a_run_on_s4_writes_the_columns(self):
        out = temp_dir(self) / "s4"
        config = tiny_config("task.n=4", "output.curves=false", "output.measures=irreps,irrep_circuit",
                             preset="perm_s5_grokking")
        run_experiment(config, out, log=quiet)
        with open(out / measures.MEASURES_CSV, newline="") as fh:
            rows = list(csv.DictReader(fh))
        self.assertEqual([int(r["step"]) for r in rows], eval_schedule(40, 10))
        names = [rep.name for rep in irreps.irreps(4)]
        for r in rows:
            self.assertAlmostEqual(sum(float(r[f"irrep_share_{name}"]) for name in names), 1.0, places=9)
            self.assertTrue(all(np.isfinite(float(v)) for v in r.values()))
        self.assertNotIn("irrep_sim_4", rows[0])  # the trivial irrep has no logit direction
        self.assertIn("irrep_excluded_2_2", rows[0])


if __name__ == "__main__":
    unittest.main()
