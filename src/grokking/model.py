"""A NumPy MLP classifier for binary operations, with a hand-written backward pass.

    h_1 = act(E[x] @ W1_x + E[y] @ W1_y + b1)      E: learned operand embeddings, shared by x and y
    h_k = act(h_{k-1} @ W_k + b_k)                  k = 2..n_layers
    logits = h_L @ W_out + b_out                    one logit per answer in the vocabulary

Loss is the mean softmax cross-entropy of the answer.

Why the first layer looks unusual: the inputs are two tokens from a small vocabulary, so
``E[x] @ W1_x`` takes only n_tokens distinct values. We compute the per-token tables
``E @ W1_x`` and ``E @ W1_y`` (n_tokens rows) and gather them, instead of multiplying every
example's embedding. The backward pass mirrors it: gradients are summed per token first (matmuls
with one-hot matrices), then pushed through the tiny tables.

Why the rest looks unusual: NumPy runs elementwise work on one core. A batch is cut into chunks,
fixed by the batch alone, that a few threads process at once (NumPy and BLAS release the GIL), each
with single-threaded BLAS (``grokking.parallel``); the chunks' gradients are added in chunk order,
so a run gives the same bytes on any number of threads. A chunk holds the rows whose y lies in one
block of tokens, so it also does that block's share of the first layer, leaving little for one
thread between steps. Work is done in place where the backward pass allows.
``reference_loss_and_grads`` keeps the plain formulation for the tests that check the two agree.
"""

from __future__ import annotations

import numpy as np

from .engine import Batch, add_in_order, eval_slices
from .layers import (HookPoints, Loss, activation, activation_backward, answer_shifted_cross_entropy, embedding, init_params,
                     linear, linear_backward, mean_over_chunks, new_grads, scratch)
from .layers import ACTIVATIONS  # noqa: F401 (the MLP's; config reads them here)
from .parallel import THREADS, engine_threads, even_slices  # noqa: F401 (engine_threads is public here)

INITS = ("normal", "uniform")
INPUTS = ("embedding", "onehot", "twohot")
DTYPES = ("float32", "float64")
# Rows per training chunk, roughly: small enough that a chunk spans few y tokens (cheap per-token
# sums), large enough that its matmuls stay efficient and Python overhead small.
BLOCK_ROWS = 1800
# Rows per diagonal block of a chunk's x one-hot matrix, at most (unless one token has more): small
# blocks skip more zeros, large ones make fewer BLAS calls.
GROUP_ROWS = 192


class _Chunk:
    """The rows of a batch whose y lies in one block of tokens, sorted by x, with what sums a
    gradient's rows per token.

    Per-token sums are one-hot matrices times the gradient (BLAS), faster than ``np.add.at`` or
    ``np.add.reduceat`` here. For y, the one-hot spans only the chunk's y block. For x, the rows are
    sorted, so a token's rows are consecutive, and the one-hot matrix is block diagonal: it is kept
    as small diagonal blocks ("groups": runs of tokens with about GROUP_ROWS rows), which skips the
    zeros a whole-vocabulary one-hot would multiply (a fifth of a mod_add step).
    """

    def __init__(self, x, y, labels, y_tokens: slice, n_tokens: int, dtype):
        self.x, self.y, self.labels, self.y_tokens = x, y, labels, y_tokens
        n = len(labels)
        self.y_local = y - y_tokens.start  # rows of the chunk's slice of the y table
        self.onehot_y = np.zeros((y_tokens.stop - y_tokens.start, n), dtype=dtype)
        self.onehot_y[self.y_local, np.arange(n)] = 1
        self.ones = np.ones(n, dtype=dtype)  # column sums as a matrix-vector product
        self._answer_index = {}  # by n_classes
        first = np.searchsorted(x, np.arange(n_tokens + 1))  # token t's rows: first[t]:first[t + 1]
        self.groups = []  # (tokens, rows, one-hot of the group or None when it has no rows)
        t = 0
        while t < n_tokens:
            u = t + 1
            while u < n_tokens and first[u + 1] - first[t] <= GROUP_ROWS:
                u += 1
            rows = slice(int(first[t]), int(first[u]))
            onehot = None
            if rows.stop > rows.start:
                onehot = np.zeros((u - t, rows.stop - rows.start), dtype=dtype)
                onehot[x[rows] - t, np.arange(rows.stop - rows.start)] = 1
            self.groups.append((slice(t, u), rows, onehot))
            t = u
        self.work = {}  # arrays reused from step to step (see layers.scratch)

    def answer_index(self, n_classes: int) -> np.ndarray:
        """Where each row's answer lies in the flat (rows, n_classes) logits."""
        if n_classes not in self._answer_index:
            self._answer_index[n_classes] = np.arange(len(self.labels)) * n_classes + self.labels
        return self._answer_index[n_classes]


def mlp_chunks(batch: Batch) -> list[_Chunk]:
    """The batch cut into chunks that threads work on, made once per batch (kept in batch.plans).

    Chunk c holds the rows whose y lies in the c-th of k blocks of tokens, k chosen from the batch
    size alone (about BLOCK_ROWS rows a chunk), so the chunking, and with it every sum, is the same
    on any machine.
    """
    if "mlp" in batch.plans:
        return batch.plans["mlp"]
    x, y, labels, n_tokens, dtype = batch.x, batch.y, batch.labels, batch.n_tokens, batch.dtype
    k = int(min(n_tokens, max(1, round(len(labels) / BLOCK_ROWS))))
    blocks = even_slices(n_tokens, k)
    block_of = np.repeat(np.arange(k), [b.stop - b.start for b in blocks])[y]
    order = np.lexsort((x, block_of))  # by block, then by x
    bounds = np.searchsorted(block_of[order], np.arange(k + 1))
    chunks = []
    for c in range(k):
        rows = order[bounds[c]:bounds[c + 1]]
        if len(rows):
            chunks.append(_Chunk(x[rows], y[rows], labels[rows], blocks[c], n_tokens, dtype))
    # Largest first: the calling thread takes the first chunk at once while a pool thread is still
    # waking up, and the last chunks, taken by whichever thread is free, are the small ones.
    batch.plans["mlp"] = sorted(chunks, key=lambda chunk: -len(chunk.labels))
    return batch.plans["mlp"]


class MLP:
    def __init__(self, n_tokens: int, n_classes: int, d_embed: int = 128, d_hidden: int = 256,
                 n_layers: int = 1, activation: str = "relu", init_scale: float = 1.0,
                 dtype: str = "float32", init: str = "normal", loss: str = "softmax", loss_dtype: str = "",
                 input: str = "embedding"):
        if input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, not {input!r}")
        self.n_tokens, self.n_classes = n_tokens, n_classes
        # One-hot input (Gromov 2023): the pair's one-hot vectors go straight to the first layer, as
        # if the embedding were the identity; W1 then has a row per token and side. Two-hot input
        # (Prieto et al. 2025's code): one vector, one-hot(x) + one-hot(y), so x and y share W1's
        # rows and the network cannot tell (x, y) from (y, x).
        self.onehot = input in ("onehot", "twohot")
        self.twohot = input == "twohot"
        self.d_in = n_tokens if self.onehot else d_embed
        self.d_embed, self.d_hidden, self.n_layers = d_embed, d_hidden, n_layers
        self.activation, self.init_scale, self.init = activation, init_scale, init
        self.dtype = np.dtype(dtype)
        self._work = {}  # evaluation arrays kept between evaluations, per chunk and size
        self.cross_entropy = Loss(loss, loss_dtype, dtype, n_classes)  # row sums by BLAS
        self.embeddings = ("W1",) if self.onehot else ("embed",)  # the first layer is the embedding

    # -- parameters ---------------------------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        d, h = self.d_in, self.d_hidden
        shapes = {} if self.onehot else {"embed": (self.n_tokens, d)}
        weights = [("1", (d if self.twohot else 2 * d, h))]
        weights += [(str(k), (h, h)) for k in range(2, self.n_layers + 1)] + [("_out", (h, self.n_classes))]
        for k, shape in weights:
            shapes["W" + k], shapes["b" + k] = shape, shape[1:]
        return shapes

    def init_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """By ``layers.init_params``: embeddings ~ N(0, init_scale^2), weights by ``draw_weight``, biases 0."""
        return init_params(self.param_shapes(), rng, self.init_scale, self.init, self.dtype)

    # -- forward ------------------------------------------------------------------------------
    def _w1(self, params):
        """W1's x and y halves (for two-hot input, W1 itself twice)."""
        w1 = params["W1"]
        return (w1, w1) if self.twohot else (w1[:self.d_in], w1[self.d_in:])

    def _table(self, params, side: int):
        """The first layer per token, without b1: E @ W1_x (side 0) or E @ W1_y (side 1), (n_tokens, d_hidden)."""
        w1 = self._w1(params)[side]
        return w1.copy() if self.onehot else params["embed"] @ w1

    def _table_x(self, params):
        table_x = self._table(params, 0)
        table_x += params["b1"]
        return table_x

    def _tables(self, params):
        return self._table_x(params), self._table(params, 1)

    def _forward(self, params, tables, x, y, work=None):
        shape, dt = (len(x), self.d_hidden), self.dtype
        z = embedding(tables[0], x, out=scratch(work, "z1", shape, dt))
        z += embedding(tables[1], y, out=scratch(work, "tmp", shape, dt))
        saved = []
        a = None  # the previous layer's activations
        for k in range(1, self.n_layers + 1):
            if k > 1:
                z = linear(a, params[f"W{k}"], params[f"b{k}"], out=scratch(work, f"z{k}", shape, dt))
            a, keep = activation(self.activation, z, scratch(work, f"a{k}", shape, dt))
            saved.append((a, keep))
        logits = linear(a, params["W_out"], params["b_out"], out=scratch(work, "logits", (len(x), self.n_classes), dt))
        return logits, saved

    def _eval_work(self, i: int, s: slice) -> dict:
        """Arrays kept for chunk i of an evaluation of this many rows (see layers.scratch)."""
        return self._work.setdefault((i, s.stop - s.start), {})

    def logits(self, params, x, y) -> np.ndarray:
        """(rows, classes) logits, in fixed chunks on the engine's threads."""
        tables = self._tables(params)
        return np.concatenate(THREADS.map(
            lambda c: self._forward(params, tables, x[c[1]], y[c[1]], self._eval_work(*c))[0],
            list(enumerate(eval_slices(len(x))))))

    # -- named activations: a plain forward pass ------------------------------------------------
    @property
    def activation_names(self) -> tuple[str, ...]:
        """The names of ``run_with_cache``, in forward order: the embedding (a learned one only; the
        one-hot inputs have none), then each hidden layer's pre- and post-activation."""
        hidden = [f"blocks.{k}.mlp.hook_{w}" for k in range(self.n_layers) for w in ("pre", "post")]
        return tuple(([] if self.onehot else ["hook_embed"]) + hidden)

    def run_with_cache(self, params, x, y, hooks=None, names=None):
        """(logits, {name: activation}) over the rows (x, y): hook_embed (rows, 2, d_embed), the
        hidden layers' (rows, d_hidden). ``hooks`` may replace any of them (``layers.HookPoints``).
        Apart from the training engine, which it agrees with to rounding."""
        run = HookPoints(self.activation_names, hooks, names)
        x, y = np.asarray(x), np.asarray(y)
        wx, wy = self._w1(params)
        if self.onehot:
            z = wx[x] + wy[y]
        else:
            e = run("hook_embed", params["embed"][np.stack([x, y], axis=1)])
            z = e[:, 0] @ wx + e[:, 1] @ wy
        z = z + params["b1"]
        for k in range(1, self.n_layers + 1):
            if k > 1:
                z = a @ params[f"W{k}"] + params[f"b{k}"]
            z = run(f"blocks.{k - 1}.mlp.hook_pre", z)
            a = run(f"blocks.{k - 1}.mlp.hook_post", activation(self.activation, z.copy(), np.empty_like(z))[0])
        return a @ params["W_out"] + params["b_out"], run.cache

    def operand_embedding(self, params) -> np.ndarray:
        """One row per operand token, as the first layer sees it: E @ W1_x and E @ W1_y side by side,
        what the Fourier measures read. Not E alone: E A and A^-1 W1 compute the same network for any
        invertible A but change E's Fourier norms, whereas E @ W1 stays the same."""
        return np.concatenate([self._table(params, 0), self._table(params, 1)], axis=1)

    def evaluate(self, params, x, y, labels):
        """Mean loss and accuracy over many rows, chunked over the engine's threads."""
        tables = self._tables(params)

        def chunk(c):
            i, s = c
            logits, _ = self._forward(params, tables, x[s], y[s], self._eval_work(i, s))
            return self.cross_entropy(logits, labels[s])[:2]

        return mean_over_chunks(THREADS.map(chunk, list(enumerate(eval_slices(len(labels))))), len(labels))

    # -- backward -----------------------------------------------------------------------------
    def _chunk_grads(self, params, table_x, chunk: _Chunk, scale: float):
        """The chunk's loss sum and shares of the gradients: of the layers above the first (keyed like
        ``params``), of the x table (per-token sums), and of W1_y and the y block's embeddings.

        The chunk's y tokens are its own, so it also takes their part of the first layer: the rows
        of the y table, and of W1_y's and the embeddings' gradients. What every chunk shares, the
        x table and its gradients, is left to loss_and_grads.
        """
        work, shape, dt = chunk.work, (len(chunk.x), self.d_hidden), self.dtype

        def out(key, shape):
            return scratch(work, key, shape, dt)

        w1_y = self._w1(params)[1]
        if self.onehot:  # the y table is W1_y itself
            embed_y, table_y = None, w1_y[chunk.y_tokens]
        else:
            embed_y = params["embed"][chunk.y_tokens]
            table_y = np.matmul(embed_y, w1_y, out=out("table_y", (len(embed_y), shape[1])))
        logits, saved = self._forward(params, (table_x, table_y), chunk.x, chunk.y_local, work)
        loss = self.cross_entropy
        shifted = answer_shifted_cross_entropy(logits, chunk.answer_index(self.n_classes), scale,
                                               loss.ones) if loss.plain else None
        if shifted is None:
            if loss.plain:  # rare: a logit exceeds the answer's by LOGIT_CEILING; the row-max form
                linear(saved[-1][0], params["W_out"], params["b_out"], out=logits)
            loss_sum, _, dlogits = loss(logits, chunk.labels, scale)
        else:
            loss_sum, dlogits = shifted
        grads = {}
        da, grads["W_out"], grads["b_out"] = linear_backward(saved[-1][0], params["W_out"], dlogits,
                                                             ones=chunk.ones, work=work, key="out")
        for k in range(self.n_layers, 0, -1):
            dz = activation_backward(self.activation, saved[k - 1][1], da, work)
            if k > 1:
                da, grads[f"W{k}"], grads[f"b{k}"] = linear_backward(saved[k - 2][0], params[f"W{k}"], dz,
                                                                     ones=chunk.ones, work=work, key=str(k))
        # Per-token sums of dz, pushed through the tiny tables: small matmuls instead of one per row.
        sum_x = out("sum_x", (self.n_tokens, shape[1]))
        for tokens, rows, onehot in chunk.groups:
            if onehot is None:
                sum_x[tokens] = 0
            else:
                np.matmul(onehot, dz[rows], out=sum_x[tokens])
        sum_y = np.matmul(chunk.onehot_y, dz, out=out("sum_y", table_y.shape))
        if self.onehot:  # the gradient of W1_y's rows of the chunk's y block
            return loss_sum, grads, sum_x, (sum_y, None)
        dembed_y, dw1_y, _ = linear_backward(embed_y, w1_y, sum_y, bias=False, work=work, key="y")
        return loss_sum, grads, sum_x, (dw1_y, dembed_y)

    uses_rng = False  # nothing random in a step: loss_and_grads ignores its rng

    def loss_and_grads(self, params, batch: Batch, rng: np.random.Generator | None = None):
        """Mean loss, None and gradients of every parameter on one batch (``models.Model``).

        The None stands where the Transformer returns the batch's accuracy: the MLP's training step
        skips the row maxima that accuracy needs (layers.answer_shifted_cross_entropy); ``evaluate``
        measures it.
        """
        table_x, d = self._table_x(params), self.d_in
        scale, chunks = 1.0 / len(batch), mlp_chunks(batch)
        results = THREADS.map(lambda c: self._chunk_grads(params, table_x, c, scale), chunks)
        losses, above, sums_x, firsts_y = zip(*results)
        grads = new_grads(params, self.dtype)
        for name in above[0]:
            add_in_order(grads[name], [g[name] for g in above])
        dtable_x = add_in_order(np.empty_like(sums_x[0]), sums_x)
        np.sum(dtable_x, axis=0, out=grads["b1"])  # b1 sits in the x table: every row adds it once
        if self.twohot:  # both tables are W1: its gradient is the x table's plus the y blocks'
            grads["W1"][...] = dtable_x
            for chunk, (sum_y, _) in zip(chunks, firsts_y):
                grads["W1"][chunk.y_tokens] += sum_y
            return sum(losses) / len(batch), None, grads
        if self.onehot:  # the tables are W1's halves: their gradients are W1's
            grads["W1"][:d] = dtable_x
            grads["W1"][d:] = 0
            for chunk, (sum_y, _) in zip(chunks, firsts_y):
                grads["W1"][d:][chunk.y_tokens] = sum_y  # the chunks' y blocks do not overlap
            return sum(losses) / len(batch), None, grads
        add_in_order(grads["W1"][d:], [w1_y for w1_y, _ in firsts_y])
        embed, w1 = params["embed"], params["W1"]
        np.matmul(embed.T, dtable_x, out=grads["W1"][:d])
        np.matmul(dtable_x, w1[:d].T, out=grads["embed"])
        for chunk, (_, embed_y) in zip(chunks, firsts_y):
            grads["embed"][chunk.y_tokens] += embed_y
        return sum(losses) / len(batch), None, grads


def reference_loss_and_grads(model: MLP, params, x, y, labels):
    """The textbook formulation, written independently of the fast path, for the tests only:
    concatenated embeddings, a dense first layer, out-of-place ops, np.add.at, argmax accuracy."""
    act = {"relu": lambda z: np.maximum(z, 0), "quadratic": lambda z: z * z, "tanh": np.tanh}
    dact = {"relu": lambda z: (z > 0).astype(z.dtype), "quadratic": lambda z: 2 * z,
            "tanh": lambda z: 1 - np.tanh(z) ** 2}
    n = len(labels)
    embed = np.eye(model.n_tokens, dtype=model.dtype) if model.onehot else params["embed"]
    acts, zs = [embed[x] + embed[y] if model.twohot else np.concatenate([embed[x], embed[y]], axis=1)], []
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
    d = model.d_in
    dembed = np.zeros_like(embed)
    np.add.at(dembed, x, da[:, :d])
    np.add.at(dembed, y, da[:, -d:])
    grads["embed"] = dembed
    return loss, acc, {name: grads[name] for name in params}


def weight_norm(params) -> float:
    """L2 norm of all parameters together (the quantity Liu et al. relate to generalization)."""
    return float(np.sqrt(sum(float(np.vdot(p, p)) for p in params.values())))
