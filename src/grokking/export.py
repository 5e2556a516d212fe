"""Hand a transformer run to the tools researchers already use: TransformerLens.

    from grokking import open_run
    from grokking.export import to_transformer_lens
    model = to_transformer_lens(open_run("runs/nanda"))   # a HookedTransformer with the run's weights
    logits, cache = model.run_with_cache(torch.tensor(run.model.tokens(x, y)))

Only models without LayerNorm (``model.normalization=none``, Nanda et al.'s) map exactly:
TransformerLens's blocks are pre-LN, and this framework's default transformer is post-LN (Power et
al.'s), which no HookedTransformer configuration computes. Sinusoidal positions become the learned
table ``W_pos`` with the same values; the attention biases, which this model has none of, are zero.
torch and transformer_lens are optional (``pip install -e ".[lens]"``: TransformerLens before 4.0,
which removed HookedTransformer) and imported here only.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError


def transformer_lens_config(model) -> dict:
    """The HookedTransformerConfig fields of ``model`` (a ``transformer.Transformer``)."""
    if getattr(model, "normalization", None) != "none":
        raise ConfigError("export: only a transformer without LayerNorm (model.normalization=none) maps onto "
                          "TransformerLens, whose blocks are pre-LN; this one is post-LN")
    return {"n_layers": model.n_layers, "d_model": model.d_model, "n_ctx": model.seq_len,
            "d_head": model.d_head, "n_heads": model.n_heads, "d_mlp": model.d_ff,
            "d_vocab": model.vocab_size, "d_vocab_out": model.n_classes, "act_fn": "relu",
            "normalization_type": None, "positional_embedding_type": "standard"}


def transformer_lens_state_dict(model, params: dict) -> dict[str, np.ndarray]:
    """The parameters under TransformerLens's names and layouts (float64 arrays): W_Q/W_K/W_V
    (heads, d_model, d_head), W_O (heads, d_head, d_model), W_in/W_out, W_E, W_pos, W_U, zero biases."""
    transformer_lens_config(model)  # refuses what does not map
    h, dh, d = model.n_heads, model.d_head, model.d_model
    a = lambda name: np.asarray(params[name], dtype=np.float64)  # noqa: E731
    state = {"embed.W_E": a("embed"),
             "pos_embed.W_pos": np.asarray(model._positions(params), dtype=np.float64)[:model.seq_len],
             "unembed.W_U": a("W_out"), "unembed.b_U": np.zeros(model.n_classes)}
    for i in range(model.n_layers):
        p, b = f"l{i}.", f"blocks.{i}."
        qkv = a(p + "W_qkv").reshape(d, 3, h, dh)  # columns: q, k, v, each with its heads side by side
        for j, name in enumerate("QKV"):
            state[b + f"attn.W_{name}"] = qkv[:, j].transpose(1, 0, 2)
            state[b + f"attn.b_{name}"] = np.zeros((h, dh))
        state[b + "attn.W_O"] = a(p + "W_o").reshape(h, dh, d)
        state[b + "attn.b_O"] = np.zeros(d)
        state.update({b + "mlp.W_in": a(p + "W_ff1"), b + "mlp.b_in": a(p + "b_ff1"),
                      b + "mlp.W_out": a(p + "W_ff2"), b + "mlp.b_out": a(p + "b_ff2")})
    return state


def to_transformer_lens(run, params: dict | None = None, dtype: str = "float32"):
    """A ``HookedTransformer`` holding ``params`` (default: the run's final ones) of ``run`` (an
    ``open_run`` result); its logits at the last position are this model's."""
    try:
        import torch
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    except ImportError:
        raise ConfigError("export: needs torch and TransformerLens 2 or 3, whose HookedTransformer 4.0 removed "
                          "(pip install -e '.[lens]')") from None
    params = run.params() if params is None else params
    cfg = HookedTransformerConfig(**transformer_lens_config(run.model), dtype=getattr(torch, dtype), device="cpu")
    tl = HookedTransformer(cfg)
    state = {k: torch.tensor(v, dtype=cfg.dtype) for k, v in transformer_lens_state_dict(run.model, params).items()}
    missing, unexpected = tl.load_state_dict(state, strict=False)
    weights = [k for k in missing if not k.endswith(("IGNORE", "mask"))]  # buffers TransformerLens makes itself
    if weights or unexpected:
        raise ConfigError(f"export: TransformerLens expects other weights (missing {weights}, unexpected {unexpected})")
    return tl.eval()
