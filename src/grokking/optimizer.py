"""Optimizers that update NumPy parameters in place.

* ``Adam``: Adam with weight decay either decoupled (AdamW, Loshchilov & Hutter; the paper's
  default) or coupled (plain Adam with an L2 term added to the gradient, ``decoupled=False``).
  Decay pulls toward zero, or toward the initial weights (``decay_to_init``), as in the paper's
  official code: p <- p + lr * wd * (p0 - p).
* ``SGD``: heavy-ball momentum with L2 weight decay, as torch.optim.SGD.
* ``Muon``: orthogonalized momentum (Newton-Schulz) for the hidden matrices, AdamW for the rest.

All take the learning rate of the current step from ``learning_rate`` (linear warmup, as in
Power et al.: the first ``warmup_steps`` updates ramp the rate up to its target).
"""

from __future__ import annotations

import numpy as np

from .engine import flatten, views  # noqa: F401 (flatten is public here)
from .parallel import THREADS, even_slices

OPTIMIZERS = ("adamw", "adam", "sgd", "muon")
DECAY_TOWARD = ("zero", "init")


def learning_rate(step: int, lr: float, warmup_steps: int) -> float:
    """Rate for update number ``step`` (1-based): lr * step / warmup_steps during warmup, then lr."""
    if warmup_steps > 0 and step < warmup_steps:
        return lr * step / warmup_steps
    return lr


def _buffer_of(arrays: dict) -> np.ndarray | None:
    """The one 1-D buffer that ``arrays`` are consecutive views of, in order, or None."""
    base = next(iter(arrays.values())).base
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    address, offset = base.__array_interface__["data"][0], 0
    for a in arrays.values():
        if a.base is not base or not a.flags.c_contiguous or \
                a.__array_interface__["data"][0] != address + offset * a.itemsize:
            return None
        offset += a.size
    return base if offset == base.size else None


class _State:
    """Per-parameter optimizer arrays, kept in one buffer when the parameters are (see flatten)."""

    def __init__(self, params: dict, flat: np.ndarray | None, copy: bool = False):
        if flat is not None:
            self.flat = flat.copy() if copy else np.zeros_like(flat)
            self.arrays = dict(zip(params, views(self.flat, params)))
        else:
            self.flat = None
            self.arrays = {k: v.copy() if copy else np.zeros_like(v) for k, v in params.items()}


class Adam:
    """Adam, as torch.optim.AdamW (decoupled=True) or torch.optim.Adam (decoupled=False):

        decoupled: p <- p - lr * wd * (p - target);  p <- p - lr * m_hat / (sqrt(v_hat) + eps)
        coupled:   g <- g + wd * (p - target), then the Adam update of g
    where target is 0, or the initial weights with ``decay_to_init``.
    """

    def __init__(self, params, beta1=0.9, beta2=0.98, eps=1e-8, weight_decay=0.0,
                 decoupled: bool = True, decay_to_init: bool = False):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.weight_decay, self.decoupled = weight_decay, decoupled
        self.flat = _buffer_of(params)
        self._m, self._v = _State(params, self.flat), _State(params, self.flat)
        self.m, self.v = self._m.arrays, self._v.arrays
        self._init = _State(params, self.flat, copy=True) if decay_to_init and weight_decay else None
        self._tmp = _State(params, self.flat)
        self.t = 0

    def _update(self, p, g, m, v, p0, tmp, lr, step_size, denom_scale) -> None:
        """One Adam update of p in place; tmp is scratch space of p's shape (no temporaries, which
        for a whole flat buffer would cost more than the arithmetic)."""
        b1, b2, wd = self.beta1, self.beta2, self.weight_decay
        if wd and not self.decoupled:  # g + wd * (p - target), into tmp
            np.subtract(p, p0, out=tmp) if p0 is not None else np.copyto(tmp, p)
            tmp *= wd
            tmp += g
            g = tmp.copy()
        np.multiply(g, 1 - b1, out=tmp)
        m *= b1
        m += tmp
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v *= b2
        v += tmp
        if wd and self.decoupled:
            p *= 1 - lr * wd
            if p0 is not None:
                np.multiply(p0, lr * wd, out=tmp)
                p += tmp
        np.sqrt(v, out=tmp)
        tmp *= denom_scale
        tmp += self.eps
        np.divide(m, tmp, out=tmp)
        tmp *= step_size
        p -= tmp

    def step(self, params, grads, lr: float) -> None:
        self.t += 1
        # Bias corrections folded into one step size and one denominator scale.
        step_size = lr / (1 - self.beta1 ** self.t)
        denom_scale = 1 / np.sqrt(1 - self.beta2 ** self.t)
        init = self._init
        if self.flat is not None:  # every tensor at once
            g = _buffer_of(grads)
            if g is None:
                g = np.concatenate([grads[k].ravel() for k in params])
            # Elementwise, so cutting the buffers into one piece per engine thread changes no bit.
            flats = (self.flat, g, self._m.flat, self._v.flat, init and init.flat, self._tmp.flat)
            THREADS.map(lambda piece: self._update(*(a if a is None else a[piece] for a in flats),
                                                   lr, step_size, denom_scale),
                        even_slices(self.flat.size, THREADS.n))
            return
        for name, p in params.items():
            self._update(p, grads[name], self.m[name], self.v[name], init and init.arrays[name],
                         self._tmp.arrays[name], lr, step_size, denom_scale)

    def state_dict(self) -> dict:
        """Everything a resumed run needs: arrays keyed 'm.<param>' and 'v.<param>' (and 'init.<param>'
        for decay toward the initial weights), and the step."""
        state = {"t": self.t, **{f"m.{k}": a for k, a in self.m.items()},
                 **{f"v.{k}": a for k, a in self.v.items()}}
        if self._init is not None:
            state.update({f"init.{k}": a for k, a in self._init.arrays.items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        for k in self.m:
            self.m[k][...] = state[f"m.{k}"]
            self.v[k][...] = state[f"v.{k}"]
            if self._init is not None:
                self._init.arrays[k][...] = state[f"init.{k}"]


AdamW = Adam  # the default form (decoupled=True) is AdamW


class SGD:
    """SGD with heavy-ball momentum and L2 weight decay added to the gradient, as torch.optim.SGD;
    the decay pulls toward zero or, with ``decay_to_init``, toward the initial weights."""

    def __init__(self, params, momentum=0.0, weight_decay=0.0, decay_to_init: bool = False):
        self.momentum, self.weight_decay = momentum, weight_decay
        self.initial = {k: v.copy() for k, v in params.items()} if decay_to_init and weight_decay else None
        self.t = 0
        self.buf = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params, grads, lr: float) -> None:
        self.t += 1
        for name, p in params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * (p if self.initial is None else p - self.initial[name])
            if self.momentum:
                buf = self.buf[name]
                if self.t == 1:
                    buf[...] = g
                else:
                    buf *= self.momentum
                    buf += g
                g = buf
            p -= lr * g

    def state_dict(self) -> dict:
        state = {"t": self.t, **{f"buf.{k}": a for k, a in self.buf.items()}}
        if self.initial is not None:
            state.update({f"init.{k}": a for k, a in self.initial.items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        for k in self.buf:
            self.buf[k][...] = state[f"buf.{k}"]
            if self.initial is not None:
                self.initial[k][...] = state[f"init.{k}"]


NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # Jordan et al.'s quintic Newton-Schulz iteration


def newton_schulz(g: np.ndarray, steps: int = 5) -> np.ndarray:
    """An approximately orthogonal matrix with g's singular vectors (the polar factor U V^T, its
    singular values pushed into about [0.7, 1.2]), by Muon's quintic Newton-Schulz iteration on
    g / |g|_F: X <- a X + (b A + c A^2) X with A = X X^T, on the wide orientation of g; in g's
    dtype (the reference implementation runs it in bfloat16)."""
    a, b, c = NS_COEFFICIENTS
    x = g
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / x.dtype.type(np.linalg.norm(x) + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def muon_parameters(params: dict, onehot_input: bool = False, embeddings=None) -> list[str]:
    """The matrices Muon updates: every 2-D parameter but the model's ``embeddings`` (tables looked
    up by token, ``models.Model.embeddings``) and its output layer W_out. Without ``embeddings``:
    embed and pos, and the first layer W1 when it takes one-hot inputs (then it is the embedding)."""
    if embeddings is None:
        embeddings = ("embed", "pos", "W1") if onehot_input else ("embed", "pos")
    return [k for k, p in params.items() if p.ndim == 2 and k not in (*embeddings, "W_out")]


class Muon:
    """Muon (Jordan et al. 2024) for the hidden matrices, AdamW for the rest.

    For a matrix W with gradient G: B <- mu B + G; with Nesterov, U = newton_schulz(G + mu B), else
    newton_schulz(B); W <- W (1 - lr_muon wd) - lr_muon sqrt(max(1, rows / cols)) U. lr_muon follows
    the same warmup as the AdamW rate: lr_muon = muon_lr * lr / peak_lr.
    """

    def __init__(self, params, peak_lr: float, muon_lr=0.02, momentum=0.95, nesterov=True,
                 weight_decay=0.0, onehot_input=False, embeddings=None, **adam):
        self.matrices = muon_parameters(params, onehot_input, embeddings)
        rest = {k: v for k, v in params.items() if k not in self.matrices}
        self.adam = Adam(rest, weight_decay=weight_decay, **adam)
        self.peak_lr, self.muon_lr, self.momentum, self.nesterov = peak_lr, muon_lr, momentum, nesterov
        self.weight_decay = weight_decay
        self.buf = {k: np.zeros_like(params[k]) for k in self.matrices}

    def step(self, params, grads, lr: float) -> None:
        self.adam.step({k: params[k] for k in params if k not in self.buf},
                       {k: grads[k] for k in params if k not in self.buf}, lr)
        rate = self.muon_lr * lr / self.peak_lr

        def update(k):  # each matrix on its own: they run on the engine's threads
            buf = self.buf[k]
            buf *= self.momentum
            buf += grads[k]
            u = newton_schulz(grads[k] + self.momentum * buf if self.nesterov else buf)
            p = params[k]
            p *= 1 - rate * self.weight_decay
            p -= (rate * max(1.0, u.shape[0] / u.shape[1]) ** 0.5) * u

        THREADS.map(update, self.matrices)

    def state_dict(self) -> dict:
        return {**self.adam.state_dict(), **{f"muon.{k}": v for k, v in self.buf.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.adam.load_state_dict(state)
        for k, buf in self.buf.items():
            buf[...] = state[f"muon.{k}"]
