"""Optimizers that update NumPy parameters in place: AdamW (decoupled weight decay) and SGD.

Both take the learning rate of the current step from ``learning_rate`` (linear warmup, as in
Power et al.: the first ``warmup_steps`` updates ramp the rate up to its target).
"""

from __future__ import annotations

import numpy as np


def learning_rate(step: int, lr: float, warmup_steps: int) -> float:
    """Rate for update number ``step`` (1-based): lr * step / warmup_steps during warmup, then lr."""
    if warmup_steps > 0 and step < warmup_steps:
        return lr * step / warmup_steps
    return lr


class AdamW:
    """Adam with weight decay decoupled from the gradient (Loshchilov & Hutter), as torch.optim.AdamW:

        p <- p * (1 - lr * wd);  p <- p - lr * m_hat / (sqrt(v_hat) + eps)
    """

    def __init__(self, params, beta1=0.9, beta2=0.98, eps=1e-8, weight_decay=0.0):
        self.beta1, self.beta2, self.eps, self.weight_decay = beta1, beta2, eps, weight_decay
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
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            if self.weight_decay:
                p *= 1 - lr * self.weight_decay
            denom = np.sqrt(v)
            denom *= denom_scale
            denom += self.eps
            p -= step_size * (m / denom)

    def state_dict(self) -> dict:
        """Everything a resumed run needs: arrays keyed 'm.<param>' and 'v.<param>', and the step."""
        return {"t": self.t, **{f"m.{k}": a for k, a in self.m.items()},
                **{f"v.{k}": a for k, a in self.v.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        for k in self.m:
            self.m[k][...] = state[f"m.{k}"]
            self.v[k][...] = state[f"v.{k}"]


class SGD:
    """SGD with heavy-ball momentum and L2 weight decay added to the gradient, as torch.optim.SGD."""

    def __init__(self, params, momentum=0.0, weight_decay=0.0):
        self.momentum, self.weight_decay = momentum, weight_decay
        self.t = 0
        self.buf = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params, grads, lr: float) -> None:
        self.t += 1
        for name, p in params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * p
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
        return {"t": self.t, **{f"buf.{k}": a for k, a in self.buf.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        for k in self.buf:
            self.buf[k][...] = state[f"buf.{k}"]
