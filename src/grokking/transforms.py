"""Gradient transforms: stages between a step's gradients and the optimizer.

Each training step runs ``loss_and_grads``, then every enabled transform in the order of
``TRANSFORMS``, each changing the gradients in place, then the optimizer. A transform that keeps
state between steps (a filter's running average) returns it from ``state_dict``; the run saves it
in checkpoint.npz and hands it back to ``load_state_dict`` on resume, so a resumed run stays
byte-identical to an uninterrupted one.

Adding a transform is one class and one entry in ``TRANSFORMS`` (a builder that reads the config
and returns the transform, or None when the config leaves it off), plus its test:

    class Clip:
        def __init__(self, max_norm): ...
        def __call__(self, grads, params, step): ...     # change grads in place
        def state_dict(self): return {}                  # arrays and numbers, keyed by name
        def load_state_dict(self, state): pass

``WeightNoise`` is not a gradient transform: it perturbs the weights after the optimizer's update.
"""

from __future__ import annotations

import numpy as np


def step_rng(seed: np.random.SeedSequence, *key: int) -> np.random.Generator:
    """A generator that depends only on (stream, step[, which]): a resumed run draws what an
    uninterrupted one would, with no generator state to checkpoint."""
    return np.random.default_rng(np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, *key)))


def _add_noise(arrays: dict, std: float, rng: np.random.Generator) -> None:
    for a in arrays.values():
        a += (std * rng.standard_normal(a.shape)).astype(a.dtype, copy=False)


class GradNoise:
    """Gaussian noise of standard deviation ``std`` added to every gradient (Power et al. Fig. 2).
    Step t draws from SeedSequence(seed, spawn_key=(t, 0)), so it keeps no state."""

    def __init__(self, seed: np.random.SeedSequence, std: float):
        self.seed, self.std = seed, std

    def __call__(self, grads: dict, params: dict, step: int) -> None:
        _add_noise(grads, self.std, step_rng(self.seed, step, 0))

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class WeightNoise:
    """Gaussian noise of standard deviation ``std`` added to every weight after each update."""

    def __init__(self, seed: np.random.SeedSequence, std: float):
        self.seed, self.std = seed, std

    def __call__(self, params: dict, step: int) -> None:
        if self.std:
            _add_noise(params, self.std, step_rng(self.seed, step, 1))


class GrokfastEMA:
    """Grokfast's EMA filter (Lee et al. 2024): mu <- alpha mu + (1 - alpha) g, then g <- g + lambda mu.
    As the official code, mu starts at the first gradient. State: mu, in float64."""

    def __init__(self, alpha: float, lamb: float):
        self.alpha, self.lamb = alpha, lamb
        self.mu = None

    def __call__(self, grads: dict, params: dict, step: int) -> None:
        if self.mu is None:
            self.mu = {k: g.astype(np.float64) for k, g in grads.items()}
        for k, g in grads.items():
            mu = self.mu[k]
            mu *= self.alpha
            mu += (1 - self.alpha) * g
            g += (self.lamb * mu).astype(g.dtype, copy=False)

    def state_dict(self) -> dict:
        return {} if self.mu is None else {f"mu.{k}": v for k, v in self.mu.items()}

    def load_state_dict(self, state: dict) -> None:
        mu = {k[len("mu."):]: np.array(v, dtype=np.float64) for k, v in state.items() if k.startswith("mu.")}
        self.mu = mu or None


class GrokfastMA:
    """Grokfast's moving-average filter: g <- g + lambda * mean of the last ``window`` gradients
    (this one included), applied once the window is full, as the official code's default warmup.
    The mean is a running sum in float64 (add the newest, subtract the one leaving). State: the
    window's gradients, oldest first, and the running sum; a window of w keeps w copies of the
    gradients, so it makes checkpoint.npz about w times the size of the parameters."""

    def __init__(self, window: int, lamb: float):
        self.window, self.lamb = window, lamb
        self.history: list[dict] = []
        self.total = None

    def __call__(self, grads: dict, params: dict, step: int) -> None:
        if self.total is None:
            self.total = {k: np.zeros(g.shape, np.float64) for k, g in grads.items()}
        self.history.append({k: g.copy() for k, g in grads.items()})
        for k, g in grads.items():
            self.total[k] += g
        if len(self.history) > self.window:
            for k, old in self.history.pop(0).items():
                self.total[k] -= old
        if len(self.history) == self.window:
            for k, g in grads.items():
                g += (self.lamb / self.window * self.total[k]).astype(g.dtype, copy=False)

    def state_dict(self) -> dict:
        state = {"count": len(self.history)}
        if self.total is not None:
            state.update({f"total.{k}": v for k, v in self.total.items()})
            for i, past in enumerate(self.history):
                state.update({f"past{i}.{k}": v for k, v in past.items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        def part(prefix):
            return {k[len(prefix):]: np.array(v) for k, v in state.items() if k.startswith(prefix)}

        self.total = part("total.") or None
        self.history = [part(f"past{i}.") for i in range(int(state.get("count", 0)))]


class PerpGrad:
    """⊥Grad (Prieto et al. 2025): per parameter tensor, the gradient without its component along
    the weights, g - (theta . g / theta . theta) theta, so a step cannot simply scale the weights up;
    ``rescale`` gives it back the norm of g, as the official code does."""

    def __init__(self, rescale: bool = True):
        self.rescale = rescale

    def __call__(self, grads: dict, params: dict, step: int) -> None:
        for k, g in grads.items():
            theta = params[k].astype(np.float64)
            g64 = g.astype(np.float64)
            norm_theta = float(np.vdot(theta, theta))
            if norm_theta == 0:
                continue
            perp = g64 - (float(np.vdot(theta, g64)) / norm_theta) * theta
            if self.rescale:
                norm_perp = float(np.sqrt(np.vdot(perp, perp)))
                if norm_perp > 0:
                    perp *= float(np.sqrt(np.vdot(g64, g64))) / norm_perp
            g[...] = perp

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _grokfast(config, seed):
    o = config.optimizer
    if o.grokfast == "ema":
        return GrokfastEMA(o.grokfast_alpha, o.grokfast_lambda)
    if o.grokfast == "ma":
        return GrokfastMA(o.grokfast_window, o.grokfast_lambda)
    return None


GROKFAST = ("", "ema", "ma")

class ConstantNorm:
    """Omnigrok's constraint (Liu et al. 2023): after each update, all weights together are rescaled
    to the total L2 norm they had at initialization, which ``model.init_scale`` sets. Like weight
    noise it acts on the weights after the optimizer, and keeps no state (the target is recomputed
    from the seed's initialization on resume)."""

    def __init__(self, initial_params: dict):
        self.target = self.norm(initial_params)

    @staticmethod
    def norm(params: dict) -> float:
        return float(np.sqrt(sum(float(np.vdot(p.astype(np.float64), p.astype(np.float64)))
                                 for p in params.values())))

    def __call__(self, params: dict, step: int) -> None:
        norm = self.norm(params)
        if norm > 0:
            for p in params.values():
                p *= np.asarray(self.target / norm, dtype=p.dtype)


# name -> builder(config, noise seed) returning the transform or None; applied in this order:
# noise is part of the gradient a filter sees, and ⊥Grad comes last, so that what reaches the
# optimizer has no component along the weights.
TRANSFORMS = {
    "grad_noise": lambda config, seed: GradNoise(seed, config.optimizer.grad_noise)
    if config.optimizer.grad_noise else None,
    "grokfast": _grokfast,
    "perp_grad": lambda config, seed: PerpGrad() if config.optimizer.perp_grad else None,
}


def lr_factor(config) -> float:
    """What the learning rate is multiplied by: 1 / (1 + lambda) with optimizer.grokfast_scale_lr,
    so that a Grokfast run and its baseline take steps of the same size on a steady gradient (the
    filter amplifies it by 1 + lambda)."""
    o = config.optimizer
    return 1.0 / (1.0 + o.grokfast_lambda) if o.grokfast and o.grokfast_scale_lr else 1.0


class Transforms:
    """The enabled transforms of a run, in order, with one state dict for the checkpoint."""

    def __init__(self, config, seed: np.random.SeedSequence):
        built = ((name, build(config, seed)) for name, build in TRANSFORMS.items())
        self.stages = {name: t for name, t in built if t is not None}

    def __call__(self, grads: dict, params: dict, step: int) -> None:
        for transform in self.stages.values():
            transform(grads, params, step)

    def state_dict(self) -> dict:
        """Every stage's state, keyed 'transform.<name>.<key>'."""
        return {f"transform.{name}.{k}": v for name, t in self.stages.items() for k, v in t.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        for name, t in self.stages.items():
            prefix = f"transform.{name}."
            t.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
