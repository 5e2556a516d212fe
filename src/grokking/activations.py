"""Interventions on a model's named activations (``Model.run_with_cache``), so that an ablation is a
few lines:

    from grokking import activations as act
    loss, acc = act.loss_with(model, params, table.x, table.y, table.labels,
                              hooks={"blocks.0.attn.hook_z": act.ablate_heads([1, 3])})

A hook is fn(value, name) -> replacement or None (``layers.HookPoints``). The frequency
interventions use ``analysis``'s Fourier conventions and keep the mean either way (keeping no
frequency leaves the mean): ``neuron_frequencies`` reads an activation over the whole table of a
modular task, rows in the table's order (x-major, as ``tasks.build_table`` lists them);
``embed_frequencies`` reads hook_embed, whose rows look up the operand embedding at x and y.
"""

from __future__ import annotations

import numpy as np

from . import analysis


def loss_with(model, params, x, y, labels, hooks=None) -> tuple[float, float]:
    """Cross-entropy (softmax, float64) and accuracy of the model's answers with ``hooks`` applied.
    A row is correct when the answer's logit is the row's largest, ties included, as ``evaluate``
    counts it (argmax would take the first of tied classes: all of them where every neuron is dead)."""
    logits, _ = model.run_with_cache(params, x, y, hooks=hooks, names=())
    labels = np.asarray(labels)
    correct = logits[np.arange(len(labels)), labels] == logits.max(axis=1)
    return analysis.cross_entropy(logits, labels), float(np.mean(correct))


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


def neuron_frequencies(keys, keep: bool = True, position: int = -1, cross: bool = False):
    """A hook for an MLP activation over the whole p x p table (``mlp.hook_pre``/``hook_post``;
    for a transformer at sequence ``position``) that keeps only the components at the frequencies
    ``keys`` (and the mean) of every neuron as a function of (a, b), or removes them
    (``analysis.keep_frequencies_2d``): Nanda et al.'s test of which frequencies the network uses.
    cross=True also keeps (or removes) the products of two different key frequencies."""
    def hook(value, name):
        out = value.copy()
        part = out if out.ndim == 2 else out[:, position]
        part[...] = analysis.keep_frequencies_2d(part, keys, keep, cross)
        return out
    return hook


def _operand_positions(seq: int) -> tuple[int, int]:
    # The MLP's hook_embed is (E[x], E[y]); the transformer's sequences are "x y =" or "x op y =".
    return (0, 2) if seq == 4 else (0, 1)


def embed_frequencies(keys, x, y, p: int, keep: bool = True):
    """A hook for ``hook_embed`` (rows, seq, d) over the rows (x, y) that keeps only the constant and
    the frequencies ``keys`` of the operand embedding (keep=False: removes ``keys``, keeps the rest).

    The operand embedding is the table E (p, d) that the rows look up, a function over Z_p: it is
    read off the activation at the operand positions (0 and 1: the MLP, the transformer's "x y =";
    0 and 2: "x op y ="), where every operand 0..p-1 must occur; each column is projected with
    ``analysis.keep_frequencies``, and the projection looked up again at x and y. The other
    positions (op, "=") are left as they are. On the transformer this acts on the token embedding
    alone, before the positions are added."""
    x, y = np.asarray(x), np.asarray(y)

    def hook(value, name):
        if value.ndim != 3 or len(value) != len(x):
            raise ValueError(f"embed_frequencies needs (rows of x, seq, d) on {name!r}, not {value.shape}")
        px, py = _operand_positions(value.shape[1])
        table = np.zeros((p, value.shape[2]))
        seen = np.zeros(p, dtype=bool)
        for pos, tokens in ((px, x), (py, y)):
            table[tokens] = value[:, pos]  # every row of a token holds the same E[token]
            seen[tokens] = True
        if not seen.all():
            raise ValueError(f"embed_frequencies needs every operand 0..{p - 1} among x and y; "
                             f"missing {np.flatnonzero(~seen)[:10].tolist()}")
        projected = analysis.keep_frequencies(table, keys, keep)
        out = value.astype(np.float64)
        out[:, px], out[:, py] = projected[x], projected[y]
        return out

    return hook
