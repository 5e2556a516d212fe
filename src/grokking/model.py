"""A NumPy MLP classifier for binary operations, with a hand-written backward pass.

    h_1 = act(E[x] @ W1_x + E[y] @ W1_y + b1)      E: learned operand embeddings, shared by x and y
    h_k = act(h_{k-1} @ W_k + b_k)                  k = 2..n_layers
    logits = h_L @ W_out + b_out                    one logit per answer in the vocabulary

Loss is the mean softmax cross-entropy of the answer.

Why the first layer looks unusual: the inputs are two tokens from a small vocabulary, so
``E[x] @ W1_x`` takes only n_tokens distinct values. We compute the per-token tables
``E @ W1_x`` and ``E @ W1_y`` once per step (n_tokens rows) and gather them, instead of multiplying
every example's embedding. The backward pass mirrors it: gradients are summed per token first
(one matmul with a one-hot matrix, see ``Batch``), then pushed through the tiny tables. ``reference_loss_and_grads``
keeps the plain formulation for the tests that check the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIVATIONS = ("relu", "quadratic", "tanh")
LOGIT_FLOOR = -50.0


def _act(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0)
    if name == "quadratic":  # Gromov (2023): phi(z) = z^2
        return z * z
    return np.tanh(z)


def _act_backward(name: str, z: np.ndarray, a: np.ndarray, da: np.ndarray) -> np.ndarray:
    if name == "relu":
        return da * (z > 0)
    if name == "quadratic":
        return da * (2 * z)
    return da * (1 - a * a)


@dataclass
class Batch:
    """Operands and answers of some rows of a table, with the one-hot operand matrix the backward
    pass uses to sum gradients per token.

    Summing the rows of a (batch, width) gradient that share a token is ``onehot @ grad``: one
    BLAS call for x and y together, several times faster than ``np.add.at`` or a sorted segmented
    sum. For full-batch training the matrix is built once per run.
    """

    x: np.ndarray
    y: np.ndarray
    labels: np.ndarray
    n_tokens: int
    dtype: str = "float32"

    def __post_init__(self):
        n = len(self.labels)
        rows = np.arange(n)
        # (2 * n_tokens, batch): row t is 1 where x == t, row n_tokens + t is 1 where y == t.
        self.onehot = np.zeros((2 * self.n_tokens, n), dtype=self.dtype)
        self.onehot[self.x, rows] = 1
        self.onehot[self.n_tokens + self.y, rows] = 1

    def __len__(self) -> int:
        return len(self.labels)

    def sum_per_token(self, grad: np.ndarray):
        """Per-token sums of ``grad`` over the batch: (for x, for y), each (n_tokens, width)."""
        sums = self.onehot @ grad
        return sums[:self.n_tokens], sums[self.n_tokens:]


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """Mean cross-entropy, accuracy and d(loss)/d(logits), computed stably in the logits' dtype."""
    n = len(labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    # Floor the exponent at -50: once a run memorizes, exp() of the wrong classes falls into float32's
    # subnormal range, where x86 arithmetic is 10-100x slower (a wd=0 run slowed 14x here). The floor
    # keeps every probability and gradient normal and moves the loss by at most n_classes * e^-50.
    np.maximum(shifted, LOGIT_FLOOR, out=shifted)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = float(np.mean(np.log(sum_exp[:, 0]) - shifted[rows, labels]))
    acc = float(np.mean(logits.argmax(axis=1) == labels))
    dlogits = exp / sum_exp
    dlogits[rows, labels] -= 1
    dlogits /= n
    return loss, acc, dlogits


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
    def _forward(self, params, x, y):
        d = self.d_embed
        embed, w1 = params["embed"], params["W1"]
        table_x = embed @ w1[:d]  # (n_tokens, d_hidden): the first layer, once per token
        table_y = embed @ w1[d:]
        z = table_x[x]
        z += table_y[y]
        z += params["b1"]
        cache = []
        for k in range(1, self.n_layers + 1):
            if k > 1:
                z = a @ params[f"W{k}"] + params[f"b{k}"]
            a = _act(self.activation, z)
            cache.append((z, a))
        logits = a @ params["W_out"] + params["b_out"]
        return logits, cache

    def logits(self, params, x, y) -> np.ndarray:
        return self._forward(params, x, y)[0]

    def evaluate(self, params, x, y, labels, chunk: int = 16384):
        """Mean loss and accuracy over many rows, in chunks to bound memory."""
        loss_sum = correct = 0.0
        for i in range(0, len(labels), chunk):
            sl = slice(i, i + chunk)
            loss, acc, _ = softmax_cross_entropy(self.logits(params, x[sl], y[sl]), labels[sl])
            n = len(labels[sl])
            loss_sum += loss * n
            correct += acc * n
        return loss_sum / len(labels), correct / len(labels)

    # -- backward -----------------------------------------------------------------------------
    def loss_and_grads(self, params, batch: Batch):
        """Loss, accuracy and gradients of every parameter on one batch."""
        logits, cache = self._forward(params, batch.x, batch.y)
        loss, acc, dlogits = softmax_cross_entropy(logits, batch.labels)
        grads = {}
        a_last = cache[-1][1]
        grads["W_out"] = a_last.T @ dlogits
        grads["b_out"] = dlogits.sum(axis=0)
        da = dlogits @ params["W_out"].T
        for k in range(self.n_layers, 0, -1):
            z, a = cache[k - 1]
            dz = _act_backward(self.activation, z, a, da)
            grads[f"b{k}"] = dz.sum(axis=0)
            if k > 1:
                grads[f"W{k}"] = cache[k - 2][1].T @ dz
                da = dz @ params[f"W{k}"].T
        # First layer through the per-token tables: sum the gradient per token, then 2 tiny matmuls.
        d = self.d_embed
        embed, w1 = params["embed"], params["W1"]
        dtable_x, dtable_y = batch.sum_per_token(dz)
        grads["W1"] = np.concatenate([embed.T @ dtable_x, embed.T @ dtable_y])
        grads["embed"] = dtable_x @ w1[:d].T + dtable_y @ w1[d:].T
        return loss, acc, {name: grads[name] for name in params}


def reference_loss_and_grads(model: MLP, params, x, y, labels):
    """The textbook formulation (concatenate embeddings, dense matmul, np.add.at), for tests only."""
    embed = params["embed"]
    inputs = np.concatenate([embed[x], embed[y]], axis=1)
    acts, zs = [inputs], []
    for k in range(1, model.n_layers + 1):
        z = acts[-1] @ params[f"W{k}"] + params[f"b{k}"]
        zs.append(z)
        acts.append(_act(model.activation, z))
    logits = acts[-1] @ params["W_out"] + params["b_out"]
    loss, acc, dlogits = softmax_cross_entropy(logits, labels)
    grads = {"W_out": acts[-1].T @ dlogits, "b_out": dlogits.sum(axis=0)}
    da = dlogits @ params["W_out"].T
    for k in range(model.n_layers, 0, -1):
        dz = _act_backward(model.activation, zs[k - 1], acts[k], da)
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
