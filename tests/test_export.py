"""A transformer run handed to TransformerLens (grokking.export): the weights in its names and
layouts compute this model's activations and logits by TransformerLens's own formulas, here in
NumPy, and, where transformer_lens is installed, in a HookedTransformer."""

import unittest

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking import ConfigError
from grokking.export import transformer_lens_config, transformer_lens_state_dict
from grokking.transformer import Transformer

try:
    import torch
    import transformer_lens  # noqa: F401
except ImportError:
    transformer_lens = None


def nanda_like(**kw):
    model = Transformer(7, 7, d_model=8, n_heads=2, n_layers=2, d_ff=12, dtype="float64", sequence="x y =",
                        normalization="none", **kw)
    params = model.init_params(np.random.default_rng(0))
    for p in params.values():
        p += 0.1 * np.random.default_rng(1).standard_normal(p.shape)
    return model, params


def transformer_lens_forward(state, cfg, tokens):
    """TransformerLens's HookedTransformer forward (no LayerNorm), written from its documented
    layouts: the activations it names, and the logits."""
    acts = {}
    resid = state["embed.W_E"][tokens] + state["pos_embed.W_pos"][: tokens.shape[1]]
    t = tokens.shape[1]
    for i in range(cfg["n_layers"]):
        b = f"blocks.{i}."
        q, k, v = (np.einsum("bpd,hde->bphe", resid, state[b + f"attn.W_{n}"]) + state[b + f"attn.b_{n}"]
                   for n in "QKV")
        scores = np.einsum("bqhe,bkhe->bhqk", q, k) / np.sqrt(cfg["d_head"])
        scores = np.where(np.tril(np.ones((t, t), dtype=bool)), scores, -np.inf)
        pattern = np.exp(scores - scores.max(-1, keepdims=True))
        pattern /= pattern.sum(-1, keepdims=True)
        z = np.einsum("bhqk,bkhe->bqhe", pattern, v)
        resid = resid + np.einsum("bqhe,hed->bqd", z, state[b + "attn.W_O"]) + state[b + "attn.b_O"]
        post = np.maximum(resid @ state[b + "mlp.W_in"] + state[b + "mlp.b_in"], 0)
        resid = resid + post @ state[b + "mlp.W_out"] + state[b + "mlp.b_out"]
        acts.update({b + "attn.hook_q": q, b + "attn.hook_pattern": pattern, b + "attn.hook_z": z,
                     b + "mlp.hook_post": post, b + "hook_resid_post": resid})
    return resid[:, -1] @ state["unembed.W_U"] + state["unembed.b_U"], acts


class Export(unittest.TestCase):
    def test_the_layouts_compute_this_models_forward(self):
        for positional in ("learned", "sinusoidal"):
            with self.subTest(positional):
                model, params = nanda_like(positional=positional)
                x, y = np.arange(7).repeat(7), np.tile(np.arange(7), 7)
                logits, cache = model.run_with_cache(params, x, y)
                cfg = transformer_lens_config(model)
                self.assertEqual((cfg["n_ctx"], cfg["d_vocab"], cfg["d_vocab_out"], cfg["d_mlp"]), (3, 8, 7, 12))
                tl_logits, acts = transformer_lens_forward(transformer_lens_state_dict(model, params), cfg,
                                                           model.tokens(x, y))
                np.testing.assert_allclose(tl_logits, logits, rtol=1e-10, atol=1e-12)
                for name, value in acts.items():
                    np.testing.assert_allclose(value, cache[name], rtol=1e-10, atol=1e-12, err_msg=name)

    def test_a_post_layernorm_model_is_refused(self):
        with self.assertRaisesRegex(ConfigError, "only a transformer without LayerNorm"):
            transformer_lens_config(Transformer(7, 7, d_model=8, n_heads=2))

    @unittest.skipIf(transformer_lens is None, "transformer_lens is not installed (an optional extra)")
    def test_a_hooked_transformer_gives_the_same_logits(self):
        from grokking.export import to_transformer_lens

        model, params = nanda_like(positional="learned")
        run = type("Run", (), {"model": model, "params": lambda self: params})()
        tl = to_transformer_lens(run, dtype="float64")
        x, y = np.arange(7).repeat(7), np.tile(np.arange(7), 7)
        logits, cache = tl.run_with_cache(torch.tensor(model.tokens(x, y)))
        ours, our_cache = model.run_with_cache(params, x, y)
        np.testing.assert_allclose(logits[:, -1].detach().numpy(), ours, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(cache["blocks.1.attn.hook_pattern"].numpy(), our_cache["blocks.1.attn.hook_pattern"],
                                   rtol=1e-9, atol=1e-10)


if __name__ == "__main__":
    unittest.main()
