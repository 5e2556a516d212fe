"""PyTorch models equal to this framework's (the transformer, the dense MLP), built from torch.nn
modules, for the benchmarks and the trajectory comparisons. torch is imported by whoever imports
this module; it is no dependency."""

from __future__ import annotations

import grokking  # noqa: E402,F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np
import torch
from torch import nn

from grokking.transformer import LN_EPS


class _PlainBlock(nn.Module):
    """A block without LayerNorm (model.normalization=none, Nanda et al.'s): h + attn(h), then
    + mlp(.), from nn.MultiheadAttention (no biases) and nn.Linear."""

    def __init__(self, d, heads, d_ff):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, bias=False, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)

    def forward(self, h, src_mask=None, is_causal=True):
        h = h + self.self_attn(h, h, h, attn_mask=src_mask, need_weights=False)[0]
        return h + self.linear2(torch.relu(self.linear1(h)))


def torch_model(model, params, dtype):
    """An nn.Module of the same architecture, holding copies of ``params``."""
    seq_len = model.seq_len
    plain = model.normalization == "none"

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            d = model.d_model
            self.embed = nn.Embedding(model.vocab_size, d)
            self.layers = nn.ModuleList(
                _PlainBlock(d, model.n_heads, model.d_ff) if plain else
                nn.TransformerEncoderLayer(d, model.n_heads, model.d_ff, dropout=0.0, activation="relu",
                                           layer_norm_eps=LN_EPS, batch_first=True, norm_first=False)
                for _ in range(model.n_layers))
            self.out = nn.Linear(d, model.n_classes, bias=False)
            if model.positional == "learned":
                self.pos = nn.Parameter(torch.zeros(seq_len, d))
            else:  # the same table, recomputed here: PE[p, 2i] = sin(p w_i), PE[p, 2i+1] = cos(p w_i)
                p = torch.arange(seq_len, dtype=torch.float64)[:, None]
                w = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
                pe = torch.zeros(seq_len, d, dtype=torch.float64)
                pe[:, 0::2], pe[:, 1::2] = torch.sin(p * w), torch.cos(p * w)
                self.register_buffer("pos", pe)
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq_len))

        def forward(self, tokens):
            h = self.embed(tokens) + self.pos
            for layer in self.layers:
                h = layer(h, src_mask=self.mask, is_causal=True)
            return self.out(h[:, -1])

    net = Net().to(dtype)
    t = lambda a: torch.tensor(np.asarray(a, dtype=np.float64), dtype=dtype)  # noqa: E731
    with torch.no_grad():
        net.embed.weight.copy_(t(params["embed"]))
        if model.positional == "learned":
            net.pos.copy_(t(params["pos"]))
        for i, layer in enumerate(net.layers):
            p = lambda name: params[f"l{i}.{name}"]  # noqa: E731
            attn = layer.self_attn
            attn.in_proj_weight.copy_(t(p("W_qkv").T))  # rows q, k, v; heads contiguous in each
            attn.out_proj.weight.copy_(t(p("W_o").T))
            for bias in (attn.in_proj_bias, attn.out_proj.bias):  # this framework's model has none
                if bias is not None:
                    bias.zero_()
                    bias.requires_grad_(False)
            layer.linear1.weight.copy_(t(p("W_ff1").T))
            layer.linear1.bias.copy_(t(p("b_ff1")))
            layer.linear2.weight.copy_(t(p("W_ff2").T))
            layer.linear2.bias.copy_(t(p("b_ff2")))
            if not plain:
                layer.norm1.weight.copy_(t(p("ln1_g")))
                layer.norm1.bias.copy_(t(p("ln1_b")))
                layer.norm2.weight.copy_(t(p("ln2_g")))
                layer.norm2.bias.copy_(t(p("ln2_b")))
        net.out.weight.copy_(t(params["W_out"].T))
    return net


def torch_params(model, net) -> dict:
    """The module's weights under this framework's names and layouts, as float64 arrays."""
    a = lambda x: x.detach().double().numpy()  # noqa: E731
    out = {"embed": a(net.embed.weight)}
    if model.positional == "learned":
        out["pos"] = a(net.pos)
    for i, layer in enumerate(net.layers):
        out.update({f"l{i}.W_qkv": a(layer.self_attn.in_proj_weight).T,
                    f"l{i}.W_o": a(layer.self_attn.out_proj.weight).T,
                    f"l{i}.W_ff1": a(layer.linear1.weight).T, f"l{i}.b_ff1": a(layer.linear1.bias),
                    f"l{i}.W_ff2": a(layer.linear2.weight).T, f"l{i}.b_ff2": a(layer.linear2.bias)})
        if model.normalization != "none":
            out.update({f"l{i}.ln1_g": a(layer.norm1.weight), f"l{i}.ln1_b": a(layer.norm1.bias),
                        f"l{i}.ln2_g": a(layer.norm2.weight), f"l{i}.ln2_b": a(layer.norm2.bias)})
    out["W_out"] = a(net.out.weight).T
    return out


def torch_dense(model, params, dtype):
    """``model.type=dense`` (grokking.dense.DenseMLP) as nn.Linear layers with the activation
    between them, holding copies of ``params``. Our weights are (inputs, outputs), nn.Linear's
    (outputs, inputs): W is copied transposed."""
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}.get(model.activation)
    if act is None:
        raise ValueError(f"torch_dense: no PyTorch module for activation {model.activation!r}")
    widths = [model.n_tokens] + [model.d_hidden] * model.n_layers
    layers = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), act()]
    net = nn.Sequential(*layers, nn.Linear(model.d_hidden, model.n_classes)).to(dtype)
    t = lambda a: torch.tensor(np.asarray(a, dtype=np.float64), dtype=dtype)  # noqa: E731
    with torch.no_grad():
        for name, linear in zip(dense_names(model), dense_linears(net)):
            linear.weight.copy_(t(params[f"W{name}"].T))
            linear.bias.copy_(t(params[f"b{name}"]))
    return net


def dense_names(model) -> list[str]:
    """The suffixes of our parameter names, layer by layer: W1/b1 ... W_out/b_out."""
    return [str(k) for k in range(1, model.n_layers + 1)] + ["_out"]


def dense_linears(net) -> list:
    return [m for m in net if isinstance(m, nn.Linear)]


def torch_dense_params(model, net) -> dict:
    """torch_dense's weights under this framework's names and layouts, as float64 arrays."""
    out = {}
    for name, linear in zip(dense_names(model), dense_linears(net)):
        out[f"W{name}"] = linear.weight.detach().double().numpy().T
        out[f"b{name}"] = linear.bias.detach().double().numpy()
    return out
