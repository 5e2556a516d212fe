"""Analysis of trained weights, shared by the figures and the progress measures: principal
components, and the Fourier structure that modular tasks learn (Nanda et al. 2023)."""

from __future__ import annotations

import numpy as np


def principal_components(rows: np.ndarray, k: int = 2, with_share: bool = False):
    """Rows projected on their first k principal components (and each one's share of variance)."""
    centered = rows - rows.mean(axis=0)
    _, sing, vt = np.linalg.svd(centered, full_matrices=False)
    projected = centered @ vt[:k].T
    return (projected, sing[:k] ** 2 / np.sum(sing ** 2)) if with_share else projected


def key_frequency(rows: np.ndarray) -> int:
    """The frequency k in 1..p//2 whose Fourier component cos/sin(2 pi k x / p) carries the most
    of the embedding rows' norm (Nanda et al. 2023): the circle a modular task learns."""
    p = len(rows)
    x = np.arange(p)
    centered = rows - rows.mean(axis=0)
    norms = [np.linalg.norm(np.exp(-2j * np.pi * k * x / p) @ centered) for k in range(1, p // 2 + 1)]
    return int(np.argmax(norms)) + 1
