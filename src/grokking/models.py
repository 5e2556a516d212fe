"""The model registry: ``model.type`` names a builder that makes the model from the model config.

Every model has ``init_params(rng)``, ``loss_and_grads(params, batch, rng=None)`` (mean loss,
batch accuracy or None, gradients), ``evaluate(params, x, y, labels)``, ``logits(params, x, y)``,
``operand_embedding(params)`` (one row per operand token), ``uses_rng`` (whether a step draws
randomness from ``rng``) and ``dtype``.
"""

from __future__ import annotations

from .model import MLP


def _mlp(m, n_tokens: int, n_classes: int):
    return MLP(n_tokens, n_classes, d_embed=m.d_embed, d_hidden=m.d_hidden, n_layers=m.n_layers,
               activation=m.activation, init_scale=m.init_scale, dtype=m.dtype, init=m.init,
               loss=m.loss, loss_dtype=m.loss_dtype, input=m.input)


def _transformer(m, n_tokens: int, n_classes: int):
    from .transformer import Transformer

    return Transformer(n_tokens, n_classes, d_model=m.d_model, n_layers=m.n_layers, n_heads=m.n_heads,
                       dropout=m.dropout, init_scale=m.init_scale, dtype=m.dtype, positional=m.positional,
                       init=m.init, position_scale=m.position_scale, loss=m.loss, loss_dtype=m.loss_dtype)


# model.type -> a builder from the model config. A model has init_params(rng),
# loss_and_grads(params, batch, rng=None), evaluate(params, x, y, labels), logits(params, x, y),
# operand_embedding(params), uses_rng and dtype. A new model is one builder here plus its tests; config validation reads
# the names from this dict.
MODELS = {"mlp": _mlp, "transformer": _transformer}
