"""A NumPy MLP classifier for binary operations, with a hand-written backward pass.

    h_1 = act(E[x] @ W1_x + E[y] @ W1_y + b1)      E: learned operand embeddings, shared by x and y
    h_k = act(h_{k-1} @ W_k + b_k)                  k = 2..n_layers
    logits = h_L @ W_out + b_out                    one logit per answer in the vocabulary

Loss is the mean softmax cross-entropy of the answer.

Why the first layer looks unusual: the inputs are two tokens from a small vocabulary, so
``E[x] @ W1_x`` takes only n_tokens distinct values. We compute the per-token tables
``E @ W1_x`` and ``E @ W1_y`` once per step (n_tokens rows) and gather them, instead of multiplying
every example's embedding. The backward pass mirrors it: gradients are summed per token first
(one matmul with a one-hot matrix), then pushed through the tiny tables.

Why the rest looks unusual: NumPy runs elementwise work on one core. A batch is cut into chunks of
fixed size that a few threads process at once (NumPy and BLAS release the GIL), each with
single-threaded BLAS, and the chunks' gradients are added in a fixed order; so a run is as fast as
the cores allow and gives the same bytes on any number of threads (``engine_threads``). Work is
done in place where the backward pass allows. ``reference_loss_and_grads`` keeps the plain
formulation for the tests that check the two agree.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np

ACTIVATIONS = ("relu", "quadratic", "tanh")
LOGIT_FLOOR = -50.0
# Rows per chunk of work. Fixed, not derived from the core count, so that a run gives the same bytes
# on one thread or many: chunks are summed in the same order whichever thread computed them.
CHUNK_ROWS = 2048
# Rows per training chunk, roughly: small enough that a chunk spans few tokens (cheap per-token
# sums), large enough that its matmuls stay efficient and Python overhead small.
BLOCK_ROWS = 1800


def _scratch(work: dict | None, key: str, shape: tuple, dtype) -> np.ndarray:
    """An array to overwrite: kept in ``work`` between steps, or new when there is no ``work``.

    Reusing a chunk's arrays matters: a fresh array of more than 128 KB comes from mmap, and
    faulting its pages in cost a fifth of a mod_add step.
    """
    if work is None:
        return np.empty(shape, dtype)
    array = work.get(key)
    if array is None or array.shape != shape or array.dtype != dtype:
        array = work[key] = np.empty(shape, dtype)
    return array


def _act(name: str, z: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Activation, in place where the backward pass does not need z; returns (a, saved)."""
    if name == "relu":
        a = np.maximum(z, 0, out=z)
        return a, a  # relu'(z) = [a > 0]
    if name == "quadratic":  # Gromov (2023): phi(z) = z^2
        return np.multiply(z, z, out=out), z
    a = np.tanh(z, out=z)
    return a, a  # tanh'(z) = 1 - a^2


def _act_backward(name: str, saved: np.ndarray, da: np.ndarray, work: dict | None) -> np.ndarray:
    """d(loss)/dz from d(loss)/da, overwriting da."""
    if name == "relu":
        return np.multiply(da, np.greater(saved, 0, out=_scratch(work, "mask", da.shape, np.bool_)), out=da)
    if name == "quadratic":
        da *= saved
        da *= 2
        return da
    tmp = np.multiply(saved, saved, out=_scratch(work, "tmp", da.shape, da.dtype))
    np.subtract(1, tmp, out=tmp)
    return np.multiply(da, tmp, out=da)


class _Chunk:
    """The rows of a batch whose x lies in one block of tokens and y in another, with the one-hot
    matrix of those two blocks.

    Summing the rows of a gradient that share a token is ``onehot @ grad``: one BLAS call for x and
    y together, faster than ``np.add.at`` or ``np.add.reduceat`` here. Because a chunk only holds
    tokens of its two blocks, its one-hot matrix has (x block + y block) rows instead of
    2 * n_tokens: with 2 x 2 blocks the per-token sums cost half of a whole-vocabulary one-hot.
    """

    def __init__(self, x, y, labels, x_tokens: slice, y_tokens: slice, dtype):
        self.x, self.y, self.labels = x, y, labels
        self.x_tokens, self.y_tokens = x_tokens, y_tokens
        n_x = x_tokens.stop - x_tokens.start
        rows = np.arange(len(labels))
        self.onehot = np.zeros((n_x + y_tokens.stop - y_tokens.start, len(labels)), dtype=dtype)
        self.onehot[x - x_tokens.start, rows] = 1
        self.onehot[n_x + y - y_tokens.start, rows] = 1
        self.n_x = n_x
        self.work = {}  # arrays reused from step to step (see _scratch)


def _even_slices(n: int, k: int) -> list[slice]:
    """range(n) cut into k contiguous slices of nearly equal length."""
    bounds = np.linspace(0, n, k + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _split(n: int) -> list[slice]:
    """Contiguous slices of at most CHUNK_ROWS rows (for evaluation, which needs no one-hot)."""
    return _even_slices(n, max(1, -(-n // CHUNK_ROWS)))


def _block_index(blocks: list[slice]) -> np.ndarray:
    """For every token, the index of its block."""
    return np.repeat(np.arange(len(blocks)), [b.stop - b.start for b in blocks])


class Batch:
    """Operands and answers of some rows of a table, cut into chunks that threads work on.

    The chunks tile the (x, y) grid in kx x ky blocks of tokens, chosen from the batch size alone
    (about BLOCK_ROWS rows a chunk), so the chunking, and with it every sum, is the same on any
    machine.
    For full-batch training a Batch is built once per run, with its one-hot matrices.
    """

    def __init__(self, x, y, labels, n_tokens: int, dtype="float32"):
        self.x, self.y, self.labels, self.n_tokens = x, y, labels, n_tokens
        ratio = len(labels) / BLOCK_ROWS
        kx = int(min(n_tokens, max(1, round(np.sqrt(ratio)))))
        ky = int(min(n_tokens, max(1, round(ratio / kx))))
        x_blocks, y_blocks = _even_slices(n_tokens, kx), _even_slices(n_tokens, ky)
        chunk_of = _block_index(x_blocks)[x] * ky + _block_index(y_blocks)[y]
        order = np.argsort(chunk_of, kind="stable")
        bounds = np.searchsorted(chunk_of[order], np.arange(kx * ky + 1))
        self.chunks = []
        for c in range(kx * ky):
            rows = order[bounds[c]:bounds[c + 1]]
            if len(rows):
                self.chunks.append(_Chunk(x[rows], y[rows], labels[rows], x_blocks[c // ky],
                                          y_blocks[c % ky], dtype))

    def __len__(self) -> int:
        return len(self.labels)


class _Threads:
    """A small thread pool for per-chunk work; NumPy and BLAS release the GIL in the heavy calls."""

    def __init__(self):
        self.n = 1
        self.pool = None

    def set(self, n: int) -> None:
        if n != self.n and self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        self.n = max(1, int(n))

    def map(self, fn, items):
        if self.n == 1 or len(items) == 1:
            return [fn(item) for item in items]
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(self.n - 1, thread_name_prefix="grokking")
        # The calling thread works too; every thread takes the next item until none is left (next()
        # on a shared range iterator is atomic under the GIL), so uneven items balance out.
        results = [None] * len(items)
        todo = iter(range(len(items)))

        def work():
            for i in todo:
                results[i] = fn(items[i])

        helpers = [self.pool.submit(work) for _ in range(self.n - 1)]
        work()
        for h in helpers:
            h.result()
        return results


_THREADS = _Threads()


@contextmanager
def engine_threads(n: int | None = None):
    """Run the engine on ``n`` threads (default: every core) with single-threaded BLAS inside.

    BLAS itself is held to one thread because a multi-threaded matmul may split its inner sum
    and change the last bits; one-threaded BLAS on fixed chunks gives the same bytes for any n.
    """
    from threadpoolctl import threadpool_limits

    previous = _THREADS.n
    _THREADS.set(n or os.cpu_count() or 1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        _THREADS.set(previous)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray, scale: float | None = None):
    """Summed cross-entropy, number correct, and scale * d(summed loss)/d(logits), in place.

    ``logits`` is overwritten with the gradient (pass a copy to keep it). ``scale`` defaults to
    1/len(labels), the gradient of the mean loss. A row counts as correct when the answer's logit
    is the row's maximum.
    """
    n = len(labels)
    rows = np.arange(n)
    logits -= logits.max(axis=1, keepdims=True)
    # Floor the exponent at -50: once a run memorizes, exp() of the wrong classes falls into float32's
    # subnormal range, where x86 arithmetic is 10-100x slower (a wd=0 run slowed 14x here). The floor
    # keeps every probability and gradient normal; the loss moves by at most n_classes * e^-50.
    answer = logits[rows, labels]  # a copy, taken before the floor so the loss stays exact
    np.maximum(logits, LOGIT_FLOOR, out=logits)
    correct = int(np.count_nonzero(answer == 0))
    np.exp(logits, out=logits)
    sum_exp = logits.sum(axis=1)
    loss_sum = float(np.sum(np.log(sum_exp, dtype=np.float64) - answer))
    scale = 1.0 / n if scale is None else scale
    logits *= (scale / sum_exp)[:, None].astype(logits.dtype, copy=False)
    logits[rows, labels] -= scale
    return loss_sum, correct, logits


class MLP:
    def __init__(self, n_tokens: int, n_classes: int, d_embed: int = 128, d_hidden: int = 256,
                 n_layers: int = 1, activation: str = "relu", init_scale: float = 1.0,
                 dtype: str = "float32"):
        self.n_tokens, self.n_classes = n_tokens, n_classes
        self.d_embed, self.d_hidden, self.n_layers = d_embed, d_hidden, n_layers
        self.activation, self.init_scale = activation, init_scale
        self.dtype = np.dtype(dtype)

    # -- parameters ---------------------------------------------------------------------------
    def init_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Embeddings ~ N(0, init_scale^2); weights ~ N(0, init_scale^2 / fan_in); biases zero."""
        s, d, h = self.init_scale, self.d_embed, self.d_hidden
        shapes = {"embed": (self.n_tokens, d), "W1": (2 * d, h)}
        for k in range(2, self.n_layers + 1):
            shapes[f"W{k}"] = (h, h)
        shapes["W_out"] = (h, self.n_classes)
        params = {}
        for name, shape in shapes.items():
            std = s if name == "embed" else s / np.sqrt(shape[0])
            params[name] = (rng.standard_normal(shape) * std).astype(self.dtype)
            if name.startswith("W"):
                params["b" + name[1:]] = np.zeros(shape[1], dtype=self.dtype)
        return params

    # -- forward ------------------------------------------------------------------------------
    def _tables(self, params):
        """The first layer per token: E @ W1_x + b1 and E @ W1_y, each (n_tokens, d_hidden)."""
        d = self.d_embed
        table_x = params["embed"] @ params["W1"][:d]
        table_x += params["b1"]
        return table_x, params["embed"] @ params["W1"][d:]

    def _forward(self, params, tables, x, y, work=None):
        shape, dt = (len(x), self.d_hidden), self.dtype
        # mode="clip" keeps take unbuffered (the ids are valid); the default would copy via a buffer.
        z = np.take(tables[0], x, axis=0, out=_scratch(work, "z1", shape, dt), mode="clip")
        z += np.take(tables[1], y, axis=0, out=_scratch(work, "tmp", shape, dt), mode="clip")
        saved = []
        for k in range(1, self.n_layers + 1):
            if k > 1:
                z = np.matmul(a, params[f"W{k}"], out=_scratch(work, f"z{k}", shape, dt))
                z += params[f"b{k}"]
            a, keep = _act(self.activation, z, _scratch(work, f"a{k}", shape, dt))
            saved.append((a, keep))
        logits = np.matmul(a, params["W_out"], out=_scratch(work, "logits", (len(x), self.n_classes), dt))
        logits += params["b_out"]
        return logits, saved

    def logits(self, params, x, y) -> np.ndarray:
        return self._forward(params, self._tables(params), x, y)[0]

    def evaluate(self, params, x, y, labels):
        """Mean loss and accuracy over many rows, chunked over the engine's threads."""
        tables = self._tables(params)

        def chunk(s):
            logits, _ = self._forward(params, tables, x[s], y[s])
            loss_sum, correct, _ = softmax_cross_entropy(logits, labels[s])
            return loss_sum, correct

        parts = _THREADS.map(chunk, _split(len(labels)))
        return sum(p[0] for p in parts) / len(labels), sum(p[1] for p in parts) / len(labels)

    # -- backward -----------------------------------------------------------------------------
    def _chunk_grads(self, params, tables, chunk: _Chunk, scale: float):
        work, shape, dt = chunk.work, (len(chunk.x), self.d_hidden), self.dtype
        logits, saved = self._forward(params, tables, chunk.x, chunk.y, work)
        loss_sum, correct, dlogits = softmax_cross_entropy(logits, chunk.labels, scale)
        grads = {"W_out": saved[-1][0].T @ dlogits, "b_out": dlogits.sum(axis=0)}
        da = np.matmul(dlogits, params["W_out"].T, out=_scratch(work, f"da{self.n_layers}", shape, dt))
        for k in range(self.n_layers, 0, -1):
            dz = _act_backward(self.activation, saved[k - 1][1], da, work)
            if k > 1:
                grads[f"W{k}"] = saved[k - 2][0].T @ dz
                grads[f"b{k}"] = dz.sum(axis=0)
                da = np.matmul(dz, params[f"W{k}"].T, out=_scratch(work, f"da{k - 1}", shape, dt))
        grads["tables"] = chunk.onehot @ dz  # per-token sums of the chunk's x block, then y block
        return loss_sum, correct, grads

    def loss_and_grads(self, params, batch: Batch):
        """Mean loss, accuracy and gradients of every parameter on one batch."""
        tables = self._tables(params)
        scale = 1.0 / len(batch)
        chunks = batch.chunks
        parts = _THREADS.map(lambda c: self._chunk_grads(params, tables, c, scale), chunks)
        loss = sum(p[0] for p in parts) / len(batch)
        acc = sum(p[1] for p in parts) / len(batch)
        v = self.n_tokens
        dtable_x = np.zeros((v, self.d_hidden), dtype=self.dtype)
        dtable_y = np.zeros_like(dtable_x)
        grads = parts[0][2]
        for i, (chunk, part) in enumerate(zip(chunks, parts)):  # in chunk order, whichever thread ran it
            sums = part[2].pop("tables")
            dtable_x[chunk.x_tokens] += sums[:chunk.n_x]
            dtable_y[chunk.y_tokens] += sums[chunk.n_x:]
            if i:
                for name, g in part[2].items():
                    grads[name] += g
        # Through the per-token tables: two tiny matmuls per side instead of one per example.
        d = self.d_embed
        embed, w1 = params["embed"], params["W1"]
        grads["b1"] = dtable_x.sum(axis=0)  # b1 sits in the x table: every row adds it once
        grads["W1"] = np.concatenate([embed.T @ dtable_x, embed.T @ dtable_y])
        grads["embed"] = dtable_x @ w1[:d].T + dtable_y @ w1[d:].T
        return loss, acc, {name: grads[name] for name in params}


def reference_loss_and_grads(model: MLP, params, x, y, labels):
    """The textbook formulation, written independently of the fast path, for the tests only:
    concatenated embeddings, a dense first layer, out-of-place ops, np.add.at, argmax accuracy."""
    act = {"relu": lambda z: np.maximum(z, 0), "quadratic": lambda z: z * z, "tanh": np.tanh}
    dact = {"relu": lambda z: (z > 0).astype(z.dtype), "quadratic": lambda z: 2 * z,
            "tanh": lambda z: 1 - np.tanh(z) ** 2}
    embed, n = params["embed"], len(labels)
    acts, zs = [np.concatenate([embed[x], embed[y]], axis=1)], []
    for k in range(1, model.n_layers + 1):
        zs.append(acts[-1] @ params[f"W{k}"] + params[f"b{k}"])
        acts.append(act[model.activation](zs[-1]))
    logits = acts[-1] @ params["W_out"] + params["b_out"]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(n), labels].mean())
    acc = float(np.mean(logits.argmax(axis=1) == labels))
    dlogits = (np.exp(log_probs) - np.eye(model.n_classes, dtype=logits.dtype)[labels]) / n
    grads = {"W_out": acts[-1].T @ dlogits, "b_out": dlogits.sum(axis=0)}
    da = dlogits @ params["W_out"].T
    for k in range(model.n_layers, 0, -1):
        dz = da * dact[model.activation](zs[k - 1])
        grads[f"W{k}"] = acts[k - 1].T @ dz
        grads[f"b{k}"] = dz.sum(axis=0)
        da = dz @ params[f"W{k}"].T
    d = model.d_embed
    dembed = np.zeros_like(embed)
    np.add.at(dembed, x, da[:, :d])
    np.add.at(dembed, y, da[:, d:])
    grads["embed"] = dembed
    return loss, acc, {name: grads[name] for name in params}


def weight_norm(params) -> float:
    """L2 norm of all parameters together (the quantity Liu et al. relate to generalization)."""
    return float(np.sqrt(sum(float(np.vdot(p, p)) for p in params.values())))
