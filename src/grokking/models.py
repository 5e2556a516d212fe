"""The model contract (``Model``) and the registry: ``model.type`` names a builder that makes the
model from the model config.

A new model is a class that meets ``Model``, built from ``grokking.layers``, and one builder in
``MODELS``; config validation reads the names from that dict, and tests/test_models_contract.py
checks every entry of it (finite differences, threads, resume, evaluate against the loss).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .engine import Batch
from .model import MLP


class Model(Protocol):
    """What the training loop, the measures, the figures and Muon ask of a model.

    Parameters: a dict of arrays in ``dtype``, in the fixed order of ``init_params``, which the
    optimizers' states, checkpoints and gradient buffers follow. Their names say what they are, and
    ``layers.init_params`` draws them by these names: ``embed`` is the token embedding and ``pos``
    learned positions (both N(0, init_scale^2)), ``W_out`` the output layer, other weights ``W...``
    (a block's with its prefix, ``l0.W_qkv``), biases ``b...``, LayerNorm gains ``..._g``. The norms
    measure writes ``norm_<name>``; the figures plot ``norm_embed`` and ``norm_W_out``.

    ``embeddings`` names the tables looked up by token: ``embed``, ``pos``, and the first layer of
    an MLP that takes one-hot inputs. Muon leaves them and ``W_out`` to AdamW and orthogonalizes
    every other 2-D parameter.

    Work and threads: a model cuts every batch into chunks fixed by the batch alone, never by the
    number of threads, runs them on ``parallel.THREADS`` (with single-threaded BLAS inside
    ``engine_threads``) and adds their results in a fixed order, so each method gives the same bytes
    on any number of threads. What a model derives from a batch may be kept in ``Batch.plans``.
    """

    dtype: np.dtype
    uses_rng: bool  # whether loss_and_grads draws randomness (dropout); the training loop passes None otherwise
    embeddings: tuple[str, ...]

    def init_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Initial parameters, drawn from ``rng`` alone."""

    def loss_and_grads(self, params: dict, batch: Batch, rng: np.random.Generator | None = None):
        """(mean loss, accuracy or None where the step skips it, gradients): the gradients of the
        mean loss, one per parameter, views in the order of ``params`` of one new buffer."""

    def evaluate(self, params: dict, x, y, labels) -> tuple[float, float]:
        """Mean loss and accuracy over any number of rows, without dropout: the loss of
        ``loss_and_grads`` when a step draws nothing, the loss of ``logits``."""

    def logits(self, params: dict, x, y) -> np.ndarray:
        """(rows, n_classes), in ``dtype``."""

    def operand_embedding(self, params: dict) -> np.ndarray:
        """One row per operand token, as the model reads it: what the Fourier measures and the
        embedding figure read."""

    @property
    def activation_names(self) -> tuple[str, ...]:
        """The names of ``run_with_cache``'s activations, in forward order, TransformerLens's where
        they apply (``hook_embed``, ``blocks.<i>.attn.hook_pattern``, ``blocks.<i>.mlp.hook_post``,
        ``blocks.<i>.hook_resid_post``...)."""

    def run_with_cache(self, params: dict, x, y, hooks=None, names=None) -> tuple[np.ndarray, dict]:
        """(logits, {name: activation}) over any rows, rows first, by a plain forward pass apart from
        the training engine (whose logits it matches to rounding); ``hooks`` {name: fn(value,
        name)} may replace any activation downstream, ``names`` (an iterable or a predicate) keeps
        only some: ``layers.HookPoints``."""


def _mlp(m, n_tokens: int, n_classes: int) -> Model:
    return MLP(n_tokens, n_classes, d_embed=m.d_embed, d_hidden=m.d_hidden, n_layers=m.n_layers,
               activation=m.activation, init_scale=m.init_scale, dtype=m.dtype, init=m.init,
               loss=m.loss, loss_dtype=m.loss_dtype, input=m.input)


def _transformer(m, n_tokens: int, n_classes: int) -> Model:
    from .transformer import Transformer

    return Transformer(n_tokens, n_classes, d_model=m.d_model, n_layers=m.n_layers, n_heads=m.n_heads,
                       dropout=m.dropout, init_scale=m.init_scale, dtype=m.dtype, positional=m.positional,
                       init=m.init, position_scale=m.position_scale, loss=m.loss, loss_dtype=m.loss_dtype,
                       d_ff=m.d_ff, normalization=m.normalization, sequence=m.sequence)


def _dense(m, n_inputs: int, n_classes: int) -> Model:
    from .dense import DenseMLP

    return DenseMLP(n_inputs, n_classes, d_hidden=m.d_hidden, n_layers=m.n_layers, activation=m.activation,
                    init_scale=m.init_scale, dtype=m.dtype, init=m.init, loss=m.loss, loss_dtype=m.loss_dtype)


# model.type -> a builder of a Model from the model config (config.ModelConfig), the number of
# tokens (or, for a model of vectors, the width of its input) and the number of classes.
MODELS = {"mlp": _mlp, "transformer": _transformer, "dense": _dense}
# The models that read input vectors (the task families whose tables are vectors); the others read
# operand tokens.
VECTOR_MODELS = {"dense"}
