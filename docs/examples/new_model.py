"""A new model in one file: forward code from the shared layers, and one line in the registry.

The "sum of embeddings" network: each operand has its own embedding of width d_hidden (the rows
of one table ``embed``: x's, then y's), and the answer is read from their sum through one activation,

    logits = act(E[x] + E[p + y] + b1) @ W_out + b_out

(Gromov 2023's analysable network is this with the quadratic activation). It meets the model
contract (``grokking.models.Model``) with the layers of ``grokking.layers`` and the chunking of
``grokking.engine``, and the contract test checks it like the built-in models, with no test of its
own (tests/test_models_contract.py loads this file):

    import grokking
    from grokking.models import MODELS
    import new_model  # this file
    MODELS["embed_sum"] = new_model.build   # the one line: model.type=embed_sum is now allowed
"""

from __future__ import annotations

import numpy as np

from grokking.engine import Batch, add_in_order, eval_slices
from grokking.layers import (HookPoints, Loss, activation, activation_backward, embedding, embedding_backward,
                             init_params, linear, linear_backward, mean_over_chunks, new_grads)
from grokking.parallel import THREADS


class EmbedSum:
    """logits = act(E[x] + E[n_tokens + y] + b1) @ W_out + b_out."""

    uses_rng = False
    embeddings = ("embed",)  # looked up by token: Muon leaves it to AdamW

    def __init__(self, n_tokens, n_classes, d_hidden=128, activation="relu", init_scale=1.0, dtype="float32",
                 loss="softmax", loss_dtype=""):
        self.n_tokens, self.n_classes, self.d_hidden, self.activation = n_tokens, n_classes, d_hidden, activation
        self.init_scale, self.dtype = init_scale, np.dtype(dtype)
        self.cross_entropy = Loss(loss, loss_dtype, dtype)

    def init_params(self, rng):
        # layers.init_params draws by the contract's names: embed ~ N(0, s^2), W_out by draw_weight, biases 0.
        shapes = {"embed": (2 * self.n_tokens, self.d_hidden), "b1": (self.d_hidden,),
                  "W_out": (self.d_hidden, self.n_classes), "b_out": (self.n_classes,)}
        return init_params(shapes, rng, self.init_scale, "normal", self.dtype)

    def _forward(self, params, x, y, run=None):
        run = run or (lambda name, value: value)
        e = params["embed"]
        z = run("blocks.0.mlp.hook_pre", embedding(e, x) + embedding(e, y + self.n_tokens) + params["b1"])
        a, saved = activation(self.activation, z.copy(), np.empty_like(z))
        a = run("blocks.0.mlp.hook_post", a)
        return linear(a, params["W_out"], params["b_out"]), a, saved

    def _chunk(self, params, x, y, labels, scale):
        """One fixed chunk's loss sum, number correct and gradients."""
        logits, a, saved = self._forward(params, x, y)
        loss_sum, correct, dlogits = self.cross_entropy(logits, labels, scale)
        da, dw_out, db_out = linear_backward(a, params["W_out"], dlogits)
        dz = activation_backward(self.activation, saved, da)
        dembed = embedding_backward(np.concatenate([dz, dz]), np.concatenate([x, y + self.n_tokens]),
                                    params["embed"])
        return loss_sum, correct, {"embed": dembed, "b1": dz.sum(axis=0), "W_out": dw_out, "b_out": db_out}

    def loss_and_grads(self, params, batch: Batch, rng=None):
        # Chunks fixed by the batch alone, their gradients added in chunk order: the same bytes on
        # any number of threads.
        scale = 1.0 / len(batch)
        parts = THREADS.map(lambda s: self._chunk(params, batch.x[s], batch.y[s], batch.labels[s], scale),
                            eval_slices(len(batch)))
        grads = new_grads(params, self.dtype)
        for name in grads:
            add_in_order(grads[name], [p[2][name] for p in parts])
        return (*mean_over_chunks(parts, len(batch)), grads)

    def logits(self, params, x, y):
        x, y = np.asarray(x), np.asarray(y)
        return np.concatenate(THREADS.map(lambda s: self._forward(params, x[s], y[s])[0], eval_slices(len(x))))

    def evaluate(self, params, x, y, labels):
        logits, labels = self.logits(params, x, y), np.asarray(labels)
        parts = [self.cross_entropy(logits[s].copy(), labels[s])[:2] for s in eval_slices(len(labels))]
        return mean_over_chunks(parts, len(labels))

    def operand_embedding(self, params):
        return np.concatenate([params["embed"][:self.n_tokens], params["embed"][self.n_tokens:]], axis=1)

    activation_names = ("blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post")

    def run_with_cache(self, params, x, y, hooks=None, names=None):
        run = HookPoints(self.activation_names, hooks, names)
        return self._forward(params, np.asarray(x), np.asarray(y), run)[0], run.cache


def build(m, n_tokens, n_classes):
    """The builder ``models.MODELS`` holds: the model from the model config (config.ModelConfig)."""
    return EmbedSum(n_tokens, n_classes, d_hidden=m.d_hidden, activation=m.activation, init_scale=m.init_scale,
                    dtype=m.dtype, loss=m.loss, loss_dtype=m.loss_dtype)
