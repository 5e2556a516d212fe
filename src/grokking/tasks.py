"""Algorithmic datasets: the complete table of a binary operation, and its train/validation split.

Every task is a table with one row per pair of operands (x, y). Rows are enumerated in row-major
order over the operand domains (x outer, y inner), so a row index names the same equation in every
run; the split saved with a run (split.json) refers to these indices.

Two families, from Power et al. (2021, App. A.1.1):

* modular arithmetic, operands in 0..p-1 and answers in 0..p-1;
* the symmetric group S_n, operands and answers are the n! permutations.

Permutation convention: a permutation is a tuple ``s`` with ``s[i]`` the image of ``i``, elements
are numbered in lexicographic order (``itertools.permutations``), and composition applies the right
operand first: ``(x.y)(i) = x[y[i]]``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import ConfigError

# Largest table we agree to build. S_6 (518,400 rows) and p up to 1,447 fit; S_7 (25.4M rows) does not.
MAX_TABLE_ROWS = 2_000_000


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % k for k in range(2, math.isqrt(n) + 1))


def _inverse_mod(y: np.ndarray, p: int) -> np.ndarray:
    # Fermat: y^(p-2) is the inverse of y modulo a prime p (y != 0).
    return np.array([pow(int(v), p - 2, p) for v in y], dtype=np.int64)


def _div(x, y, p):
    return x * _inverse_mod(y, p) % p


def _div_if_odd_else_sub(x, y, p):
    odd = y % 2 == 1
    out = (x - y) % p
    out[odd] = _div(x[odd], y[odd], p)
    return out


@dataclass(frozen=True)
class ModularOp:
    name: str
    fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray]
    divides: bool = False  # needs a prime modulus and y != 0 where it divides
    nonzero_y: bool = False  # only y in 1..p-1 is part of the table


MODULAR_OPS: dict[str, ModularOp] = {
    op.name: op
    for op in [
        ModularOp("x+y", lambda x, y, p: (x + y) % p),
        ModularOp("x-y", lambda x, y, p: (x - y) % p),
        ModularOp("x*y", lambda x, y, p: (x * y) % p),
        ModularOp("x/y", _div, divides=True, nonzero_y=True),
        ModularOp("x/y if y odd else x-y", _div_if_odd_else_sub, divides=True),
        ModularOp("x^2+y^2", lambda x, y, p: (x * x + y * y) % p),
        ModularOp("x^2+xy+y^2", lambda x, y, p: (x * x + x * y + y * y) % p),
        ModularOp("x^2+xy+y^2+x", lambda x, y, p: (x * x + x * y + y * y + x) % p),
        ModularOp("x^3+xy", lambda x, y, p: (x * x * x + x * y) % p),
        ModularOp("x^3+xy^2+y", lambda x, y, p: (x * x * x + x * y * y + y) % p),
    ]
}

# Permutation operations, written with '.' for composition as in the paper.
PERMUTATION_OPS = ("x.y", "x.y.x^-1", "x.y.x")

OPERATIONS = tuple(MODULAR_OPS) + PERMUTATION_OPS


@dataclass(frozen=True)
class Table:
    """The complete table of one operation: operand tokens, answers and vocabulary sizes."""

    operation: str
    x: np.ndarray  # (rows,) operand token ids, int64
    y: np.ndarray
    labels: np.ndarray  # (rows,) answer ids in 0..n_classes-1
    n_tokens: int  # size of the operand vocabulary
    n_classes: int  # size of the answer vocabulary

    def __len__(self) -> int:
        return len(self.labels)


def is_permutation_op(operation: str) -> bool:
    return operation in PERMUTATION_OPS


def check_task(operation: str, p: int, n: int) -> None:
    """Raise ConfigError when the task cannot be tabulated; the message says what is allowed."""
    if operation not in OPERATIONS:
        allowed = ", ".join(repr(o) for o in OPERATIONS)
        raise ConfigError(f"task.operation: unknown operation {operation!r}; allowed: {allowed}")
    if is_permutation_op(operation):
        if n < 2 or math.factorial(n) ** 2 > MAX_TABLE_ROWS:
            raise ConfigError(
                f"task.n: S_{n} cannot be tabulated; n must be between 2 and 6 "
                f"(the table has (n!)^2 rows, at most {MAX_TABLE_ROWS:,})"
            )
        return
    op = MODULAR_OPS[operation]
    if p < 2 or p * p > MAX_TABLE_ROWS:
        raise ConfigError(
            f"task.p: modulus {p} is out of range; p must be between 2 and "
            f"{math.isqrt(MAX_TABLE_ROWS)} (the table has p^2 rows, at most {MAX_TABLE_ROWS:,})"
        )
    if op.divides and not _is_prime(p):
        raise ConfigError(
            f"task.p: operation {operation!r} divides, so p must be prime; {p} is not "
            "(every y != 0 needs an inverse modulo p)"
        )


def permutations(n: int) -> np.ndarray:
    """All n! permutations of range(n) in lexicographic order, shape (n!, n)."""
    return np.array(list(itertools.permutations(range(n))), dtype=np.int64)


def _permutation_table(operation: str, n: int) -> Table:
    perms = permutations(n)
    count = len(perms)
    # Horner-style rank of each permutation so that composed tuples can be looked up by index.
    weights = n ** np.arange(n - 1, -1, -1)
    index = {int(k): i for i, k in enumerate(perms @ weights)}
    inverse = np.argsort(perms, axis=1)  # inverse[i][s[i]] = i

    x, y = (a.ravel() for a in np.meshgrid(np.arange(count), np.arange(count), indexing="ij"))
    px, py = perms[x], perms[y]

    def compose(a, b):  # (a.b)(i) = a[b[i]]
        return np.take_along_axis(a, b, axis=1)

    if operation == "x.y":
        out = compose(px, py)
    elif operation == "x.y.x^-1":
        out = compose(compose(px, py), inverse[x])
    else:  # "x.y.x"
        out = compose(compose(px, py), px)
    keys = out @ weights
    labels = np.array([index[int(k)] for k in keys], dtype=np.int64)
    return Table(operation, x.astype(np.int64), y.astype(np.int64), labels, count, count)


def build_table(operation: str, p: int = 97, n: int = 5) -> Table:
    """Tabulate ``operation`` completely: modulo ``p`` for arithmetic, over S_n for permutations."""
    check_task(operation, p, n)
    if is_permutation_op(operation):
        return _permutation_table(operation, n)
    op = MODULAR_OPS[operation]
    ys = np.arange(1 if op.nonzero_y else 0, p, dtype=np.int64)
    x, y = (a.ravel() for a in np.meshgrid(np.arange(p, dtype=np.int64), ys, indexing="ij"))
    return Table(operation, x, y, op.fn(x, y, p).astype(np.int64), p, p)


def split_indices(n_rows: int, train_fraction: float, rng: np.random.Generator):
    """Shuffle the rows once and cut them: (train indices, validation indices), each sorted.

    Both sides get at least one row, so every run has something to fit and something to test.
    """
    order = rng.permutation(n_rows)
    n_train = min(max(int(round(train_fraction * n_rows)), 1), n_rows - 1)
    return np.sort(order[:n_train]), np.sort(order[n_train:])
