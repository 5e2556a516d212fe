"""Tasks: the data a run trains on, as one ``Table`` of rows, and its train/validation split.

A task family is one entry of ``FAMILIES`` (``task.family``): a builder of the table from the task
config, a check that says what is allowed, and what the rows are, operand tokens or input
vectors. Adding a family is one builder, one entry, and its test against direct arithmetic
(tests/test_tasks.py).

``table`` (the default): the complete table of a binary operation, from Power et al. (2021, App.
A.1.1), with one row per pair of operands (x, y). Rows are enumerated in row-major order over the
operand domains (x outer, y inner), so a row index names the same equation in every run; the
split saved with a run (split.json) refers to these indices. Two kinds of operation:

* modular arithmetic, operands in 0..p-1 and answers in 0..p-1;
* the symmetric group S_n, operands and answers are the n! permutations.

Permutation convention: a permutation is a tuple ``s`` with ``s[i]`` the image of ``i``, elements
are numbered in lexicographic order (``itertools.permutations``), and composition applies the right
operand first: ``(x.y)(i) = x[y[i]]``.

Families whose rows are input vectors (``Table.vectors``), read by ``model.type=dense``:

* ``sum``: x_1 + ... + x_k mod p over all p^k tuples (Doshi et al. 2024), each row the k operands'
  one-hot vectors side by side (k * p inputs), in row-major order over the tuple;
* ``parity``: sparse parity (Barak et al. 2022, Merrill et al. 2023): ``task.samples`` rows of
  ``task.bits`` random bits, written as +-1, labelled by the parity of the first ``task.k`` of them
  (which bits does not matter to a network that treats its inputs alike); drawn from
  ``task.data_seed``, so the rows are a function of the task config, as a table's are;
* ``digits``: scikit-learn's 8x8 handwritten digits (1,797 images shipped inside the package, no
  download; the ``digits`` extra), pixels scaled from 0..16 to 0..1, the Omnigrok setting (Liu et
  al. 2023) on data a laptop has.

For all, the split is drawn from the run's seed by ``split_indices``.
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
    """A task's rows: inputs, answers and sizes. For the binary operations, the complete table:
    ``x`` and ``y`` are the operand tokens. For the families of vectors, ``x`` holds each row's
    input vector, (rows, n_tokens) float32, and ``y`` zeros (no second operand), so that every
    consumer of a table (the split, batches, evaluation, measures) indexes rows the same way."""

    operation: str
    x: np.ndarray  # (rows,) operand token ids, int64; or (rows, n_tokens) input vectors
    y: np.ndarray
    labels: np.ndarray  # (rows,) answer ids in 0..n_classes-1
    n_tokens: int  # size of the operand vocabulary, or the width of the input vectors
    n_classes: int  # size of the answer vocabulary

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def vectors(self) -> bool:
        """Whether the rows are input vectors rather than operand tokens."""
        return self.x.ndim == 2


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


# -- the families of input vectors ---------------------------------------------------------------

# Largest input matrix we agree to build (rows x width, float32: 200 MB).
MAX_VECTOR_ENTRIES = 50_000_000


def _too_large(rows: int, width: int, what: str) -> None:
    if rows > MAX_TABLE_ROWS or rows * width > MAX_VECTOR_ENTRIES:
        raise ConfigError(f"{what} gives {rows:,} rows of {width:,} inputs; at most {MAX_TABLE_ROWS:,} rows and "
                          f"{MAX_VECTOR_ENTRIES:,} inputs in all")


def _check_sum(task) -> None:
    if not 2 <= task.k <= 8:
        raise ConfigError(f"task.k: the sum takes 2 to 8 operands, got {task.k}")
    if task.p < 2:
        raise ConfigError(f"task.p: the modulus must be >= 2, got {task.p}")
    _too_large(task.p ** task.k, task.k * task.p, f"task.family=sum with p={task.p}, k={task.k}")


def _sum_table(task) -> Table:
    p, k = task.p, task.k
    operands = np.indices((p,) * k).reshape(k, -1).T  # row-major over the tuple: the last operand inner
    x = np.zeros((len(operands), k * p), dtype=np.float32)
    for i in range(k):
        x[np.arange(len(operands)), i * p + operands[:, i]] = 1
    labels = operands.sum(axis=1) % p
    return Table(task_name(task), x, np.zeros(len(x), np.int64), labels.astype(np.int64), k * p, p)


def _check_parity(task) -> None:
    if task.bits < 1 or not 1 <= task.k <= task.bits:
        raise ConfigError(f"task.k and task.bits: sparse parity needs 1 <= k <= bits, got k={task.k}, bits={task.bits}")
    if task.samples < 2:
        raise ConfigError(f"task.samples must be >= 2 (a training and a validation row), got {task.samples}")
    if task.data_seed < 0:
        raise ConfigError(f"task.data_seed must be >= 0, got {task.data_seed}")
    _too_large(task.samples, task.bits, f"task.family=parity with samples={task.samples}, bits={task.bits}")


def _parity_table(task) -> Table:
    rng = np.random.default_rng(task.data_seed)
    bits = rng.integers(0, 2, size=(task.samples, task.bits))
    labels = bits[:, :task.k].sum(axis=1) % 2
    x = (1 - 2 * bits).astype(np.float32)  # bit b as (-1)^b: the parity is the product of the first k
    return Table(task_name(task), x, np.zeros(len(x), np.int64), labels.astype(np.int64),
                 task.bits, 2)


def _check_digits(task) -> None:
    """Only that scikit-learn imports: validation runs for every config, the images load in build."""
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        raise ConfigError("task.family=digits needs scikit-learn, which is not installed: "
                          "pip install -e '.[digits]'") from None


def _digits_table(task) -> Table:
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = (images / 16).astype(np.float32)  # pixels 0..16; k/16 is exact in float32
    return Table("digits", x, np.zeros(len(x), np.int64), labels.astype(np.int64), x.shape[1], 10)


@dataclass(frozen=True)
class Family:
    build: Callable[[object], Table]  # the table of a task config (config.TaskConfig)
    check: Callable[[object], None]  # raises ConfigError saying what is allowed
    vectors: bool  # rows are input vectors (model.type=dense) rather than operand tokens
    help: str
    name: Callable[[object], str]  # the task in a few words, for tables and figures


FAMILIES: dict[str, Family] = {
    "table": Family(lambda t: build_table(t.operation, t.p, t.n), lambda t: check_task(t.operation, t.p, t.n),
                    False, "the complete table of task.operation (mod task.p, or in S_task.n)", lambda t: t.operation),
    "sum": Family(_sum_table, _check_sum, True, "x_1 + ... + x_k mod p over all p^k tuples, one-hot inputs",
                  lambda t: f"sum of {t.k} mod {t.p}"),
    "parity": Family(_parity_table, _check_parity, True,
                     "sparse parity: task.samples rows of task.bits random bits, the label the parity of task.k",
                     lambda t: f"parity of {t.k} of {t.bits} bits"),
    "digits": Family(_digits_table, _check_digits, True, "scikit-learn's 8x8 digits (1,797 images, the digits extra)",
                     lambda t: "digits"),
}


def family_of(task) -> Family:
    if task.family not in FAMILIES:
        raise ConfigError(f"task.family: unknown family {task.family!r}; allowed: {', '.join(FAMILIES)}")
    return FAMILIES[task.family]


def task_name(task) -> str:
    """The task in a few words: the operation of a table, else the family's own name for it."""
    return family_of(task).name(task)


def check(task) -> None:
    """Raise ConfigError when the task config gives no table; the message says what is allowed."""
    family_of(task).check(task)


def build(task) -> Table:
    """The table of a task config (config.TaskConfig): what every run, reader and figure trains or reads."""
    family = family_of(task)
    family.check(task)
    return family.build(task)


def split_indices(n_rows: int, train_fraction: float, rng: np.random.Generator):
    """Shuffle the rows once and cut them: (train indices, validation indices), each sorted.

    Both sides get at least one row, so every run has something to fit and something to test.
    """
    order = rng.permutation(n_rows)
    n_train = min(max(int(round(train_fraction * n_rows)), 1), n_rows - 1)
    return np.sort(order[:n_train]), np.sort(order[n_train:])
