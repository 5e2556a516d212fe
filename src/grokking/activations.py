"""Interventions on a model's named activations (``Model.run_with_cache``), so that an ablation is a
few lines:

    from grokking import activations as act
    loss, acc = act.loss_with(model, params, table.x, table.y, table.labels,
                              hooks={"blocks.0.attn.hook_z": act.ablate_heads([1, 3])})

A hook is fn(value, name) -> replacement or None (``layers.HookPoints``). The frequency
interventions read an activation over the whole table of a modular task, rows in the table's order
(x-major, as ``tasks.build_table`` lists them), and use ``analysis``'s Fourier conventions.
"""

from __future__ import annotations

import numpy as np

from . import analysis


def loss_with(model, params, x, y, labels, hooks=None) -> tuple[float, float]:
    """Cross-entropy (softmax, float64) and accuracy of the model's answers with ``hooks`` applied."""
    logits, _ = model.run_with_cache(params, x, y, hooks=hooks, names=())
    labels = np.asarray(labels)
    return analysis.cross_entropy(logits, labels), float(np.mean(np.argmax(logits, axis=1) == labels))


def zero(value, name):
    """Replace the activation by zeros (zero ablation)."""
    return np.zeros_like(value)


def mean_ablate(value, name):
    """Replace each row by the mean over the rows (mean ablation)."""
    return np.broadcast_to(value.mean(axis=0, keepdims=True), value.shape).copy()


def ablate_heads(heads):
    """A hook for an attention activation with a heads axis (hook_z: axis 2; hook_pattern and
    hook_attn_scores: axis 1) that zeroes the given heads."""
    def hook(value, name):
        axis = 2 if name.endswith("hook_z") or name.endswith(("hook_q", "hook_k", "hook_v")) else 1
        out = value.copy()
        index = [slice(None)] * out.ndim
        index[axis] = list(heads)
        out[tuple(index)] = 0
        return out
    return hook


def neuron_frequencies(keys, keep: bool = True, position: int = -1):
    """A hook for an MLP activation over the whole p x p table (``mlp.hook_pre``/``hook_post``;
    for a transformer at sequence ``position``) that keeps only the components at the frequencies
    ``keys`` (and the mean) of every neuron as a function of (a, b), or removes them
    (``analysis.keep_frequencies_2d``): Nanda et al.'s test of which frequencies the network uses."""
    def hook(value, name):
        out = value.copy()
        part = out if out.ndim == 2 else out[:, position]
        part[...] = analysis.keep_frequencies_2d(part, keys, keep)
        return out
    return hook
