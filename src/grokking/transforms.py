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


def _step_rng(seed: np.random.SeedSequence, step: int, which: int) -> np.random.Generator:
    """A generator that depends only on (stream, step): a resumed run draws what an uninterrupted
    one would, with no generator state to checkpoint."""
    return np.random.default_rng(np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, step, which)))


def _add_noise(arrays: dict, std: float, rng: np.random.Generator) -> None:
    for a in arrays.values():
        a += (std * rng.standard_normal(a.shape)).astype(a.dtype, copy=False)


class GradNoise:
    """Gaussian noise of standard deviation ``std`` added to every gradient (Power et al. Fig. 2).
    Step t draws from SeedSequence(seed, spawn_key=(t, 0)), so it keeps no state."""

    def __init__(self, seed: np.random.SeedSequence, std: float):
        self.seed, self.std = seed, std

    def __call__(self, grads: dict, params: dict, step: int) -> None:
        _add_noise(grads, self.std, _step_rng(self.seed, step, 0))

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
            _add_noise(params, self.std, _step_rng(self.seed, step, 1))


# name -> builder(config, noise seed) returning the transform or None; applied in this order.
TRANSFORMS = {
    "grad_noise": lambda config, seed: GradNoise(seed, config.optimizer.grad_noise)
    if config.optimizer.grad_noise else None,
}


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
