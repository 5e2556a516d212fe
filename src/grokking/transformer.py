"""A NumPy decoder-only transformer classifier for binary operations, with a hand-written backward pass.

The model of Power et al. (2021, App. A.1.2), following their official code where the paper is silent.

Encoding. Each equation "x op y =" is a sequence of 4 tokens over a vocabulary of n_tokens + 2 ids:

    position   0    1            2    3
    token      x    op           y    =
    id         x    n_tokens     y    n_tokens + 1

Operands keep their ids 0..n_tokens-1; the operator and "=" get the two ids after them (one operator
token, since a run trains on one operation). The answer is read at the last position ("="), through an
untied output layer d_model -> n_classes; loss and accuracy are on the answer only, as in the paper.

Architecture (``Transformer``):

    h = E[token] + pos                                    E learned; pos sinusoidal (default) or learned
    n_layers post-LN blocks:
        h = LN(h + drop(Attn(h)))                         causal, n_heads heads, Q/K/V/O without bias
        h = LN(h + drop(W2 relu(W1 h + b1) + b2))         d_ff = 4 d_model by default
    logits = h[position 3] @ W_out                        no bias, as the official code

* LayerNorm after the residual add (post-LN), as the official code; learned gain and bias, eps 1e-5.
* Biases: only in the feed-forward layers and the LayerNorms. The attention projections and the output
  layer have none (the official code's choice).
* Positions: sinusoidal by default (the official code's; no parameters; ``position_scale`` scales the
  table, whose rows have norm sqrt(d_model / 2)), ``positional="learned"`` adds a (4, d_model)
  parameter "pos".
* Dropout (``dropout`` > 0, training only) is the official residual dropout: on the attention output
  and on the feed-forward output before each residual add, inverted (kept units scaled by 1/(1-p)).
  Masks are drawn from the Generator passed to ``loss_and_grads``; with dropout 0 nothing is drawn.
* Init: embeddings (and learned positions) ~ N(0, init_scale^2), weights ~ N(0, init_scale^2 / fan_in)
  or, with ``init="uniform"``, U(+-init_scale / sqrt(fan_in)) as PyTorch's nn.Linear (the official
  code's); biases 0, LayerNorm gains 1 - the rules of ``layers.init_params``, the MLP's too.

Why the forward pass is split in stages. With a causal mask, positions 0 and 1 ("x op") see only x,
in every layer; so their hidden states take at most n_tokens distinct values. The prefix stage
computes them once per distinct x in the batch (the "prefix" rows), and the examples (the "suffix"
rows, positions 2 and 3) gather their keys and values; the backward pass sums the gradients of those
keys and values per distinct x. The first layer's inputs at positions 2 and 3 depend on y alone and
on nothing, so their queries, keys and values are computed once per distinct y and once for "=".
In the last layer only position 3 matters, so its queries, attention output and feed-forward are
computed for that position only. All of this is exact (tests compare with finite differences, with
a plain per-position forward pass and with PyTorch autograd); at the paper's configuration and
batch 512 the engine computes 2.2 GFLOP per step where a dense implementation computes 4.9
(``benchmarks/bench_engine.py`` counts both). With dropout the prefix rows get their own masks per
example, so they are not shared (one prefix per example).

Threads: a batch is cut into an even number of fixed chunks of examples (``_chunks``: two for a
minibatch of 512), and its distinct x into fixed pieces, that run on the engine's threads
(``grokking.parallel.engine_threads``) with single-threaded BLAS; their gradients are added in a
fixed order, so a result does not depend on the number of threads. Dense work is in float32 by
default.
"""

from __future__ import annotations

import math

import numpy as np

from .engine import Batch, add_in_order
from .layers import (Loss, activation, activation_backward, attention, attention_backward, dropout, dropout_backward,
                     HookPoints, embedding, embedding_backward, init_params, layer_norm, layer_norm_backward, linear,
                     linear_backward, mean_over_chunks, new_grads, sinusoidal_positions)
from .layers import LN_EPS  # noqa: F401 (benchmarks/torch_reference.py reads it here)
from .parallel import THREADS, even_slices

SEQ_LEN = 4  # of "x op y =", the default sequence
POSITIONAL = ("sinusoidal", "learned")
# The input sequences: Power et al.'s, and Nanda et al.'s without the operation token.
SEQUENCES = ("x op y =", "x y =")
NORMALIZATIONS = ("post", "none")  # post-LN blocks (Power et al.), or no LayerNorm (Nanda et al.)


# Examples per chunk of the suffix stage, about: a batch is cut into an even number of chunks of at
# most this many rows, fixed by its size alone (minibatch 512: two chunks of 256, one per core).
SUFFIX_ROWS = 1024


def _chunks(n: int) -> list[slice]:
    """Fixed pieces of ``n`` rows, an even number of them where n allows, so that two threads share
    the work evenly; the same pieces on any number of threads, so the same sums."""
    k = 2 * -(-n // (2 * SUFFIX_ROWS))
    return even_slices(n, max(1, min(k, n)))


class _Plan:
    """How the engine cuts one batch: the distinct x (the prefix rows, or one per example when
    dropout gives every example its own masks), the distinct y, and the chunks of examples."""

    def __init__(self, x, y, *, per_example_prefix: bool = False):
        x, y = np.asarray(x), np.asarray(y)
        self.per_example = per_example_prefix
        if per_example_prefix:
            self.xs, self.src = x, np.arange(len(x))
        else:
            self.xs, self.src = _distinct(x)
        self.ys, self.ysrc = _distinct(y)
        self.chunks = _chunks(len(x))
        self.sizes = [c.stop - c.start for c in self.chunks]
        self.pieces = _chunks(len(self.xs))


def _distinct(tokens):
    """np.unique(tokens, return_inverse=True) for small non-negative ids, several times faster."""
    present = np.bincount(tokens) > 0
    values = np.flatnonzero(present)
    rank = np.cumsum(present) - 1
    return values, rank[tokens]


class Transformer:
    """Decoder-only transformer over "x op y =", a ``models.Model`` built from ``grokking.layers``."""

    def __init__(self, n_tokens: int, n_classes: int, d_model: int = 128, n_layers: int = 2,
                 n_heads: int = 4, d_ff: int | None = None, dropout: float = 0.0,
                 init_scale: float = 1.0, dtype: str = "float32", positional: str = "sinusoidal",
                 init: str = "normal", position_scale: float = 1.0, loss: str = "softmax",
                 loss_dtype: str = "", normalization: str = "post", sequence: str = "x op y ="):
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        if positional not in POSITIONAL:
            raise ValueError(f"positional must be one of {POSITIONAL}, not {positional!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout}")
        if normalization not in NORMALIZATIONS or sequence not in SEQUENCES:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS} and sequence one of {SEQUENCES}, "
                             f"not {normalization!r} and {sequence!r}")
        self.n_tokens, self.n_classes = n_tokens, n_classes
        self.d_model, self.n_layers, self.n_heads = d_model, n_layers, n_heads
        self.d_head = d_model // n_heads
        self.d_ff = d_ff or 4 * d_model
        self.normalization, self.sequence = normalization, sequence
        # The positions before "y" see only x (causal mask): "x op" or "x". The suffix is "y =".
        self.n_prefix = 2 if sequence == "x op y =" else 1
        self.seq_len = self.n_prefix + 2
        causal = np.tril(np.ones((self.seq_len, self.seq_len), dtype=bool))  # True = may attend
        # Prefix queries over prefix keys; suffix queries over every key; in the last layer only
        # the answer position ("=") queries.
        self._mask_prefix, self._mask_suffix = causal[:self.n_prefix, :self.n_prefix], causal[self.n_prefix:]
        self._mask_answer, self._mask_full = causal[-1:], causal
        self.dropout, self.init_scale, self.positional, self.init = dropout, init_scale, positional, init
        self.dtype = np.dtype(dtype)
        self.cross_entropy = Loss(loss, loss_dtype, dtype)
        self.embeddings = ("embed", "pos") if positional == "learned" else ("embed",)
        if self.n_prefix == 2:
            self.vocab_size, self.op_token, self.eq_token = n_tokens + 2, n_tokens, n_tokens + 1
        else:
            self.vocab_size, self.op_token, self.eq_token = n_tokens + 1, None, n_tokens
        self._scale = 1.0 / math.sqrt(self.d_head)  # a Python float, so float32 stays float32
        self._sinusoid = (sinusoidal_positions(self.seq_len, d_model) * position_scale).astype(self.dtype)

    # -- parameters ---------------------------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        d, f = self.d_model, self.d_ff
        shapes = {"embed": (self.vocab_size, d)}
        if self.positional == "learned":
            shapes["pos"] = (self.seq_len, d)
        norm = self.normalization != "none"
        for i in range(self.n_layers):
            shapes.update({f"l{i}.W_qkv": (d, 3 * d), f"l{i}.W_o": (d, d)})
            if norm:
                shapes.update({f"l{i}.ln1_g": (d,), f"l{i}.ln1_b": (d,)})
            shapes.update({f"l{i}.W_ff1": (d, f), f"l{i}.b_ff1": (f,), f"l{i}.W_ff2": (f, d), f"l{i}.b_ff2": (d,)})
            if norm:
                shapes.update({f"l{i}.ln2_g": (d,), f"l{i}.ln2_b": (d,)})
        shapes["W_out"] = (d, self.n_classes)
        return shapes

    def init_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """By ``layers.init_params``: embeddings ~ N(0, s^2), weights by ``draw_weight``, biases 0,
        LayerNorm gains 1. ``init="nanda"`` is the rule of Nanda et al.'s code instead: the
        embeddings, the positions and every matrix ~ N(0, s^2 / d_model) (their MLP's output matrix
        too, whose fan-in is d_ff), the unembedding ~ N(0, s^2 / vocabulary) (their W_U, whose
        vocabulary is the p operands and "="), biases 0."""
        shapes = self.param_shapes()
        if self.init != "nanda":
            return init_params(shapes, rng, self.init_scale, self.init, self.dtype)
        params = {}
        for name, shape in shapes.items():
            if name.split(".")[-1].startswith(("W", "embed", "pos")):
                fan = self.vocab_size if name == "W_out" else self.d_model
                value = rng.standard_normal(shape) * (self.init_scale / math.sqrt(fan))
            else:
                value = np.ones(shape) if name.endswith("_g") else np.zeros(shape)
            params[name] = value.astype(self.dtype)
        return params

    def _positions(self, params):
        return params["pos"] if self.positional == "learned" else self._sinusoid

    # -- the engine: three stages ---------------------------------------------------------------
    # A batch is planned once (_Plan): the distinct x (prefix rows), the distinct y, and fixed chunks
    # of examples. The prefix stage runs positions 0-1 through every layer once per distinct x, in
    # fixed pieces; the suffix stage runs positions 2-3 of each chunk of examples; the backward pass
    # runs the suffix chunks, then the prefix pieces with the key and value gradients the chunks
    # summed for them. Pieces and chunks are fixed by the batch alone and run on the engine's threads.
    def _split_heads(self, qkv, n, t=2):
        """(n * t rows, 3d) -> q, k, v each (n, heads, t, d_head) (views)."""
        return qkv.reshape(n, t, 3, self.n_heads, self.d_head).transpose(2, 0, 3, 1, 4)

    def _merge_heads(self, o):
        n, _, t, _ = o.shape
        return o.transpose(0, 2, 1, 3).reshape(n * t, self.d_model)

    def _prefix_forward(self, params, xs, rng):
        """The prefix positions ("x op", or "x") of the distinct x in ``xs`` through every layer:
        their keys and values per layer (each (m, heads, n_prefix, d_head)) and what the backward
        pass needs."""
        m, pos, t = len(xs), self._positions(params), self.n_prefix
        h = np.empty((t * m, self.d_model), dtype=self.dtype)
        h[0::t] = embedding(params["embed"], xs) + pos[0]
        if t == 2:
            h[1::2] = params["embed"][self.op_token] + pos[1]
        kv, caches = [], []
        for i in range(self.n_layers):
            pre = f"l{i}."
            qp, kp, vp = self._split_heads(h @ params[pre + "W_qkv"], m, t)
            kv.append((kp, vp))
            if i == self.n_layers - 1:  # the answer reads only their keys and values here
                caches.append((h, None, None))
                break
            o, p = attention(qp, kp, vp, self._mask_prefix, self._scale)
            h_in = h
            h, post = self._post_attention(params, pre, h, self._merge_heads(o), rng)
            caches.append((h_in, (qp, kp, vp, p), post))
        return kv, caches

    def _suffix_forward(self, params, plan, c, prefix_kv, qkv0, rng):
        """The suffix positions ("y =") of chunk c: the answer logits, the last hidden state, the caches.

        ``qkv0`` holds the first layer's queries, keys and values per distinct y and for "=": its
        inputs depend on one token each, so they are computed once per batch (_qkv0)."""
        n, rows = plan.sizes[c], plan.chunks[c]
        qkv_y, qkv_eq, h_y, h_eq = qkv0
        src, ysrc = plan.src[rows], plan.ysrc[rows]
        h = np.empty((2 * n, self.d_model), dtype=self.dtype)
        h[0::2] = h_y[ysrc]
        h[1::2] = h_eq
        caches = []
        for i in range(self.n_layers):
            pre, last = f"l{i}.", i == self.n_layers - 1
            if i == 0:
                qkv = np.empty((2 * n, 3 * self.d_model), dtype=self.dtype)
                qkv[0::2] = qkv_y[ysrc]
                qkv[1::2] = qkv_eq
            else:
                qkv = h @ params[pre + "W_qkv"]
            qs, ks, vs = self._split_heads(qkv, n)
            kp, vp = prefix_kv[i]
            kfull = np.concatenate([kp[src], ks], axis=2)  # (n, heads, seq_len, d_head)
            vfull = np.concatenate([vp[src], vs], axis=2)
            if last:  # only the last position ("=") can reach the answer
                qs = qs[:, :, 1:]
                o, p = attention(qs, kfull, vfull, self._mask_answer, self._scale)
                resid = h[1::2]
            else:
                o, p = attention(qs, kfull, vfull, self._mask_suffix, self._scale)
                resid = h
            h_in = h
            h, post = self._post_attention(params, pre, resid, self._merge_heads(o), rng)
            caches.append((h_in, qs, kfull, vfull, p, post))
        return h @ params["W_out"], h, caches

    def _qkv0(self, params, plan):
        """The first layer's inputs and q, k, v at the positions of y (per distinct y) and "="."""
        pos, w, t = self._positions(params), params["l0.W_qkv"], self.n_prefix
        h_y = embedding(params["embed"], plan.ys) + pos[t]
        h_eq = params["embed"][self.eq_token] + pos[t + 1]
        return h_y @ w, h_eq @ w, h_y, h_eq

    def _prefix_stage(self, params, plan, rngs):
        """The prefix pieces' forward pass, the first layer's per-y part, and the keys and values of
        all prefix rows per layer, for the chunks to gather from."""
        # The prefix pieces and the first layer's per-y part are independent: one map for all.
        *prefix, qkv0 = THREADS.map(
            lambda j: self._qkv0(params, plan) if j is None else
            self._prefix_forward(params, plan.xs[plan.pieces[j]], rngs.get(("prefix", j))),
            [*range(len(plan.pieces)), None])
        prefix_kv = [tuple(np.concatenate([kv[i][a] for kv, _ in prefix]) for a in (0, 1))
                     for i in range(self.n_layers)]
        return prefix, qkv0, prefix_kv

    def _each_chunk(self, params, plan, then, rngs=None):
        """``then(c, forward)`` of every chunk c, after its forward pass on the same thread: one map
        over the chunks, whose activations are still in that core's cache when ``then`` reads them."""
        rngs = rngs or {}
        prefix, qkv0, prefix_kv = self._prefix_stage(params, plan, rngs)
        return prefix, qkv0, THREADS.map(
            lambda c: then(c, self._suffix_forward(params, plan, c, prefix_kv, qkv0, rngs.get(("suffix", c)))),
            range(len(plan.chunks)))

    def logits(self, params, x, y) -> np.ndarray:
        _, _, logits = self._each_chunk(params, _Plan(x, y), lambda c, forward: forward[0])
        return np.concatenate(logits)

    def operand_embedding(self, params) -> np.ndarray:
        """One row per operand token (the vocabulary's "op" and "=" left out)."""
        return params["embed"][:self.n_tokens]

    def _norm(self, params, name, x):
        """The block's LayerNorm ``name`` (post-LN), or x itself without normalization."""
        if self.normalization == "none":
            return x, None
        return layer_norm(x, params[name + "_g"], params[name + "_b"])

    def _norm_backward(self, params, name, dout, cache, grads):
        if cache is None:
            return dout
        dx, grads[name + "_g"], grads[name + "_b"] = layer_norm_backward(dout, params[name + "_g"], cache)
        return dx

    def _post_attention(self, params, pre, resid, o, rng):
        """Output projection, residual, LN, feed-forward, residual, LN on the rows that need them."""
        a, mask_a = dropout(linear(o, params[pre + "W_o"]), rng, self.dropout)
        a += resid
        h1, ln1 = self._norm(params, pre + "ln1", a)
        u, _ = activation("relu", linear(h1, params[pre + "W_ff1"], params[pre + "b_ff1"]))
        f, mask_f = dropout(linear(u, params[pre + "W_ff2"], params[pre + "b_ff2"]), rng, self.dropout)
        f += h1
        out, ln2 = self._norm(params, pre + "ln2", f)
        return out, (o, mask_a, h1, ln1, u, mask_f, ln2)

    def tokens(self, x, y) -> np.ndarray:
        """The (batch, seq_len) token ids of "x op y =" or "x y =", as the docstring lays them out."""
        x, y = np.asarray(x), np.asarray(y)
        ops = [np.full_like(x, self.op_token)] if self.n_prefix == 2 else []
        return np.stack([x, *ops, y, np.full_like(y, self.eq_token)], axis=1)

    # -- named activations: a plain forward pass over every position -----------------------------
    @property
    def activation_names(self) -> tuple[str, ...]:
        """The names of ``run_with_cache``, in forward order (TransformerLens's, where they apply).
        In post-LN blocks hook_resid_mid and hook_resid_post are after their LayerNorm: the stream
        the next stage reads."""
        names = ["hook_embed", "hook_pos_embed"]
        for i in range(self.n_layers):
            b = f"blocks.{i}."
            names += [b + "hook_resid_pre", *(b + "attn." + h for h in
                      ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern", "hook_z")),
                      b + "hook_attn_out", b + "hook_resid_mid", b + "mlp.hook_pre", b + "mlp.hook_post",
                      b + "hook_mlp_out", b + "hook_resid_post"]
        return tuple(names)

    def run_with_cache(self, params, x, y, hooks=None, names=None):
        """(answer logits, {name: activation}) over the rows (x, y), every activation rows first:
        embeddings and residuals (rows, seq, d_model), q/k/v/z (rows, seq, heads, d_head), scores and
        patterns (rows, heads, query, key), the MLP's (rows, seq, d_ff). ``hooks`` {name: fn(value,
        name)} may replace any of them; see ``layers.HookPoints``. No dropout; apart from the
        training engine, which it agrees with to rounding."""
        return self._forward_tokens(params, self.tokens(x, y), HookPoints(self.activation_names, hooks, names))

    def _forward_tokens(self, params, tokens, run):
        tokens = np.asarray(tokens)
        n, t = tokens.shape
        d, nh, dhd = self.d_model, self.n_heads, self.d_head

        def norm(name, r):  # the block's LayerNorm, over rows
            return self._norm(params, name, r.reshape(n * t, d))[0].reshape(n, t, d)

        h = run("hook_embed", params["embed"][tokens])
        h = h + run("hook_pos_embed", np.broadcast_to(self._positions(params)[:t], (n, t, d)).copy())
        for i in range(self.n_layers):
            b, pre = f"blocks.{i}.", f"l{i}."
            h = run(b + "hook_resid_pre", h)
            qkv = (h.reshape(n * t, d) @ params[pre + "W_qkv"]).reshape(n, t, 3, nh, dhd)
            q, k, v = (run(b + "attn.hook_" + c, qkv[:, :, j].copy()) for j, c in enumerate("qkv"))
            scores = (q.transpose(0, 2, 1, 3) @ k.transpose(0, 2, 3, 1)) * self._scale
            np.copyto(scores, -np.inf, where=~self._mask_full[:t, :t])
            scores = run(b + "attn.hook_attn_scores", scores)
            pattern = np.exp(scores - scores.max(axis=-1, keepdims=True))
            pattern = run(b + "attn.hook_pattern", pattern / pattern.sum(axis=-1, keepdims=True))
            z = run(b + "attn.hook_z", (pattern @ v.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3))
            attn_out = run(b + "hook_attn_out", (z.reshape(n * t, d) @ params[pre + "W_o"]).reshape(n, t, d))
            mid = run(b + "hook_resid_mid", norm(pre + "ln1", h + attn_out))
            act = run(b + "mlp.hook_pre", mid @ params[pre + "W_ff1"] + params[pre + "b_ff1"])
            act = run(b + "mlp.hook_post", np.maximum(act, 0))
            mlp_out = run(b + "hook_mlp_out", act @ params[pre + "W_ff2"] + params[pre + "b_ff2"])
            h = run(b + "hook_resid_post", norm(pre + "ln2", mid + mlp_out))
        return h[:, -1] @ params["W_out"], run.cache

    def hidden_states(self, params, tokens) -> list[np.ndarray]:
        """The residual stream over any (batch, seq <= seq_len) token array: [embeddings plus
        positions, after block 1, ..., after block n_layers], each (batch, seq, d_model). The answer
        logits are ``hidden_states(...)[-1][:, -1] @ W_out``."""
        run = HookPoints(self.activation_names, names=lambda name: name.endswith("hook_resid_pre")
                         or name.endswith("hook_resid_post"))
        self._forward_tokens(params, tokens, run)
        return [run.cache["blocks.0.hook_resid_pre"],
                *(run.cache[f"blocks.{i}.hook_resid_post"] for i in range(self.n_layers))]

    def evaluate(self, params, x, y, labels):
        """Mean loss and accuracy over many rows, on the engine's threads; no dropout."""
        plan = _Plan(x, y)
        labels = np.asarray(labels)
        _, _, parts = self._each_chunk(
            params, plan, lambda c, forward: self.cross_entropy(forward[0], labels[plan.chunks[c]])[:2])
        return mean_over_chunks(parts, len(labels))

    # -- backward -----------------------------------------------------------------------------
    @property
    def uses_rng(self) -> bool:
        """Whether a training step draws randomness (dropout masks) from the rng it is given."""
        return self.dropout > 0

    def loss_and_grads(self, params, batch: Batch, rng: np.random.Generator | None = None):
        """Mean loss, accuracy and gradients of every parameter on one batch.

        ``rng`` draws the dropout masks and is required when dropout > 0; with dropout 0 it is unused.
        Every piece of work draws its masks from its own stream, and the pieces' gradients are added
        in a fixed order, so the result does not depend on the number of threads. The gradients are
        views, in the order of ``params``, of one new flat buffer.
        """
        labels = np.asarray(batch.labels)
        n = len(labels)
        plan = _Plan(batch.x, batch.y, per_example_prefix=self.dropout > 0)
        rngs = {}
        if self.dropout > 0:
            if rng is None:
                raise ValueError("dropout > 0 needs a random Generator: loss_and_grads(params, batch, rng)")
            keys = [("prefix", j) for j in range(len(plan.pieces))] + \
                   [("suffix", c) for c in range(len(plan.chunks))]
            rngs = {k: np.random.default_rng(s) for k, s in zip(keys, rng.integers(0, 2 ** 63, len(keys)))}
        prefix, qkv0, chunks = self._each_chunk(
            params, plan, lambda c, forward: self._suffix_backward(params, plan, c, forward,
                                                                   labels[plan.chunks[c]], 1.0 / n), rngs)
        # The prefix rows' key and value gradients, per layer, added over the chunks in order.
        dkv = []
        for i in range(self.n_layers):
            if plan.per_example:  # each chunk's examples are their own prefix rows
                dkv.append(np.concatenate([part[3][i] for part in chunks]))
            else:
                dkv.append(add_in_order(np.empty_like(chunks[0][3][i]), [part[3][i] for part in chunks]))
        firsts = [part[4] for part in chunks]
        *pieces, first = THREADS.map(
            lambda j: self._qkv0_backward(params, plan, qkv0, firsts) if j is None else
            self._prefix_backward(params, plan, j, prefix[j], dkv),
            [*range(len(plan.pieces)), None])

        # Every gradient is a sum of parts: the prefix pieces', then the chunks', then the first
        # layer's per-y part, in that order.
        parts = {name: [] for name in params}
        for part in [*pieces, *(c[2] for c in chunks), first]:
            for name, g in part.items():
                parts[name].append(g)
        grads = new_grads(params, self.dtype)
        THREADS.map(lambda name: add_in_order(grads[name], parts[name]), list(grads))
        return (*mean_over_chunks(chunks, n), grads)

    def _post_attention_backward(self, params, pre, cache, dout, grads):
        o, mask_a, h1, ln1, u, mask_f, ln2 = cache
        dr2 = self._norm_backward(params, pre + "ln2", dout, ln2, grads)
        du, grads[pre + "W_ff2"], grads[pre + "b_ff2"] = linear_backward(u, params[pre + "W_ff2"],
                                                                         dropout_backward(dr2, mask_f))
        dh1, grads[pre + "W_ff1"], grads[pre + "b_ff1"] = linear_backward(
            h1, params[pre + "W_ff1"], activation_backward("relu", u, du))
        dh1 += dr2
        dr1 = self._norm_backward(params, pre + "ln1", dh1, ln1, grads)
        do, grads[pre + "W_o"], _ = linear_backward(o, params[pre + "W_o"], dropout_backward(dr1, mask_a), bias=False)
        return dr1, do

    def _suffix_backward(self, params, plan, c, forward, labels, scale):
        """Chunk c's loss sum, number correct, its share of the weight gradients, the gradients of
        the prefix rows' keys and values per layer, and the first layer's inputs' gradients summed
        per distinct y and for "=" (both (rows, 4d): q, k, v, then the residual)."""
        logits, h_last, caches = forward
        loss_sum, correct, dlogits = self.cross_entropy(logits, labels, scale)
        grads = {}
        dh, grads["W_out"], _ = linear_backward(h_last, params["W_out"], dlogits, bias=False)
        n, rows = plan.sizes[c], plan.chunks[c]
        nh, dhd, d, t = self.n_heads, self.d_head, self.d_model, self.n_prefix
        onehot_x = None
        if not plan.per_example:  # sums the prefix rows' gradients per distinct x
            onehot_x = np.zeros((len(plan.xs), n), dtype=self.dtype)
            onehot_x[plan.src[rows], np.arange(n)] = 1
        dkv_prefix = [None] * self.n_layers
        for i in range(self.n_layers - 1, -1, -1):
            pre, last = f"l{i}.", i == self.n_layers - 1
            h_in, qs, kfull, vfull, p, post = caches[i]
            dresid, do = self._post_attention_backward(params, pre, post, dh, grads)
            do = do.reshape(n, 1 if last else 2, nh, dhd).transpose(0, 2, 1, 3)
            dq, dkfull, dvfull = attention_backward(qs, kfull, vfull, p, do, self._scale)
            dqkv = np.empty((2 * n, 3 * d), dtype=self.dtype)
            dqkv_v = dqkv.reshape(n, 2, 3, nh, dhd)  # a view: writing it fills dqkv
            if last:  # position 2 asks no query in the last layer
                dqkv_v[:, 0, 0] = 0
                dqkv_v[:, 1, 0] = dq[:, :, 0]
            else:
                dqkv_v[:, :, 0] = dq.transpose(0, 2, 1, 3)
            dqkv_v[:, :, 1] = dkfull[:, :, t:].transpose(0, 2, 1, 3)
            dqkv_v[:, :, 2] = dvfull[:, :, t:].transpose(0, 2, 1, 3)
            # Keys and values of the prefix positions as the examples saw them (n, positions, k/v,
            # heads, d_head).
            kv = np.stack([dkfull[:, :, :t].transpose(0, 2, 1, 3), dvfull[:, :, :t].transpose(0, 2, 1, 3)],
                          axis=2)
            dkv_prefix[i] = kv if onehot_x is None else \
                (onehot_x @ kv.reshape(n, -1)).reshape(len(plan.xs), t, 2, nh, dhd)
            if last:
                dresid_full = np.zeros((2 * n, d), dtype=self.dtype)
                dresid_full[1::2] = dresid
                dresid = dresid_full
            if i > 0:
                dh, grads[pre + "W_qkv"], _ = linear_backward(h_in, params[pre + "W_qkv"], dqkv, bias=False)
                dh += dresid
        # The first layer's inputs at position 2 depend on y alone, at position 3 on nothing.
        both = np.concatenate([dqkv, dresid], axis=1)
        onehot_y = np.zeros((len(plan.ys), n), dtype=self.dtype)
        onehot_y[plan.ysrc[rows], np.arange(n)] = 1
        first = (onehot_y @ both[0::2], np.ones(n, dtype=self.dtype) @ both[1::2])
        return loss_sum, correct, grads, dkv_prefix, first

    def _prefix_backward(self, params, plan, j, forward, dkv):
        """Prefix piece j's share of the weight, embedding and position gradients, given the
        gradients ``dkv`` of every prefix row's keys and values (per layer) from the chunks."""
        _, caches = forward
        piece = plan.pieces[j]
        m, nh, dhd, d, t = piece.stop - piece.start, self.n_heads, self.d_head, self.d_model, self.n_prefix
        grads, dh = {}, None
        for i in range(self.n_layers - 1, -1, -1):
            pre = f"l{i}."
            h_in, att, post = caches[i]
            dqkv = np.empty((t * m, 3 * d), dtype=self.dtype)
            dqkv_v = dqkv.reshape(m, t, 3, nh, dhd)
            dresid = None
            if att is None:  # the last layer: only their keys and values were read
                dqkv_v[:, :, 0] = 0
                dqkv_v[:, :, 1:] = dkv[i][piece]
            else:
                dresid, do = self._post_attention_backward(params, pre, post, dh, grads)
                qp, kp, vp, p = att
                dq, dk, dv = attention_backward(qp, kp, vp, p, do.reshape(m, t, nh, dhd).transpose(0, 2, 1, 3),
                                                self._scale)
                dqkv_v[:, :, 0] = dq.transpose(0, 2, 1, 3)
                dqkv_v[:, :, 1] = dk.transpose(0, 2, 1, 3)
                dqkv_v[:, :, 2] = dv.transpose(0, 2, 1, 3)
                dqkv_v[:, :, 1:] += dkv[i][piece]
            dh, grads[pre + "W_qkv"], _ = linear_backward(h_in, params[pre + "W_qkv"], dqkv, bias=False)
            if dresid is not None:
                dh += dresid
        dembed = embedding_backward(dh[0::t], plan.xs[piece], params["embed"])  # xs repeats with dropout
        if t == 2:
            dembed[self.op_token] += dh[1::2].sum(axis=0)
        grads["embed"] = dembed
        if self.positional == "learned":
            dpos = np.zeros_like(params["pos"])
            dpos[0] = dh[0::t].sum(axis=0)
            if t == 2:
                dpos[1] = dh[1::2].sum(axis=0)
            grads["pos"] = dpos
        return grads

    def _qkv0_backward(self, params, plan, qkv0, firsts):
        """The first layer's per-y part: gradients of l0.W_qkv, the embeddings and positions 2-3."""
        _, _, h_y, h_eq = qkv0
        d3 = 3 * self.d_model
        dy = add_in_order(np.empty_like(firsts[0][0]), [f[0] for f in firsts])
        deq = add_in_order(np.empty_like(firsts[0][1]), [f[1] for f in firsts])
        w = params["l0.W_qkv"]
        dh_y, dw, _ = linear_backward(h_y, w, dy[:, :d3], bias=False)
        dw += np.outer(h_eq, deq[:d3])
        dh_y += dy[:, d3:]
        dh_eq = w @ deq[:d3] + deq[d3:]
        dembed = np.zeros_like(params["embed"])
        dembed[plan.ys] = dh_y  # distinct y
        dembed[self.eq_token] += dh_eq
        grads = {"l0.W_qkv": dw, "embed": dembed}
        if self.positional == "learned":
            dpos = np.zeros_like(params["pos"])
            dpos[self.n_prefix], dpos[self.n_prefix + 1] = dh_y.sum(axis=0), dh_eq
            grads["pos"] = dpos
        return grads
