"""Optimizers that update NumPy parameters in place, and the interventions of Power et al. Fig. 2.

* ``Adam``: Adam with weight decay either decoupled (AdamW, Loshchilov & Hutter; the paper's
  default) or coupled (plain Adam with an L2 term added to the gradient, ``decoupled=False``).
  Decay pulls toward zero, or toward the initial weights (``decay_to_init``), as in the paper's
  official code: p <- p + lr * wd * (p0 - p).
* ``SGD``: heavy-ball momentum with L2 weight decay, as torch.optim.SGD.
* ``Noise``: Gaussian noise added to the gradients before the update or to the weights after it.

All take the learning rate of the current step from ``learning_rate`` (linear warmup, as in
Power et al.: the first ``warmup_steps`` updates ramp the rate up to its target).
"""

from __future__ import annotations

import numpy as np


def learning_rate(step: int, lr: float, warmup_steps: int) -> float:
    """Rate for update number ``step`` (1-based): lr * step / warmup_steps during warmup, then lr."""
    if warmup_steps > 0 and step < warmup_steps:
        return lr * step / warmup_steps
    return lr


class _Decay:
    """Weight decay toward zero or toward a copy of the initial weights."""

    def __init__(self, params, weight_decay: float, to_init: bool):
        self.weight_decay = weight_decay
        self.initial = {k: v.copy() for k, v in params.items()} if to_init and weight_decay else None

    def decoupled(self, name: str, p: np.ndarray, lr: float) -> None:
        """p <- p - lr * wd * (p - target), target 0 or p0."""
        if not self.weight_decay:
            return
        p *= 1 - lr * self.weight_decay
        if self.initial is not None:
            p += (lr * self.weight_decay) * self.initial[name]

    def coupled(self, name: str, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        """g + wd * (p - target), a new array."""
        if not self.weight_decay:
            return g
        extra = p if self.initial is None else p - self.initial[name]
        return g + self.weight_decay * extra


class Adam:
    """Adam, as torch.optim.AdamW (decoupled=True) or torch.optim.Adam (decoupled=False):

        decoupled: p <- p * (1 - lr * wd);  p <- p - lr * m_hat / (sqrt(v_hat) + eps)
        coupled:   g <- g + wd * p, then the Adam update of g
    """

    def __init__(self, params, beta1=0.9, beta2=0.98, eps=1e-8, weight_decay=0.0,
                 decoupled: bool = True, decay_to_init: bool = False):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.weight_decay, self.decoupled = weight_decay, decoupled
        self.decay = _Decay(params, weight_decay, decay_to_init)
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params, grads, lr: float) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        # Bias corrections folded into one step size and one denominator scale.
        step_size = lr / (1 - b1 ** self.t)
        denom_scale = 1 / np.sqrt(1 - b2 ** self.t)
        for name, p in params.items():
            g, m, v = grads[name], self.m[name], self.v[name]
            if not self.decoupled:
                g = self.decay.coupled(name, p, g)
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            if self.decoupled:
                self.decay.decoupled(name, p, lr)
            denom = np.sqrt(v)
            denom *= denom_scale
            denom += self.eps
            p -= step_size * (m / denom)

    def state_dict(self) -> dict:
        """Everything a resumed run needs: arrays keyed 'm.<param>' and 'v.<param>', and the step."""
        state = {"t": self.t, **{f"m.{k}": a for k, a in self.m.items()},
                 **{f"v.{k}": a for k, a in self.v.items()}}
        if self.decay.initial is not None:
            state.update({f"init.{k}": a for k, a in self.decay.initial.items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        for k in self.m:
            self.m[k][...] = state[f"m.{k}"]
            self.v[k][...] = state[f"v.{k}"]
            if self.decay.initial is not None:
                self.decay.initial[k][...] = state[f"init.{k}"]


AdamW = Adam  # the default form (decoupled=True) is AdamW


class SGD:
    """SGD with heavy-ball momentum and L2 weight decay added to the gradient, as torch.optim.SGD."""

    def __init__(self, params, momentum=0.0, weight_decay=0.0, decay_to_init: bool = False):
        self.momentum, self.weight_decay = momentum, weight_decay
        self.decay = _Decay(params, weight_decay, decay_to_init)
        self.t = 0
        self.buf = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params, grads, lr: float) -> None:
        self.t += 1
        for name, p in params.items():
            g = self.decay.coupled(name, p, grads[name])
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
        if self.decay.initial is not None:
            state.update({f"init.{k}": a for k, a in self.decay.initial.items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        for k in self.buf:
            self.buf[k][...] = state[f"buf.{k}"]
            if self.decay.initial is not None:
                self.decay.initial[k][...] = state[f"init.{k}"]


class Noise:
    """Gaussian noise on the gradients (before the update) or the weights (after it).

    The noise of step t is drawn from its own stream, SeedSequence(seed, spawn_key=(t,)): a pure
    function of the step, so a resumed run draws exactly what an uninterrupted one would.
    """

    def __init__(self, seed: np.random.SeedSequence, grad_std: float = 0.0, weight_std: float = 0.0):
        self.seed, self.grad_std, self.weight_std = seed, grad_std, weight_std

    def _rng(self, step: int, which: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(
            self.seed.entropy, spawn_key=(*self.seed.spawn_key, step, which)))

    def _add(self, arrays: dict, std: float, rng) -> None:
        for a in arrays.values():
            a += (std * rng.standard_normal(a.shape)).astype(a.dtype, copy=False)

    def perturb_grads(self, grads: dict, step: int) -> None:
        if self.grad_std:
            self._add(grads, self.grad_std, self._rng(step, 0))

    def perturb_weights(self, params: dict, step: int) -> None:
        if self.weight_std:
            self._add(params, self.weight_std, self._rng(step, 1))
