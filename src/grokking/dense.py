"""An MLP on input vectors (``model.type=dense``): the model of the tasks whose rows are vectors
(``tasks.FAMILIES``: sparse parity, the digits, the one-hot sums), as Merrill et al. 2023 (one
hidden ReLU layer on +-1 bits) and Omnigrok (Liu et al. 2023: 64-200-200-10 on images) use it.

    h_1 = act(x @ W1 + b1)
    h_k = act(h_{k-1} @ W_k + b_k)        k = 2..n_layers
    logits = h_L @ W_out + b_out

Built from ``grokking.layers``; a batch is cut into the fixed chunks of ``engine.eval_slices``,
whose gradients are added in chunk order, so a run gives the same bytes on any number of threads.
The first layer is a true matrix (not a table looked up by token), so Muon orthogonalizes it like
the hidden ones. ``operand_embedding`` is W1: one row per input, what each input writes into the
hidden layer (for sparse parity, the weight on each bit).
"""

from __future__ import annotations

import numpy as np

from .engine import Batch, add_in_order, eval_slices
from .layers import (HookPoints, Loss, activation, activation_backward, init_params, linear, linear_backward,
                     mean_over_chunks, new_grads)
from .parallel import THREADS


class DenseMLP:
    uses_rng = False
    embeddings = ()  # no table looked up by token

    def __init__(self, n_inputs: int, n_classes: int, d_hidden: int = 256, n_layers: int = 1,
                 activation: str = "relu", init_scale: float = 1.0, dtype: str = "float32", init: str = "normal",
                 loss: str = "softmax", loss_dtype: str = ""):
        self.n_tokens, self.n_classes, self.d_hidden, self.n_layers = n_inputs, n_classes, d_hidden, n_layers
        self.activation, self.init_scale, self.init = activation, init_scale, init
        self.dtype = np.dtype(dtype)
        self.loss = Loss(loss, loss_dtype, dtype)

    def param_shapes(self) -> dict:
        widths = [self.n_tokens] + [self.d_hidden] * self.n_layers
        shapes = {}
        for k in range(1, self.n_layers + 1):
            shapes[f"W{k}"], shapes[f"b{k}"] = (widths[k - 1], widths[k]), (widths[k],)
        shapes["W_out"], shapes["b_out"] = (self.d_hidden, self.n_classes), (self.n_classes,)
        return shapes

    def init_params(self, rng: np.random.Generator) -> dict:
        """By ``layers.init_params``: weights by ``draw_weight`` (init_scale times the fan-in
        scaling: Omnigrok's large initialization is init_scale 8 with init=uniform), biases 0."""
        return init_params(self.param_shapes(), rng, self.init_scale, self.init, self.dtype)

    # -- forward ------------------------------------------------------------------------------
    def _forward(self, params, x, run=None):
        """Logits and, per layer, (its input, what its activation's backward needs)."""
        a = np.asarray(x, dtype=self.dtype)
        saved = []
        for k in range(1, self.n_layers + 1):
            z = linear(a, params[f"W{k}"], params[f"b{k}"])
            if run is not None:
                z = run(f"blocks.{k - 1}.mlp.hook_pre", z).copy()  # the activation works in place
            out, keep = activation(self.activation, z, np.empty_like(z))
            if run is not None:
                out = run(f"blocks.{k - 1}.mlp.hook_post", out)
            saved.append((a, keep))
            a = out
        return linear(a, params["W_out"], params["b_out"]), a, saved

    def logits(self, params, x, y=None) -> np.ndarray:
        x = np.asarray(x)
        return np.concatenate(THREADS.map(lambda s: self._forward(params, x[s])[0], eval_slices(len(x))))

    def evaluate(self, params, x, y, labels):
        x, labels = np.asarray(x), np.asarray(labels)

        def chunk(s):
            return self.loss(self._forward(params, x[s])[0], labels[s])[:2]

        return mean_over_chunks(THREADS.map(chunk, eval_slices(len(labels))), len(labels))

    # -- backward -----------------------------------------------------------------------------
    def _chunk(self, params, x, labels, scale):
        logits, top, saved = self._forward(params, x)
        loss_sum, correct, dlogits = self.loss(logits, labels, scale)
        grads = {}
        da, grads["W_out"], grads["b_out"] = linear_backward(top, params["W_out"], dlogits)
        for k in range(self.n_layers, 0, -1):
            a_in, keep = saved[k - 1]
            dz = activation_backward(self.activation, keep, da)
            da, grads[f"W{k}"], grads[f"b{k}"] = linear_backward(a_in, params[f"W{k}"], dz)
        return loss_sum, correct, grads

    def loss_and_grads(self, params, batch: Batch, rng=None):
        """Mean loss, accuracy and gradients on one batch (``models.Model``)."""
        scale = 1.0 / len(batch)
        parts = THREADS.map(lambda s: self._chunk(params, batch.x[s], batch.labels[s], scale),
                            eval_slices(len(batch)))
        grads = new_grads(params, self.dtype)
        for name in grads:
            add_in_order(grads[name], [p[2][name] for p in parts])
        return (*mean_over_chunks(parts, len(batch)), grads)

    # -- reading the network ------------------------------------------------------------------
    def operand_embedding(self, params) -> np.ndarray:
        """W1: a row per input, what it writes into the first hidden layer."""
        return params["W1"]

    @property
    def activation_names(self) -> tuple[str, ...]:
        return tuple(f"blocks.{k}.mlp.hook_{w}" for k in range(self.n_layers) for w in ("pre", "post"))

    def run_with_cache(self, params, x, y=None, hooks=None, names=None):
        """(logits, {name: activation}): each hidden layer's pre- and post-activation, (rows, d_hidden)."""
        run = HookPoints(self.activation_names, hooks, names)
        return self._forward(params, np.asarray(x), run)[0], run.cache
