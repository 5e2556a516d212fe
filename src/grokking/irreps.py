"""The irreducible representations of the symmetric group S_n, as real orthogonal matrices: the S_n
counterpart of the Fourier basis over Z_p (analysis.py), for Chughtai et al. 2023's measures.

Each irrep is named by its partition of n (``"4_1"`` for (4, 1), the standard representation of S5;
``"5"`` is the trivial one, ``"1_1_1_1_1"`` the sign). Its matrices are Young's orthogonal form on the
standard Young tableaux of that shape: an adjacent transposition s_i (swapping i and i + 1) acts on
tableau T by

    rho(s_i) e_T = (1 / r) e_T + sqrt(1 - 1 / r^2) e_{s_i T},    r = c_T(i + 1) - c_T(i),

where c_T(k) = column - row of the box holding k (the axial distance r is +1 when i and i + 1 share a
row, -1 when they share a column, and then s_i T is not standard and its term vanishes). Every
permutation is a product of adjacent transpositions, so rho(g) follows by multiplying along a
breadth-first walk from the identity. Nothing here is assumed correct: tests/test_irreps.py checks
on the whole group that rho(x.y) = rho(x) rho(y), that each rho(g) is orthogonal, that the
characters are orthonormal (so each irrep is irreducible and no two are equivalent), and that the
dimensions' squares add up to n!.

Elements are numbered as the tasks number them (tasks.permutations: lexicographic order), and
composition is the tasks' (x.y)(i) = x[y[i]], i.e. x after y; a homomorphism then satisfies
rho(x.y) = rho(x) @ rho(y).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import ConfigError
from .tasks import permutations

MAX_N = 6  # the largest S_n the tasks tabulate (tasks.MAX_TABLE_ROWS)


def partitions(n: int) -> list[tuple[int, ...]]:
    """Partitions of n, largest parts first, in decreasing lexicographic order: (n), (n-1, 1), ..."""
    def parts(rest, largest):
        if rest == 0:
            yield ()
            return
        for first in range(min(rest, largest), 0, -1):
            for tail in parts(rest - first, first):
                yield (first, *tail)
    return list(parts(n, n))


def partition_name(shape: tuple[int, ...]) -> str:
    """``(4, 1)`` -> ``"4_1"``: underscores, since a comma would need quoting in measures.csv's header."""
    return "_".join(map(str, shape))


def standard_tableaux(shape: tuple[int, ...]) -> list[tuple[tuple[int, int], ...]]:
    """The standard Young tableaux of ``shape``, each as the (row, column) of the box holding 0, 1, ...,
    n - 1 (numbers grow along rows and down columns)."""
    n = sum(shape)
    out = []

    def fill(k, lengths, boxes):
        if k == n:
            out.append(tuple(boxes))
            return
        for row, length in enumerate(lengths):
            # A box can go at the end of a row that is not full and is shorter than the row above.
            if length < shape[row] and (row == 0 or lengths[row - 1] > length):
                lengths[row] += 1
                fill(k + 1, lengths, boxes + [(row, length)])
                lengths[row] -= 1

    fill(0, [0] * len(shape), [])
    return out


def _adjacent_transposition(tableaux, index, i: int) -> np.ndarray:
    """Young's orthogonal form of s_i = (i, i + 1) on the tableaux."""
    d = len(tableaux)
    m = np.zeros((d, d))
    for t, boxes in enumerate(tableaux):
        (r0, c0), (r1, c1) = boxes[i], boxes[i + 1]
        r = (c1 - r1) - (c0 - r0)  # the axial distance from i to i + 1
        m[t, t] = 1.0 / r
        if abs(r) > 1:  # i and i + 1 in neither one row nor one column: s_i T is standard
            swapped = list(boxes)
            swapped[i], swapped[i + 1] = boxes[i + 1], boxes[i]
            m[index[tuple(swapped)], t] = math.sqrt(1.0 - 1.0 / r ** 2)
    return m


@dataclass(frozen=True)
class Irrep:
    """One irreducible representation of S_n: ``matrices[g]`` is rho(g), (n!, dim, dim), float64."""
    partition: tuple[int, ...]
    matrices: np.ndarray

    @property
    def name(self) -> str:
        return partition_name(self.partition)

    @property
    def dim(self) -> int:
        return self.matrices.shape[1]

    @property
    def character(self) -> np.ndarray:
        """chi(g) = tr rho(g), one value per element."""
        return np.trace(self.matrices, axis1=1, axis2=2)

    def basis(self) -> np.ndarray:
        """The orthonormal basis of the span of rho's matrix entries as functions on the group:
        sqrt(dim / n!) rho_ij(g), (n!, dim^2) (orthonormal by Schur's orthogonality relations)."""
        count = len(self.matrices)
        return self.matrices.reshape(count, -1) * math.sqrt(self.dim / count)


def _check_n(n: int) -> None:
    if not 2 <= n <= MAX_N:
        raise ConfigError(f"irreps: S_{n} is not tabulated; n must be between 2 and {MAX_N}")


@lru_cache(maxsize=None)
def irreps(n: int) -> tuple[Irrep, ...]:
    """Every irrep of S_n, in the order of ``partitions(n)`` (the trivial one first, the sign last)."""
    _check_n(n)
    perms = [tuple(p) for p in permutations(n)]
    position = {p: k for k, p in enumerate(perms)}
    # A breadth-first walk from the identity: h = s_i . g (the values i and i + 1 of g swapped), so
    # rho(h) = rho(s_i) rho(g). Each element is reached once, by its first path.
    steps = {}  # element -> (adjacent transposition i, the element it was reached from)
    queue = deque([perms[0]])
    seen = {perms[0]}
    while queue:
        g = queue.popleft()
        for i in range(n - 1):
            h = tuple(i + 1 if v == i else i if v == i + 1 else v for v in g)
            if h not in seen:
                seen.add(h)
                steps[h] = (i, g)
                queue.append(h)
    out = []
    for shape in partitions(n):
        tableaux = standard_tableaux(shape)
        index = {t: k for k, t in enumerate(tableaux)}
        gens = [_adjacent_transposition(tableaux, index, i) for i in range(n - 1)]
        mats = np.empty((len(perms), len(tableaux), len(tableaux)))
        mats[0] = np.eye(len(tableaux))
        done = {perms[0]}
        for g in _in_walk_order(perms[0], steps):
            if g in done:
                continue
            i, parent = steps[g]
            mats[position[g]] = gens[i] @ mats[position[parent]]
            done.add(g)
        mats.setflags(write=False)
        out.append(Irrep(shape, mats))
    return tuple(out)


def _in_walk_order(identity, steps):
    """The elements in an order where each comes after the one it was reached from."""
    children = {}
    for g, (_, parent) in steps.items():
        children.setdefault(parent, []).append(g)
    queue = deque([identity])
    while queue:
        g = queue.popleft()
        yield g
        queue.extend(children.get(g, ()))


@lru_cache(maxsize=None)
def full_basis(n: int) -> tuple[np.ndarray, tuple[slice, ...]]:
    """The orthonormal bases of all irreps side by side, (n!, n!) (square and orthogonal: the matrix
    entries of the irreps span every function on the group), and each irrep's columns in it."""
    blocks, slices, start = [], [], 0
    for rep in irreps(n):
        blocks.append(rep.basis())
        slices.append(slice(start, start + rep.dim ** 2))
        start += rep.dim ** 2
    basis = np.concatenate(blocks, axis=1)
    basis.setflags(write=False)
    return basis, tuple(slices)


@lru_cache(maxsize=None)
def character_tables(n: int) -> np.ndarray:
    """chi_rho(g z^-1) for every irrep rho and every pair (g, z): (irreps, n!, n!). For a real
    orthogonal rho, tr(rho(g) rho(z)^T) = sum_ij rho_ij(g) rho_ij(z)."""
    out = []
    for rep in irreps(n):
        flat = rep.matrices.reshape(len(rep.matrices), -1)
        out.append(flat @ flat.T)
    tables = np.stack(out)
    tables.setflags(write=False)
    return tables


def shares(rows: np.ndarray, n: int) -> np.ndarray:
    """The share of ``rows``' squared norm (n! rows indexed by the group's elements; any columns)
    lying in each irrep's span, in the order of ``irreps(n)``; they add up to 1 (0 for zero rows)."""
    basis, slices = full_basis(n)
    coefficients = basis.T @ np.asarray(rows, dtype=np.float64)
    energy = np.array([float(np.sum(coefficients[s] ** 2)) for s in slices])
    total = energy.sum()
    return energy / total if total > 0 else energy
