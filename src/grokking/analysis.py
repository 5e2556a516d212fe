"""Analysis of trained weights and logits, shared by the progress measures and the figures:
principal components, and the Fourier structure that modular tasks learn (Nanda et al. 2023).

Fourier basis over Z_p (Nanda et al.): the constant 1/sqrt(p), then cos(w_k x) and sin(w_k x)
normalized to unit norm, w_k = 2 pi k / p, k = 1..p//2. The norm of frequency k of an array
whose rows are indexed by x is the norm of its cos and sin components together, over all columns.
"""

from __future__ import annotations

import numpy as np

KEY_SHARE = 0.9  # the key frequencies are the fewest that carry this share of the squared norm
MAX_KEYS = 10  # ... and at most this many are kept for the restricted and excluded losses


def principal_components(rows: np.ndarray, k: int = 2, with_share: bool = False):
    """Rows projected on their first k principal components (and each one's share of variance)."""
    centered = rows - rows.mean(axis=0)
    _, sing, vt = np.linalg.svd(centered, full_matrices=False)
    projected = centered @ vt[:k].T
    return (projected, sing[:k] ** 2 / np.sum(sing ** 2)) if with_share else projected


def frequency_norms(rows: np.ndarray) -> np.ndarray:
    """Norm of each frequency k = 1..p//2 of ``rows`` (p rows indexed by x), in the unit-norm
    Fourier basis; the constant component is left out."""
    p = len(rows)
    spectrum = np.fft.rfft(np.asarray(rows, dtype=np.float64), axis=0)[1:p // 2 + 1]
    # |rfft_k| is the norm of (sum cos, sum sin); the unit-norm basis vectors are those over sqrt(p/2)
    # (over sqrt(p) for k = p/2 of an even p, whose sine vanishes).
    scale = np.full(len(spectrum), np.sqrt(2.0 / p))
    if p % 2 == 0:
        scale[-1] = np.sqrt(1.0 / p)
    return np.sqrt((np.abs(spectrum) ** 2).sum(axis=1)) * scale


def key_frequency(rows: np.ndarray) -> int:
    """The frequency whose component carries the most of the rows' norm: the circle a modular task
    learns."""
    return int(np.argmax(frequency_norms(rows))) + 1


def key_frequencies(norms: np.ndarray, share: float = KEY_SHARE) -> np.ndarray:
    """The fewest frequencies (1-based, strongest first) whose squared norms carry ``share`` of the
    total."""
    order = np.argsort(-norms, kind="stable")
    energy = np.cumsum(norms[order] ** 2)
    count = int(np.searchsorted(energy, share * energy[-1])) + 1 if energy[-1] > 0 else len(norms)
    return order[:min(count, len(norms))] + 1


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 when all are equal, near 1 when one holds all."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    n, total = len(v), v.sum()
    if total <= 0:
        return 0.0
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * v) / (n * total))


def fourier_components(logits: np.ndarray, rows_by_u: np.ndarray, keys) -> np.ndarray:
    """The part of ``logits`` (one row per pair of the whole table, one column per class) that is a
    function of u = a + b or a - b mod p at the frequencies ``keys`` (0 is the constant): the
    cos(w_k u) and sin(w_k u) components of each class's logits over the p^2 pairs, as (p, classes),
    one row per value of u. ``rows_by_u`` lists the table's rows by u: p rows for u = 0, then u = 1...

    Every value of u occurs p times in the table, so projecting a class's logits on a function of u
    is projecting their mean per value of u on it, over Z_p.
    """
    p = int(round(np.sqrt(len(rows_by_u))))
    sums = np.take(logits, rows_by_u, axis=0).reshape(p, p, -1).sum(axis=1, dtype=np.float64)
    spectrum = np.fft.rfft(sums / p, axis=0)
    kept = np.zeros_like(spectrum)
    kept[keys] = spectrum[keys]
    return np.fft.irfft(kept, n=p, axis=0)


def row_cross_entropy(logits: np.ndarray, labels: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """Softmax cross-entropy of each row, in float64 (``overwrite``: float64 logits may be spoiled)."""
    z = logits if overwrite and logits.dtype == np.float64 else np.array(logits, dtype=np.float64)
    z -= z.max(axis=1, keepdims=True)
    answer = z[np.arange(len(labels)), labels]
    np.exp(z, out=z)
    return np.log(z.sum(axis=1)) - answer


def cross_entropy(logits: np.ndarray, labels: np.ndarray, overwrite: bool = False) -> float:
    """Mean softmax cross-entropy in float64."""
    return float(np.mean(row_cross_entropy(logits, labels, overwrite)))


def frequency_shares_2d(values: np.ndarray) -> np.ndarray:
    """For each column of ``values`` (p * p rows, a function of the pair (a, b) in the table's order,
    a-major), the share of its variance at each frequency k = 1..p//2: its components in
    {1, cos(w_k a), sin(w_k a)} x {1, cos(w_k b), sin(w_k b)} but the constant, as Nanda et al.
    cluster neurons by frequency. Shape (columns, p//2); a row sums to at most 1 (the rest lies in
    terms that mix two frequencies)."""
    p = int(round(np.sqrt(len(values))))
    f = np.fft.fft2(np.asarray(values, dtype=np.float64).reshape(p, p, -1), axes=(0, 1))
    power = np.abs(f) ** 2
    power[0, 0] = 0  # the mean is not variance
    total = np.maximum(power.sum(axis=(0, 1)), 1e-300)
    shares = np.empty((p // 2, power.shape[2]))
    for k in range(1, p // 2 + 1):
        idx = np.unique([0, k, p - k])  # the complex exponentials that span 1, cos(w_k .), sin(w_k .)
        shares[k - 1] = power[np.ix_(idx, idx)].sum(axis=(0, 1)) / total
    return shares.T


def dominant_frequencies(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's (neuron's) strongest frequency in ``frequency_shares_2d`` (1-based; 0 for a
    column that does not vary) and the share of its variance there: Nanda et al.'s clusters."""
    shares = frequency_shares_2d(values)
    varies = np.ptp(values, axis=0) > 0  # not the shares: rounding gives a constant's FFT some power
    top = np.argmax(shares, axis=1)
    share = np.where(varies, shares[np.arange(len(shares)), top], 0.0)
    return np.where(varies, top + 1, 0), share


def keep_frequencies_2d(values: np.ndarray, keys, keep: bool = True, cross: bool = False) -> np.ndarray:
    """``values`` (p * p rows over the pairs (a, b), a-major; any columns) with only the components
    of ``frequency_shares_2d`` at the frequencies ``keys`` and the mean (keep=True), or with those
    components removed (keep=False): Nanda et al.'s ablation of the key frequencies in the neurons.

    A frequency k's components are (k, 0), (0, k) and (k, k): the terms of a alone, of b alone, and
    their products at the same k. ``cross`` adds the products of two different key frequencies
    (k, k'), so that the kept components are all (a, b) with a and b among 0 and ``keys``: keeping
    every frequency is then the identity, which it is not without them (a ReLU's products of
    different frequencies go)."""
    p = int(round(np.sqrt(len(values))))
    f = np.fft.fft2(np.asarray(values, dtype=np.float64).reshape(p, p, -1), axes=(0, 1))
    mask = np.zeros((p, p), dtype=bool)
    keys = list(keys)
    for group in ([keys] if cross else [[k] for k in keys]):
        idx = np.unique([0, *group, *(p - k for k in group)])  # exponentials spanning 1, cos, sin
        mask[np.ix_(idx, idx)] = True
    mask[0, 0] = keep  # the mean stays either way
    kept = np.where(mask[:, :, None] if keep else ~mask[:, :, None], f, 0)
    if not keep:
        kept[0, 0] = f[0, 0]
    return np.fft.ifft2(kept, axes=(0, 1)).real.reshape(values.shape)


def keep_frequencies(rows: np.ndarray, keys, keep: bool = True) -> np.ndarray:
    """``rows`` (p rows indexed by x) projected on the constant and the frequencies ``keys``
    (keep=True), or with the components at ``keys`` removed (keep=False)."""
    p = len(rows)
    f = np.fft.fft(np.asarray(rows, dtype=np.float64), axis=0)
    mask = np.zeros(p, dtype=bool)
    for k in keys:
        mask[[k, p - k]] = True
    mask = mask if keep else ~mask
    mask[0] = True
    return np.fft.ifft(np.where(mask[:, None], f, 0), axis=0).real
