"""What every model's engine shares: the batch, flat parameter buffers, the softmax cross-entropy,
fixed evaluation chunks and the in-order sum that keeps results independent of the thread count.

A model (``grokking.models``) plans its own work on a batch; this module holds only what is not
specific to one architecture.
"""

from __future__ import annotations

import numpy as np

from .parallel import even_slices

LOGIT_FLOOR = -50.0
LOGIT_CEILING = 80.0  # e^80 * n_classes stays far below float32's maximum, 3.4e38
# Rows per evaluation chunk. Fixed, not derived from the core count, so that a run gives the same
# bytes on one thread or many: chunks are summed in the same order whichever thread computed them.
CHUNK_ROWS = 2048


class Batch:
    """Operands and answers of some rows of a table.

    ``plans`` holds what a model derived from the batch (the MLP's chunks and one-hot matrices), so a
    full-batch run, which builds its Batch once, derives them once.
    """

    def __init__(self, x, y, labels, n_tokens: int, dtype="float32"):
        self.x, self.y, self.labels, self.n_tokens, self.dtype = x, y, labels, n_tokens, dtype
        self.plans = {}

    def __len__(self) -> int:
        return len(self.labels)


def eval_slices(n: int) -> list[slice]:
    """Contiguous slices of at most CHUNK_ROWS rows, for evaluation."""
    return even_slices(n, max(1, -(-n // CHUNK_ROWS)))


def add_in_order(into: np.ndarray, parts) -> np.ndarray:
    """The chunks' parts added into ``into`` in chunk order, whichever thread computed them: the
    same bytes on any number of threads."""
    np.copyto(into, parts[0])
    for part in parts[1:]:
        into += part
    return into


def views(buffer: np.ndarray, like: dict, fill: bool = False) -> list[np.ndarray]:
    """``buffer`` cut into consecutive arrays shaped like the values of ``like`` (copied in with fill)."""
    out, offset = [], 0
    for p in like.values():
        view = buffer[offset:offset + p.size].reshape(p.shape)
        if fill:
            view[...] = p
        out.append(view)
        offset += p.size
    return out


def flatten(params: dict) -> dict:
    """The same parameters copied into one contiguous buffer, as a dict of views into it.

    Optimizers update such parameters with a handful of whole-buffer operations instead of a
    handful per tensor, which matters for small models where Python overhead dominates.
    """
    dtype = np.result_type(*params.values())
    buffer = np.empty(sum(p.size for p in params.values()), dtype=dtype)
    return dict(zip(params, views(buffer, params, fill=True)))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray, scale: float | None = None,
                          ones: np.ndarray | None = None):
    """Summed cross-entropy, number correct, and scale * d(summed loss)/d(logits), in place.

    ``logits`` is overwritten with the gradient (pass a copy to keep it). ``scale`` defaults to
    1/len(labels), the gradient of the mean loss. A row counts as correct when the answer's logit
    is the row's maximum. With ``ones`` (n_classes ones of the logits' dtype), the row sums are a
    matrix-vector product: 5x faster than NumPy's sum over short rows, in another summation order.
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
    sum_exp = logits.sum(axis=1) if ones is None else logits @ ones
    loss_sum = float(np.sum(np.log(sum_exp, dtype=np.float64) - answer))
    scale = 1.0 / n if scale is None else scale
    logits *= (scale / sum_exp)[:, None].astype(logits.dtype, copy=False)
    logits[rows, labels] -= scale
    return loss_sum, correct, logits


LOSSES = ("softmax", "stablemax", "mse")
LOSS_DTYPES = ("", "float32", "float64")  # "": the model's dtype


def stablemax(z: np.ndarray) -> np.ndarray:
    """Prieto et al.'s s(z): z + 1 for z >= 0, 1 / (1 - z) below; positive, and linear, not
    exponential, in large logits, so its normalization cannot collapse to one class's term."""
    return np.where(z >= 0, z + 1, 1 / (1 - np.minimum(z, 0)))


def loss_precision(loss: str, loss_dtype: str, dtype) -> tuple[np.dtype, bool]:
    """The dtype a model computes its loss in, and whether that loss is softmax in the model's own
    dtype, the case the engines' fast paths serve (anything else takes ``cross_entropy``)."""
    precision = np.dtype(loss_dtype or dtype)
    return precision, loss == "softmax" and precision == np.dtype(dtype)


def cross_entropy(logits: np.ndarray, labels: np.ndarray, scale: float | None = None,
                  loss: str = "softmax", dtype=None):
    """softmax_cross_entropy's contract for any loss of ``LOSSES``, computed in ``dtype`` (None:
    the logits'): summed loss, number correct, and scale * d(summed loss)/d(logits) written over
    ``logits``. The engines' default (softmax in the model's dtype) keeps its faster path.

    StableMax: p_j = s(z_j) / sum_k s(z_k), loss -log p_y, and d loss / d z_j = (p_j - [j = y]) s'(z_j)
    / s(z_j), where s'/s = 1 / (1 + |z|) on both branches.

    MSE (Omnigrok, Liu et al. 2022): a row's loss is the mean over classes of (z_j - [j = y])^2, as
    PyTorch's MSELoss averages over every entry, so d loss / d z_j = 2 (z_j - [j = y]) / n_classes.
    """
    n = len(labels)
    rows = np.arange(n)
    z = logits.astype(dtype or logits.dtype, copy=True)
    correct = int(np.count_nonzero(z[rows, labels] == z.max(axis=1)))
    if loss == "softmax":
        z -= z.max(axis=1, keepdims=True)
        answer = z[rows, labels]
        e = np.exp(z)
        total = e.sum(axis=1)
        loss_sum = float(np.sum(np.log(total) - answer))
        grad = e / total[:, None]
        grad[rows, labels] -= 1
    elif loss == "mse":
        grad = z
        grad[rows, labels] -= 1
        loss_sum = float(np.sum(grad * grad)) / z.shape[1]
        grad *= 2 / z.shape[1]
    elif loss == "stablemax":
        s = stablemax(z)
        p = s / s.sum(axis=1, keepdims=True)
        loss_sum = float(-np.sum(np.log(p[rows, labels])))
        grad = p
        grad[rows, labels] -= 1
        grad /= 1 + np.abs(z)
    else:
        raise ValueError(f"loss must be one of {LOSSES}, not {loss!r}")
    grad *= 1.0 / n if scale is None else scale
    logits[...] = grad
    return loss_sum, correct, logits
