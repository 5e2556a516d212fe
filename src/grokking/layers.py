"""The layers both models are built from, each a forward and its backward, and what else their
engines share: the rule of initial weights, arrays kept between steps, the gradient buffer.

    forward                              backward, from d(loss)/d(output)
    embedding(table, ids)                embedding_backward: per-token sums
    linear(x, w, b)                      linear_backward: dx, dw, db
    activation(name, z): ACTIVATIONS     activation_backward
    dropout(a, rng, p)                   dropout_backward
    layer_norm(r, gain, bias)            layer_norm_backward: dx, dgain, dbias
    attention(q, k, v, mask, scale)      attention_backward: dq, dk, dv
    Loss: softmax or StableMax cross-entropy (``engine.cross_entropy``), and the training step's
    answer_shifted_cross_entropy, each returning d(loss)/d(logits) with the loss

Forwards work in place where their backward allows. Each pair is checked against finite differences
in tests/test_layers.py. Their order of operations is part of every run's bytes: a change to it
changes the golden runs' (tests/test_golden.py).
"""

from __future__ import annotations

import numpy as np

from .engine import LOGIT_CEILING, LOGIT_FLOOR, cross_entropy, loss_precision, softmax_cross_entropy, views

ACTIVATIONS = ("relu", "quadratic", "tanh")
LN_EPS = 1e-5
# A row's sum of exponentials above this may hold a clipped term (e^80, give or take rounding).
_EXP_CEILING = 0.5 * float(np.exp(LOGIT_CEILING))


def scratch(work: dict | None, key: str, shape: tuple, dtype) -> np.ndarray:
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


def draw_weight(rng: np.random.Generator, shape: tuple, scale: float, init: str = "normal") -> np.ndarray:
    """A weight matrix whose fan-in is shape[0]: N(0, scale^2 / fan_in) ("normal"), or
    U(-scale / sqrt(fan_in), scale / sqrt(fan_in)) ("uniform": PyTorch's nn.Linear default, whose
    standard deviation is 1/sqrt(3) of the normal one's), in float64."""
    bound = scale / np.sqrt(shape[0])
    if init == "uniform":
        return rng.uniform(-bound, bound, shape)
    return rng.standard_normal(shape) * bound


def init_params(shapes: dict, rng: np.random.Generator, scale: float, init: str, dtype) -> dict:
    """Parameters by the names of ``models.Model``, drawn in the order of ``shapes``: the embeddings
    ``embed`` and ``pos`` ~ N(0, scale^2), weights ``W...`` by ``draw_weight``, LayerNorm gains
    ``..._g`` 1, the rest (biases) 0."""
    params = {}
    for name, shape in shapes.items():
        leaf = name.split(".")[-1]
        if name in ("embed", "pos"):
            value = rng.standard_normal(shape) * scale
        elif leaf.startswith("W"):
            value = draw_weight(rng, shape, scale, init)
        else:
            value = np.ones(shape) if leaf.endswith("_g") else np.zeros(shape)
        params[name] = value.astype(dtype)
    return params


def new_grads(params: dict, dtype) -> dict:
    """Arrays for the gradients of ``params``: views, in their order, of one new flat buffer."""
    return dict(zip(params, views(np.empty(sum(p.size for p in params.values()), dtype), params)))


def mean_over_chunks(parts, n: int) -> tuple[float, float]:
    """Mean loss and accuracy from the chunks' (loss sum, number correct, ...), added in chunk order."""
    return sum(p[0] for p in parts) / n, sum(p[1] for p in parts) / n


def embedding(table: np.ndarray, ids: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The rows ``table[ids]``. mode="clip" keeps take unbuffered (the ids are valid); the default
    would copy through a buffer."""
    return np.take(table, ids, axis=0, out=out, mode="clip")


def embedding_backward(d_rows: np.ndarray, ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    """d(loss)/d(table): each row's gradient added to its token's (np.add.at, in row order)."""
    grad = np.zeros_like(table)
    np.add.at(grad, ids, d_rows)
    return grad


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, out=None) -> np.ndarray:
    z = np.matmul(x, w, out=out)
    if b is not None:
        z += b
    return z


def linear_backward(x, w, dz, *, bias: bool = True, ones=None, work: dict | None = None, key: str = ""):
    """dx, dw and db (None without ``bias``) of z = x @ w + b from dz. db sums dz's columns: with
    BLAS against ``ones`` (len(dz) ones) when given, else np.sum, another summation order.
    ``work`` keeps the results' arrays between steps under ``key`` (see ``scratch``)."""
    dw = np.matmul(x.T, dz, out=scratch(work, key + ".dw", w.shape, dz.dtype))
    db = None
    if bias and ones is None:
        db = dz.sum(axis=0)
    elif bias:
        db = np.matmul(ones, dz, out=scratch(work, key + ".db", w.shape[1:], dz.dtype))
    return np.matmul(dz, w.T, out=scratch(work, key + ".dx", x.shape, dz.dtype)), dw, db


def activation(name: str, z: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An activation of ``ACTIVATIONS``, over z in place where the backward pass does not need z
    (quadratic, Gromov 2023's phi(z) = z^2, writes ``out``); returns (a, what the backward needs)."""
    if name == "relu":
        a = np.maximum(z, 0, out=z)
        return a, a  # relu'(z) = [a > 0]
    if name == "quadratic":
        return np.multiply(z, z, out=out), z
    a = np.tanh(z, out=z)
    return a, a  # tanh'(z) = 1 - a^2


def activation_backward(name: str, saved: np.ndarray, da: np.ndarray, work: dict | None = None) -> np.ndarray:
    """d(loss)/dz from d(loss)/da, overwriting da."""
    if name == "relu":
        return np.multiply(da, np.greater(saved, 0, out=scratch(work, "mask", da.shape, np.bool_)), out=da)
    if name == "quadratic":
        da *= saved
        da *= 2
        return da
    tmp = np.multiply(saved, saved, out=scratch(work, "tmp", da.shape, da.dtype))
    np.subtract(1, tmp, out=tmp)
    return np.multiply(da, tmp, out=da)


def dropout(a: np.ndarray, rng: np.random.Generator | None, p: float):
    """Inverted dropout of ``a`` in place: each unit zeroed with probability p, the kept ones scaled
    by 1 / (1 - p); returns a and the mask (None without ``rng``, where nothing is dropped)."""
    if rng is None:
        return a, None
    keep = rng.random(a.shape, dtype=np.float64 if a.dtype == np.float64 else np.float32)
    mask = (keep >= p).astype(a.dtype) * (1.0 / (1.0 - p))
    a *= mask
    return a, mask


def dropout_backward(d: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return d if mask is None else d * mask


def _row_mean(a):
    # A matrix-vector product: several times faster than a.mean(axis=-1) on rows of d_model values.
    return (a @ np.full(a.shape[-1], 1.0 / a.shape[-1], dtype=a.dtype))[:, None]


def layer_norm(r, gain, bias):
    """LayerNorm of the rows of ``r``, which it overwrites (callers pass a fresh sum)."""
    xc = r
    xc -= _row_mean(r)
    rstd = _row_mean(xc * xc)
    rstd += LN_EPS
    np.sqrt(rstd, out=rstd)
    np.reciprocal(rstd, out=rstd)
    xhat = xc
    xhat *= rstd
    out = xhat * gain
    out += bias
    return out, (xhat, rstd)


def layer_norm_backward(dy, gain, cache):
    xhat, rstd = cache
    dgain = (dy * xhat).sum(axis=0)
    dbias = dy.sum(axis=0)
    dx = dy * gain
    mean_dx = _row_mean(dx)
    t = dx * xhat
    np.multiply(xhat, _row_mean(t), out=t)
    t += mean_dx
    dx -= t
    dx *= rstd
    return dx, dgain, dbias


def sinusoidal_positions(n_positions: int, d_model: int) -> np.ndarray:
    """Vaswani et al.'s table, as the official grokking code: sin on even features, cos on odd ones."""
    pos = np.arange(n_positions)[:, None]
    i = np.arange(d_model)[None, :]
    angle = pos / 10000.0 ** ((i - i % 2) / d_model)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle))


def attention(q, k, v, mask, scale):
    """Softmax attention over (n, heads, seq, d_head) arrays; mask is (q_len, k_len), True = visible.
    Returns the output and the attention pattern."""
    p = q @ k.swapaxes(-1, -2)
    p *= scale
    if not mask.all():  # the answer's query sees every key
        np.copyto(p, -np.inf, where=~mask)
    p -= p.max(axis=-1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=-1, keepdims=True)
    return p @ v, p


def attention_backward(q, k, v, p, do, scale):
    dp = do @ v.swapaxes(-1, -2)
    dv = p.swapaxes(-1, -2) @ do
    ds = dp - (dp * p).sum(axis=-1, keepdims=True)
    ds *= p  # masked entries have p = 0, so they get no gradient
    ds *= scale
    return ds @ k, ds.swapaxes(-1, -2) @ q, dv


class Loss:
    """A model's cross-entropy: ``loss`` of engine.LOSSES in ``loss_dtype`` ("": the model's).

    Called on (logits, labels, scale=None), it returns the summed loss, the number correct and
    scale * d(loss)/d(logits), written over the logits. Softmax in the model's dtype (``plain``) takes
    softmax_cross_entropy, summing rows by BLAS against ``ones`` when ``n_classes`` is given;
    anything else takes cross_entropy.
    """

    def __init__(self, loss: str, loss_dtype: str, dtype, n_classes: int | None = None):
        self.loss = loss
        self.dtype, self.plain = loss_precision(loss, loss_dtype, dtype)
        self.ones = None if n_classes is None else np.ones(n_classes, np.dtype(dtype))

    def __call__(self, logits: np.ndarray, labels: np.ndarray, scale: float | None = None):
        if self.plain:
            return softmax_cross_entropy(logits, labels, scale, self.ones)
        return cross_entropy(logits, labels, scale, self.loss, self.dtype)


def answer_shifted_cross_entropy(logits: np.ndarray, answer_index: np.ndarray, scale: float,
                                 ones: np.ndarray):
    """softmax_cross_entropy for training: summed loss and scale * d(loss)/d(logits), in place,
    without the row maxima; or None, with ``logits`` spoiled, when it cannot be exact.

    Softmax is shift-invariant, so any per-row shift that keeps exp() in range will do: this one
    subtracts the answer's logit (``answer_index``: row * n_classes + label, into the flat logits),
    which saves a pass for the row maxima (a twentieth of a mod_add step). Exponents are clipped to
    [LOGIT_FLOOR, LOGIT_CEILING]: the floor for the reason given in softmax_cross_entropy, the
    ceiling against overflow. A row whose sum comes near e^LOGIT_CEILING may have been clipped there
    (some logit exceeds the answer's by 80), so then the caller must use softmax_cross_entropy.
    Accuracy needs the row maxima and is left to evaluation.
    """
    flat = logits.reshape(-1)
    logits -= np.take(flat, answer_index)[:, None]
    np.clip(logits, LOGIT_FLOOR, LOGIT_CEILING, out=logits)
    np.exp(logits, out=logits)
    sum_exp = logits @ ones  # the answer's own term is exp(0) = 1
    if sum_exp.max() >= _EXP_CEILING:
        return None
    loss_sum = float(np.sum(np.log(sum_exp, dtype=np.float64)))
    logits *= (scale / sum_exp)[:, None]
    flat[answer_index] -= scale
    return loss_sum, logits


class HookPoints:
    """The named activations of one plain forward pass (``Model.run_with_cache``): each value the
    pass computes goes through ``run(name, value)``, which applies the hook of that name (its result,
    if not None, replaces the value downstream) and keeps the value in ``cache`` if it was asked for.

    ``names``: None keeps every activation, else an iterable of names or a predicate on a name.
    Unknown names in ``names`` or ``hooks`` raise ValueError listing the model's.
    """

    def __init__(self, valid: tuple[str, ...], hooks: dict | None = None, names=None):
        self.hooks = dict(hooks or {})
        if names is None or callable(names):
            self.keep = names or (lambda name: True)
            asked = []
        else:
            asked = list(names)
            self.keep = set(asked).__contains__
        unknown = [n for n in [*self.hooks, *asked] if n not in valid]
        if unknown:
            raise ValueError(f"unknown activation name(s) {', '.join(map(repr, unknown))}; this model's "
                             f"are: {', '.join(valid)}")
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, name: str, value: np.ndarray) -> np.ndarray:
        hook = self.hooks.get(name)
        if hook is not None:
            new = hook(value, name)
            if new is not None:
                new = np.asarray(new, dtype=value.dtype)
                if new.shape != value.shape:
                    raise ValueError(f"the hook on {name!r} returned shape {new.shape}, not {value.shape}")
                value = new
        if self.keep(name):
            self.cache[name] = value
        return value
