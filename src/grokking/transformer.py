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
* Positions: sinusoidal by default (the official code's; no parameters), ``positional="learned"`` adds
  a (4, d_model) parameter "pos".
* Dropout (``dropout`` > 0, training only) is the official residual dropout: on the attention output
  and on the feed-forward output before each residual add, inverted (kept units scaled by 1/(1-p)).
  Masks are drawn from the Generator passed to ``loss_and_grads``; with dropout 0 nothing is drawn.
* Init: embeddings (and learned positions) ~ N(0, init_scale^2), weights ~ N(0, init_scale^2 / fan_in),
  biases 0, LayerNorm gains 1 - the same rule as ``grokking.model.MLP``.

Why the forward pass is split in two streams. With a causal mask, positions 0 and 1 ("x op") see only
x, in every layer; so their hidden states take at most n_tokens distinct values. We compute them once
per distinct x in the batch (the "prefix" rows) and gather their keys and values for the examples
(the "suffix" rows, positions 2 and 3); the backward pass sums the gradients of those keys and values
per distinct x. In the last layer only position 3 matters, so its queries, attention output and
feed-forward are computed for that position only. Both steps are exact (tests compare with finite
differences, with a plain per-position forward pass and with PyTorch autograd); at the paper's
configuration and batch 512 they cut the dense work about 2.1x (45 vs 96 d_model^2
multiply-adds per example in the forward pass). With dropout the prefix rows get their
own masks per example, so they are not shared (one prefix per example).

Threads: like the MLP, a batch is cut into the engine's fixed chunks of ``CHUNK_ROWS`` rows that run on
its threads (``grokking.parallel.engine_threads``), and their gradients are added in chunk order, so a
result does not depend on the number of threads. Dense work is in float32 by default.
"""

from __future__ import annotations

import math

import numpy as np

from .model import CHUNK_ROWS, Batch, softmax_cross_entropy
from .parallel import THREADS

SEQ_LEN = 4
POSITIONAL = ("sinusoidal", "learned")
LN_EPS = 1e-5

# Causal masks (True = may attend). Prefix queries are positions 0-1 over keys 0-1; suffix queries are
# positions 2-3 over keys 0-3; in the last layer only position 3 queries.
_MASK_PREFIX = np.tril(np.ones((2, 2), dtype=bool))
_MASK_SUFFIX = np.tril(np.ones((SEQ_LEN, SEQ_LEN), dtype=bool))[2:]
_MASK_ANSWER = _MASK_SUFFIX[1:]
_MASK_FULL = np.tril(np.ones((SEQ_LEN, SEQ_LEN), dtype=bool))


def _chunks(n: int) -> list[slice]:
    """Fixed-size pieces of a batch (as the MLP engine cuts them), so results do not depend on threads."""
    return [slice(i, min(i + CHUNK_ROWS, n)) for i in range(0, n, CHUNK_ROWS)]


def sinusoidal_positions(n_positions: int, d_model: int) -> np.ndarray:
    """Vaswani et al.'s table, as the official grokking code: sin on even features, cos on odd ones."""
    pos = np.arange(n_positions)[:, None]
    i = np.arange(d_model)[None, :]
    angle = pos / 10000.0 ** ((i - i % 2) / d_model)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle))


def _row_mean(a):
    # A matrix-vector product: several times faster than a.mean(axis=-1) on rows of d_model values.
    return (a @ np.full(a.shape[-1], 1.0 / a.shape[-1], dtype=a.dtype))[:, None]


def _layer_norm(r, gain, bias):
    xc = r - _row_mean(r)
    rstd = _row_mean(xc * xc)
    rstd += LN_EPS
    np.sqrt(rstd, out=rstd)
    np.reciprocal(rstd, out=rstd)
    xhat = xc
    xhat *= rstd
    out = xhat * gain
    out += bias
    return out, (xhat, rstd)


def _layer_norm_backward(dy, gain, cache):
    xhat, rstd = cache
    dgain = (dy * xhat).sum(axis=0)
    dbias = dy.sum(axis=0)
    dx = dy * gain
    dx -= _row_mean(dx) + xhat * _row_mean(dx * xhat)
    dx *= rstd
    return dx, dgain, dbias


def _attend(q, k, v, mask, scale):
    """Softmax attention over (n, heads, seq, d_head) arrays; mask is (q_len, k_len), True = visible."""
    s = q @ k.swapaxes(-1, -2)
    s *= scale
    s = np.where(mask, s, -np.inf)
    s -= s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return p @ v, p


def _attend_backward(q, k, v, p, do, scale):
    dp = do @ v.swapaxes(-1, -2)
    dv = p.swapaxes(-1, -2) @ do
    ds = dp - (dp * p).sum(axis=-1, keepdims=True)
    ds *= p  # masked entries have p = 0, so they get no gradient
    ds *= scale
    return ds @ k, ds.swapaxes(-1, -2) @ q, dv


class Transformer:
    """Decoder-only transformer over "x op y ="; the same interface as ``grokking.model.MLP``."""

    def __init__(self, n_tokens: int, n_classes: int, d_model: int = 128, n_layers: int = 2,
                 n_heads: int = 4, d_ff: int | None = None, dropout: float = 0.0,
                 init_scale: float = 1.0, dtype: str = "float32", positional: str = "sinusoidal"):
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        if positional not in POSITIONAL:
            raise ValueError(f"positional must be one of {POSITIONAL}, not {positional!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout}")
        self.n_tokens, self.n_classes = n_tokens, n_classes
        self.d_model, self.n_layers, self.n_heads = d_model, n_layers, n_heads
        self.d_head = d_model // n_heads
        self.d_ff = 4 * d_model if d_ff is None else d_ff
        self.dropout, self.init_scale, self.positional = dropout, init_scale, positional
        self.dtype = np.dtype(dtype)
        self.vocab_size = n_tokens + 2
        self.op_token, self.eq_token = n_tokens, n_tokens + 1
        self._scale = 1.0 / math.sqrt(self.d_head)  # a Python float, so float32 stays float32
        self._sinusoid = sinusoidal_positions(SEQ_LEN, d_model).astype(self.dtype)

    # -- parameters ---------------------------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        d, f = self.d_model, self.d_ff
        shapes = {"embed": (self.vocab_size, d)}
        if self.positional == "learned":
            shapes["pos"] = (SEQ_LEN, d)
        for i in range(self.n_layers):
            shapes.update({f"l{i}.W_qkv": (d, 3 * d), f"l{i}.W_o": (d, d),
                           f"l{i}.ln1_g": (d,), f"l{i}.ln1_b": (d,),
                           f"l{i}.W_ff1": (d, f), f"l{i}.b_ff1": (f,),
                           f"l{i}.W_ff2": (f, d), f"l{i}.b_ff2": (d,),
                           f"l{i}.ln2_g": (d,), f"l{i}.ln2_b": (d,)})
        shapes["W_out"] = (d, self.n_classes)
        return shapes

    def init_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Embeddings ~ N(0, s^2); weights ~ N(0, s^2 / fan_in); biases 0; LayerNorm gains 1."""
        s = self.init_scale
        params = {}
        for name, shape in self.param_shapes().items():
            leaf = name.split(".")[-1]
            if name in ("embed", "pos"):
                value = rng.standard_normal(shape) * s
            elif leaf.startswith("W"):
                value = rng.standard_normal(shape) * (s / np.sqrt(shape[0]))
            elif leaf.endswith("_g"):
                value = np.ones(shape)
            else:
                value = np.zeros(shape)
            params[name] = value.astype(self.dtype)
        return params

    def _positions(self, params):
        return params["pos"] if self.positional == "learned" else self._sinusoid

    # -- forward ------------------------------------------------------------------------------
    def _split_heads(self, qkv, n):
        """(n * 2 rows, 3d) -> q, k, v each (n, heads, 2, d_head) (views)."""
        return qkv.reshape(n, 2, 3, self.n_heads, self.d_head).transpose(2, 0, 3, 1, 4)

    def _merge_heads(self, o):
        n, _, t, _ = o.shape
        return o.transpose(0, 2, 1, 3).reshape(n * t, self.d_model)

    def _forward(self, params, x, y, rng=None):
        x, y = np.asarray(x), np.asarray(y)
        n = len(y)
        if rng is not None:  # dropout: every example gets its own prefix rows (and masks)
            xs, src, onehot = x, None, None
        else:
            xs, src = np.unique(x, return_inverse=True)
            src = src.reshape(-1)
            onehot = np.zeros((len(xs), n), dtype=self.dtype)  # sums gradients per distinct x
            onehot[src, np.arange(n)] = 1
        m = len(xs)
        embed, pos = params["embed"], self._positions(params)
        h = np.empty((2 * m + 2 * n, self.d_model), dtype=self.dtype)  # prefix rows, then suffix rows
        h[0:2 * m:2] = embed[xs] + pos[0]
        h[1:2 * m:2] = embed[self.op_token] + pos[1]
        h[2 * m::2] = embed[y] + pos[2]
        h[2 * m + 1::2] = embed[self.eq_token] + pos[3]
        caches = []
        for i in range(self.n_layers):
            h, cache = self._block(params, f"l{i}.", h, m, n, src, i == self.n_layers - 1, rng)
            caches.append(cache)
        logits = h @ params["W_out"]  # h is (n, d): position 3 of the last layer
        return logits, (xs, src, onehot, m, n, caches, h)

    def _block(self, params, pre, h, m, n, src, last, rng):
        qkv = h @ params[pre + "W_qkv"]
        qp, kp, vp = self._split_heads(qkv[:2 * m], m)
        qs, ks, vs = self._split_heads(qkv[2 * m:], n)
        kfull = np.concatenate([kp if src is None else kp[src], ks], axis=2)  # (n, heads, 4, d_head)
        vfull = np.concatenate([vp if src is None else vp[src], vs], axis=2)
        if last:  # only position 3 can reach the answer
            qs = qs[:, :, 1:]
            o_s, p_s = _attend(qs, kfull, vfull, _MASK_ANSWER, self._scale)
            o, p_p = self._merge_heads(o_s), None
            resid = h[2 * m + 1::2]
        else:
            o_p, p_p = _attend(qp, kp, vp, _MASK_PREFIX, self._scale)
            o_s, p_s = _attend(qs, kfull, vfull, _MASK_SUFFIX, self._scale)
            o = np.concatenate([self._merge_heads(o_p), self._merge_heads(o_s)])
            resid = h
        out, post = self._post_attention(params, pre, resid, o, rng)
        return out, (h, qp, kp, vp, qs, kfull, vfull, p_p, p_s, post)

    def _dropout_mask(self, rng, shape):
        keep = rng.random(shape, dtype=np.float64 if self.dtype == np.float64 else np.float32)
        return (keep >= self.dropout).astype(self.dtype) * (1.0 / (1.0 - self.dropout))

    def _post_attention(self, params, pre, resid, o, rng):
        """Output projection, residual, LN, feed-forward, residual, LN on the rows that need them."""
        a = o @ params[pre + "W_o"]
        mask_a = mask_f = None
        if rng is not None:
            mask_a = self._dropout_mask(rng, a.shape)
            a *= mask_a
        h1, ln1 = _layer_norm(resid + a, params[pre + "ln1_g"], params[pre + "ln1_b"])
        u = h1 @ params[pre + "W_ff1"]
        u += params[pre + "b_ff1"]
        np.maximum(u, 0, out=u)
        f = u @ params[pre + "W_ff2"]
        f += params[pre + "b_ff2"]
        if rng is not None:
            mask_f = self._dropout_mask(rng, f.shape)
            f *= mask_f
        out, ln2 = _layer_norm(h1 + f, params[pre + "ln2_g"], params[pre + "ln2_b"])
        return out, (o, mask_a, h1, ln1, u, mask_f, ln2)

    def logits(self, params, x, y) -> np.ndarray:
        return self._forward(params, x, y)[0]

    def tokens(self, x, y) -> np.ndarray:
        """The (batch, 4) token ids of "x op y =", as the docstring lays them out."""
        x, y = np.asarray(x), np.asarray(y)
        return np.stack([x, np.full_like(x, self.op_token), y, np.full_like(y, self.eq_token)], axis=1)

    def hidden_states(self, params, tokens) -> list[np.ndarray]:
        """Plain forward pass over any (batch, seq <= 4) token array, every position in every layer.

        For tests and inspection: returns [embeddings, after block 1, ..., after block n_layers], each
        (batch, seq, d_model). The answer logits are ``hidden_states(...)[-1][:, 3] @ W_out``.
        """
        tokens = np.asarray(tokens)
        n, t = tokens.shape
        d, nh, dhd = self.d_model, self.n_heads, self.d_head
        h = (params["embed"][tokens] + self._positions(params)[:t]).reshape(n * t, d)
        states = [h.reshape(n, t, d)]
        for i in range(self.n_layers):
            pre = f"l{i}."
            q, k, v = (h @ params[pre + "W_qkv"]).reshape(n, t, 3, nh, dhd).transpose(2, 0, 3, 1, 4)
            o, _ = _attend(q, k, v, _MASK_FULL[:t, :t], self._scale)
            h, _ = self._post_attention(params, pre, h, self._merge_heads(o), None)
            states.append(h.reshape(n, t, d))
        return states

    def evaluate(self, params, x, y, labels):
        """Mean loss and accuracy over many rows, chunked over the engine's threads; no dropout."""
        def chunk(s):
            loss_sum, correct, _ = softmax_cross_entropy(self._forward(params, x[s], y[s])[0], labels[s])
            return loss_sum, correct

        parts = THREADS.map(chunk, _chunks(len(labels)))
        return sum(p[0] for p in parts) / len(labels), sum(p[1] for p in parts) / len(labels)

    # -- backward -----------------------------------------------------------------------------
    def loss_and_grads(self, params, batch: Batch, rng: np.random.Generator | None = None):
        """Mean loss, accuracy and gradients of every parameter on one batch.

        ``rng`` draws the dropout masks and is required when dropout > 0; with dropout 0 it is unused.
        Chunks of the batch run on the engine's threads and are summed in chunk order, so the result
        does not depend on the number of threads; each chunk draws its masks from its own stream.
        """
        n = len(batch.labels)
        slices = _chunks(n)
        rngs = [None] * len(slices)
        if self.dropout > 0:
            if rng is None:
                raise ValueError("dropout > 0 needs a random Generator: loss_and_grads(params, batch, rng)")
            rngs = [np.random.default_rng(s) for s in rng.integers(0, 2 ** 63, size=len(slices))]
        x, y, labels = np.asarray(batch.x), np.asarray(batch.y), np.asarray(batch.labels)
        parts = THREADS.map(lambda i: self._chunk_grads(params, x[slices[i]], y[slices[i]],
                                                         labels[slices[i]], 1.0 / n, rngs[i]),
                             list(range(len(slices))))
        grads = parts[0][2]
        for part in parts[1:]:  # in chunk order, whichever thread finished first
            for name, g in part[2].items():
                grads[name] += g
        loss = sum(p[0] for p in parts) / n
        acc = sum(p[1] for p in parts) / n
        return loss, acc, {name: grads[name] for name in params}

    def _chunk_grads(self, params, x, y, labels, scale, rng):
        logits, (xs, src, onehot, m, n, caches, h_last) = self._forward(params, x, y, rng)
        loss_sum, correct, dlogits = softmax_cross_entropy(logits, labels, scale)
        grads = {"W_out": h_last.T @ dlogits}
        dh = dlogits @ params["W_out"].T
        for i in range(self.n_layers - 1, -1, -1):
            dh = self._block_backward(params, f"l{i}.", caches[i], dh, grads, m, n, src, onehot,
                                      i == self.n_layers - 1)
        # Embeddings: the operator and "=" rows are shared by all examples.
        dembed = np.zeros_like(params["embed"])
        dp0, dp1, ds2, ds3 = dh[0:2 * m:2], dh[1:2 * m:2], dh[2 * m::2], dh[2 * m + 1::2]
        np.add.at(dembed, xs, dp0)  # xs has repeats when dropout is on
        np.add.at(dembed, y, ds2)
        dembed[self.op_token] += dp1.sum(axis=0)
        dembed[self.eq_token] += ds3.sum(axis=0)
        grads["embed"] = dembed
        if self.positional == "learned":
            grads["pos"] = np.stack([dp0.sum(axis=0), dp1.sum(axis=0), ds2.sum(axis=0), ds3.sum(axis=0)])
        return loss_sum, correct, grads

    def _post_attention_backward(self, params, pre, cache, dout, grads):
        o, mask_a, h1, ln1, u, mask_f, ln2 = cache
        dr2, grads[pre + "ln2_g"], grads[pre + "ln2_b"] = _layer_norm_backward(dout, params[pre + "ln2_g"], ln2)
        df = dr2 * mask_f if mask_f is not None else dr2
        grads[pre + "W_ff2"] = u.T @ df
        grads[pre + "b_ff2"] = df.sum(axis=0)
        du = df @ params[pre + "W_ff2"].T
        du *= u > 0
        grads[pre + "W_ff1"] = h1.T @ du
        grads[pre + "b_ff1"] = du.sum(axis=0)
        dh1 = du @ params[pre + "W_ff1"].T
        dh1 += dr2
        dr1, grads[pre + "ln1_g"], grads[pre + "ln1_b"] = _layer_norm_backward(dh1, params[pre + "ln1_g"], ln1)
        da = dr1 * mask_a if mask_a is not None else dr1
        grads[pre + "W_o"] = o.T @ da
        return dr1, da @ params[pre + "W_o"].T

    def _block_backward(self, params, pre, cache, dout, grads, m, n, src, onehot, last):
        h, qp, kp, vp, qs, kfull, vfull, p_p, p_s, post = cache
        dresid, do = self._post_attention_backward(params, pre, post, dout, grads)
        nh, dhd = self.n_heads, self.d_head
        dqkv = np.zeros((2 * m + 2 * n, 3 * self.d_model), dtype=self.dtype)
        dqkv_p = dqkv[:2 * m].reshape(m, 2, 3, nh, dhd)  # views: writing them fills dqkv
        dqkv_s = dqkv[2 * m:].reshape(n, 2, 3, nh, dhd)
        if last:
            do_s = do.reshape(n, 1, nh, dhd).transpose(0, 2, 1, 3)
            dq, dkfull, dvfull = _attend_backward(qs, kfull, vfull, p_s, do_s, self._scale)
            dqkv_s[:, 1, 0] = dq[:, :, 0]
        else:
            do_p = do[:2 * m].reshape(m, 2, nh, dhd).transpose(0, 2, 1, 3)
            do_s = do[2 * m:].reshape(n, 2, nh, dhd).transpose(0, 2, 1, 3)
            dq_p, dk_p, dv_p = _attend_backward(qp, kp, vp, p_p, do_p, self._scale)
            dqkv_p[:, :, 0] = dq_p.transpose(0, 2, 1, 3)
            dqkv_p[:, :, 1] = dk_p.transpose(0, 2, 1, 3)
            dqkv_p[:, :, 2] = dv_p.transpose(0, 2, 1, 3)
            dq, dkfull, dvfull = _attend_backward(qs, kfull, vfull, p_s, do_s, self._scale)
            dqkv_s[:, :, 0] = dq.transpose(0, 2, 1, 3)
        dqkv_s[:, :, 1] = dkfull[:, :, 2:].transpose(0, 2, 1, 3)
        dqkv_s[:, :, 2] = dvfull[:, :, 2:].transpose(0, 2, 1, 3)
        # Keys and values of positions 0-1 as seen by the examples, summed back onto their prefix rows.
        dkv = np.stack([dkfull[:, :, :2].transpose(0, 2, 1, 3), dvfull[:, :, :2].transpose(0, 2, 1, 3)],
                       axis=2)  # (n, 2 positions, k/v, heads, d_head), the layout of dqkv_p[:, :, 1:]
        if src is not None:
            dkv = (onehot @ dkv.reshape(n, -1)).reshape(m, 2, 2, nh, dhd)
        dqkv_p[:, :, 1:] += dkv
        grads[pre + "W_qkv"] = h.T @ dqkv
        dh = dqkv @ params[pre + "W_qkv"].T
        if last:
            dh[2 * m + 1::2] += dresid
        else:
            dh += dresid
        return dh
