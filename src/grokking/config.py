"""One typed config tree, the built-in presets, JSON config files and dotted overrides.

Precedence: dataclass defaults < preset < --config file < --override section.key=value.
Every field carries a one-line help text; unknown keys fail with the closest valid names.
"""

import dataclasses
import difflib
import json
import math
import typing
from dataclasses import dataclass, field

from .checkpoint import snapshot_steps
from .errors import ConfigError
from .engine import LOSS_DTYPES, LOSSES
from .loggers import parse_loggers
from .measures import MEASURES, parse_measures
from .model import ACTIVATIONS, DTYPES, INITS, INPUTS
from .models import MODELS, VECTOR_MODELS
from .optimizer import DECAY_TOWARD, OPTIMIZERS
from .transformer import NORMALIZATIONS, POSITIONAL, SEQUENCES
from .tasks import FAMILIES, check as check_task
from .transforms import GROKFAST


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TaskConfig:
    family: str = _f("table", "table (a binary operation's complete table), sum (x_1+...+x_k mod p), parity "
                              "(sparse parity) or digits (scikit-learn's 8x8 digits); all but table need "
                              "model.type=dense")
    operation: str = _f("x+y", "table: binary operation, e.g. x+y, x/y, x^3+xy^2+y (mod p) or x.y (S_n)")
    p: int = _f(97, "table, sum: modulus of the arithmetic operations (prime for x/y and its variant)")
    n: int = _f(5, "table: degree of the symmetric group S_n for the permutation operations (2..6)")
    k: int = _f(3, "sum: number of operands (2..8); parity: number of bits whose parity is the label")
    bits: int = _f(40, "parity: number of random input bits")
    samples: int = _f(2000, "parity: number of rows drawn (training and validation together)")
    data_seed: int = _f(0, "parity: seed of the drawn rows (the split comes from training.seed)")
    train_fraction: float = _f(0.3, "share of the whole table used for training, in (0, 1)")


@dataclass
class ModelConfig:
    type: str = _f("mlp", "architecture: mlp (embedding MLP), transformer (Power et al. App. A.1.2), or dense "
                          "(an MLP on input vectors, for task.family sum, parity and digits)")
    d_embed: int = _f(128, "mlp: width of the learned operand embeddings")
    input: str = _f("embedding", "mlp: embedding (learned, shared by x and y), onehot (the pair's one-hot "
                                 "vectors side by side straight into the first layer, as Gromov 2023) or twohot "
                                 "(one-hot(x) + one-hot(y) in one vector, as Prieto et al. 2025's code)")
    d_hidden: int = _f(256, "mlp, dense: width of each hidden layer")
    n_layers: int = _f(1, "mlp, dense: hidden layers; transformer: blocks (the paper used 2)")
    activation: str = _f("relu", "mlp, dense: hidden activation, relu, quadratic (z^2) or tanh")
    d_model: int = _f(128, "transformer: residual width")
    n_heads: int = _f(4, "transformer: attention heads (must divide d_model)")
    dropout: float = _f(0.0, "transformer: residual dropout probability, in [0, 1)")
    positional: str = _f("sinusoidal", "transformer: sinusoidal or learned position embeddings")
    position_scale: float = _f(1.0, "transformer: scale of the sinusoidal table (1: the official code's, "
                                    "norm sqrt(d_model / 2) per position)")
    init_scale: float = _f(1.0, "scale of the initial weights (std * sqrt(fan_in))")
    d_ff: int = _f(0, "transformer: width of the feed-forward layers (0: 4 * d_model)")
    normalization: str = _f("post", "transformer: post (LayerNorm after each residual add, Power et al.) or "
                                    "none (no LayerNorm, Nanda et al. 2023)")
    sequence: str = _f("x op y =", "transformer: the input tokens, 'x op y =' (Power et al.) or 'x y =' "
                                   "(Nanda et al. 2023, no operation token)")
    init: str = _f("normal", "initial weights: normal, N(0, init_scale^2 / fan_in), or uniform, "
                             "U(+-init_scale / sqrt(fan_in)) as PyTorch's nn.Linear; embeddings N(0, init_scale^2); "
                             "transformer also nanda (Nanda et al.'s code: N(0, init_scale^2 / d_model), the "
                             "output layer N(0, init_scale^2 / vocabulary))")
    dtype: str = _f("float32", "float32 or float64")
    loss: str = _f("softmax", "the loss: softmax cross-entropy, stablemax cross-entropy (Prieto et al. 2025: "
                              "s(z) = z + 1 for z >= 0, 1 / (1 - z) below), or mse (the mean squared error "
                              "against one-hot targets, as Omnigrok and Liu et al. 2022)")
    loss_dtype: str = _f("", "the precision of the loss: float32, float64 (e.g. a float64 softmax over a "
                             "float32 model), or empty for the model's dtype")


@dataclass
class OptimizerConfig:
    name: str = _f("adamw", "adamw (decoupled weight decay), adam (L2 added to the gradient), sgd, or muon "
                            "(orthogonalized momentum for the hidden matrices, adamw for the rest)")
    lr: float = _f(1e-3, "peak learning rate")
    weight_decay: float = _f(1.0, "weight decay: decoupled (adamw) or L2 (adam, sgd)")
    decay_toward: str = _f("zero", "what weight decay pulls toward: zero or init (the initial weights)")
    grad_noise: float = _f(0.0, "std of Gaussian noise added to every gradient")
    weight_noise: float = _f(0.0, "std of Gaussian noise added to every weight after each update")
    beta1: float = _f(0.9, "AdamW first-moment decay")
    beta2: float = _f(0.98, "AdamW second-moment decay")
    eps: float = _f(1e-8, "AdamW denominator epsilon")
    momentum: float = _f(0.0, "SGD momentum")
    muon_lr: float = _f(0.02, "Muon: peak learning rate of the matrices it updates (lr is the AdamW part's)")
    muon_momentum: float = _f(0.95, "Muon: momentum of the matrices' gradients (Nesterov)")
    warmup_steps: int = _f(10, "linear learning-rate warmup over the first updates")
    grokfast: str = _f("", "Grokfast gradient filter (Lee et al. 2024): ema, ma, or empty for none")
    grokfast_alpha: float = _f(0.98, "Grokfast ema: decay of the gradients' running average")
    grokfast_lambda: float = _f(2.0, "Grokfast: weight of the filtered gradient added to the gradient "
                                     "(the paper's ema used 2, its ma 5)")
    grokfast_window: int = _f(100, "Grokfast ma: how many recent gradients are averaged")
    grokfast_scale_lr: bool = _f(False, "Grokfast: divide the learning rate by 1 + grokfast_lambda, "
                                        "for a like-for-like comparison with the unfiltered baseline")
    constant_norm: bool = _f(False, "Omnigrok: after each update, rescale all weights to their total norm "
                                    "at initialization (set by model.init_scale)")
    perp_grad: bool = _f(False, "⊥Grad (Prieto et al. 2025): remove each tensor's gradient component "
                                "along its weights (rescaled to the gradient's norm) before the optimizer")


@dataclass
class TrainingConfig:
    steps: int = _f(100_000, "number of optimization steps (the budget)")
    batch_size: int = _f(512, "minibatch size; 0 or >= the training split means full batch")
    seed: int = _f(0, "seed of the split, the initialization and the batch order")
    eval_interval: int = _f(100, "evaluate the whole splits every this many steps (and log-spaced before)")


@dataclass
class OutputConfig:
    curves: bool = _f(True, "draw curves.png at the end (needs matplotlib)")
    progress: bool = _f(True, "show a progress bar while training (on a terminal)")
    checkpoint_interval: int = _f(500, "save parameters, optimizer and random state every this many "
                                  "steps and at the end (0: only at the end), for --resume")
    loggers: str = _f("", "trackers that receive every evaluation, comma-separated: tensorboard, wandb "
                          "(optional extras; W&B offline unless WANDB_MODE is set); empty: none")
    snapshots: str = _f("", "steps after which the parameters are kept in snapshots/ for analysis "
                            "(grokking.open_run): log:N (N steps log-spaced over the budget), a comma-separated "
                            "list of steps, or empty: none")
    measures: str = _f("", "progress measures written to measures.csv at every evaluation, comma-separated: "
                           f"{', '.join(MEASURES)}, or all (those that apply to the task); empty: none")


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = tuple(f.name for f in dataclasses.fields(Config))


# -- presets ------------------------------------------------------------------------------------
# A preset is the defaults (the paper's optimizer: AdamW lr 1e-3, weight decay 1, betas 0.9/0.98,
# 10 warmup steps, minibatch 512, 1e5 steps) plus the fields that differ, each with its reason.
# Every baseline is its grokking preset with weight_decay 0: the pair isolates the intervention
# that matters most (Power et al. Fig. 2 left). Budgets were measured on a 2-core CPU (README).

_FAST_MLP = {
    # 10x the paper's rate: the small MLP tolerates it and groks ~10x sooner, in seconds on a CPU.
    "optimizer": {"lr": 1e-2},
    # Full batch: no sampling noise, and one fixed one-hot operand matrix serves every step.
    "training": {"batch_size": 0, "eval_interval": 50},
}

_MOD_ADD = {
    # 30% of the 9,409 equations: little enough that memorizing comes long before generalizing.
    "task": {"operation": "x+y", "p": 97, "train_fraction": 0.3},
    # Half the default width: addition needs little, and each step costs half as much.
    "model": {"d_hidden": 128},
    "optimizer": _FAST_MLP["optimizer"],
    # Validation reaches 99% after about 1,500 steps with weight decay; twice that shows it stays.
    "training": {**_FAST_MLP["training"], "steps": 3000},
}

_PERM_S5 = {
    # Half of the 14,400 products of S5: composition is harder to learn than addition.
    "task": {"operation": "x.y", "n": 5, "train_fraction": 0.5},
    "optimizer": _FAST_MLP["optimizer"],
    # Validation reaches 99% after about 1,000 steps with weight decay.
    "training": {**_FAST_MLP["training"], "steps": 3000},
}


def _with_weight_decay(base: dict, weight_decay: float) -> dict:
    return {**base, "optimizer": {**base["optimizer"], "weight_decay": weight_decay}}


# Figure 1 of Power et al.: x/y mod 97 with half the table, their transformer and optimizer (the
# defaults: AdamW lr 1e-3, minibatch 512). Weight decay 1 (their Fig. 1 used none) brings the
# generalization from ~1e6 steps into reach of a CPU.
_FIG1_TRANSFORMER = {
    "task": {"operation": "x/y", "p": 97, "train_fraction": 0.5},
    # Learned positions, not the official code's sinusoidal table: weight decay 1 shrinks the token
    # embeddings to about 1/16 of the fixed sinusoidal vectors, and such runs lose and regain what they
    # learned again and again; with learned positions, which decay too, they stay generalized
    # (docs/reproduction.md, "Why the transformer lost what it learned").
    "model": {"type": "transformer", "n_layers": 2, "positional": "learned"},
    "training": {"steps": 15_000, "eval_interval": 250},
}

# Nanda et al. 2023 ("Progress measures for grokking via mechanistic interpretability"), as their code
# trains it: x+y mod 113 on 30% of the pairs, full batch, AdamW lr 1e-3, weight decay 1, betas
# (0.9, 0.98) (the defaults), a one-layer ReLU transformer with d_model 128, 4 heads, d_mlp 512, no
# LayerNorm, learned positions, "x y =" and their initialization, the loss in float64 as their
# cross_entropy_high_precision. Their 40k full-batch steps.
_NANDA = {
    "task": {"operation": "x+y", "p": 113, "train_fraction": 0.3},
    "model": {"type": "transformer", "n_layers": 1, "d_model": 128, "n_heads": 4, "d_ff": 512,
              "normalization": "none", "sequence": "x y =", "positional": "learned", "init": "nanda",
              "loss_dtype": "float64"},
    "training": {"batch_size": 0, "steps": 40_000, "eval_interval": 100},
    # What their analysis reads: the embedding's Fourier norms, the restricted and excluded losses,
    # the weight norms.
    "output": {"measures": "fourier,circuit,norms"},
}

# Merrill, Tsilivis and Shukla 2023 ("A tale of two circuits"): sparse parity of 3 of 40 bits, 1,000
# training samples (of 2,000 drawn: the other 1,000 are the held-out split), one hidden ReLU layer of
# width 1,000 with PyTorch's default (uniform) initialization, SGD with batch 32, weight decay 0.01,
# lr 0.1 (the rate of the third-party CPU run of papers.md; 1,000 samples fit by step 1,000). The
# loss is the softmax cross-entropy over the two labels; no warmup, as plain SGD.
_PARITY = {
    "task": {"family": "parity", "bits": 40, "k": 3, "samples": 2000, "train_fraction": 0.5},
    "model": {"type": "dense", "d_hidden": 1000, "init": "uniform"},
    "optimizer": {"name": "sgd", "lr": 0.1, "weight_decay": 0.01, "warmup_steps": 0},
    # Validation reaches 99% between steps 7,000 and 13,000 on seeds 0-2 (73 s for 60,000 steps).
    "training": {"batch_size": 32, "steps": 20_000, "eval_interval": 250},
    "output": {"measures": "parity_bits,movement"},
}

# Omnigrok (Liu, Michaud, Tegmark 2023) on images, with scikit-learn's 8x8 digits instead of MNIST:
# 1,000 training images (of 1,797), a 64-200-200-10 ReLU MLP, MSE against one-hot targets, AdamW
# lr 1e-3 with PyTorch's betas (0.9, 0.999) and no warmup, batch 200, the initial weights PyTorch's
# uniform ones scaled by 8 (biases start at 0 here; theirs are drawn and scaled too), weight decay
# 0.01. About 2 ms a step: 80,000 steps in under 3 minutes on one core. (Weight decay 0.1 tells the
# story ten times sooner but hardly delays: validation 0.9 comes 1.5 times after the fit.)
_DIGITS = {
    "task": {"family": "digits", "train_fraction": 1000 / 1797},
    "model": {"type": "dense", "d_hidden": 200, "n_layers": 2, "init": "uniform", "init_scale": 8.0, "loss": "mse"},
    "optimizer": {"lr": 1e-3, "weight_decay": 0.01, "beta2": 0.999, "warmup_steps": 0},
    "training": {"batch_size": 200, "steps": 80_000, "eval_interval": 500},
    "output": {"measures": "norms"},
}

PRESETS: dict[str, tuple[str, dict]] = {
    "mod_add_grokking": ("x+y mod 97, 30% data, AdamW weight decay 1: memorizes, then generalizes",
                         _with_weight_decay(_MOD_ADD, 1.0)),
    "mod_add_baseline": ("mod_add_grokking without weight decay: memorizes, never generalizes",
                         _with_weight_decay(_MOD_ADD, 0.0)),
    "perm_s5_grokking": ("composition in S5, 50% data, AdamW weight decay 1: memorizes, then generalizes",
                         _with_weight_decay(_PERM_S5, 1.0)),
    "perm_s5_baseline": ("perm_s5_grokking without weight decay: memorizes, never generalizes",
                         _with_weight_decay(_PERM_S5, 0.0)),
    "fig1_div_transformer": ("Figure 1: x/y mod 97, 50% data, the paper's transformer with learned positions, AdamW wd 1",
                             _FIG1_TRANSFORMER),
    "nanda_mod_add": ("Nanda et al. 2023: x+y mod 113, 30% data, their 1-layer transformer without LayerNorm, "
                      "full batch, AdamW wd 1", _NANDA),
    "sparse_parity": ("Merrill et al. 2023: parity of 3 of 40 bits, 1,000 training samples, a 1,000-wide ReLU "
                      "MLP, SGD batch 32, weight decay 0.01: fits, then generalizes", _PARITY),
    "digits_omnigrok": ("Omnigrok on scikit-learn's digits: 1,000 images, a 64-200-200-10 MLP initialized 8x "
                        "larger, MSE, AdamW wd 0.01: fits, then generalizes as the weight norm falls "
                        "(the digits extra)", _DIGITS),
}


# -- reading values -----------------------------------------------------------------------------

def _field_types(section_cls) -> dict:
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_cls)}


_SECTION_TYPES = {name: _field_types(typing.get_type_hints(Config)[name]) for name in SECTIONS}
ALL_KEYS = tuple(f"{s}.{k}" for s, keys in _SECTION_TYPES.items() for k in keys)


def _closest(key: str) -> str:
    close = difflib.get_close_matches(key, ALL_KEYS, n=3, cutoff=0.5)
    if not close:  # fall back to the keys of the section the user meant, if any
        close = [k for k in ALL_KEYS if k.split(".")[0] == key.split(".")[0]][:6]
    return ", ".join(close) if close else ", ".join(SECTIONS)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _parse_text(key: str, text: str, tp):
    """Convert an override's text to the field's type."""
    try:
        if tp is bool:
            low = text.strip().lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            try:
                return int(text)
            except ValueError:
                value = float(text)  # accept 1e5 and 2000.0, which are whole numbers
                if not value.is_integer():
                    raise
                return int(value)
        if tp is float:
            return float(text)
        return text
    except ValueError:
        raise ConfigError(f"{key}: {text!r} is not a valid {_type_name(tp)}") from None


def _check_json_value(key: str, value, tp):
    """Accept a JSON value for a field of type tp (ints stand for floats; nothing else converts)."""
    ok = (isinstance(value, bool) if tp is bool else
          isinstance(value, int) and not isinstance(value, bool) if tp is int else
          isinstance(value, (int, float)) and not isinstance(value, bool) if tp is float else
          isinstance(value, str))
    if not ok:
        raise ConfigError(f"{key}: {json.dumps(value)} is not a valid {_type_name(tp)}")
    return float(value) if tp is float else value


def _merge(config: Config, tree: dict, source: str) -> None:
    """Set the fields named by a nested dict {section: {key: value}} on config, checking each."""
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: expected an object of sections ({', '.join(SECTIONS)})")
    for section, values in tree.items():
        if section == "meta":  # versions recorded in a run's config.json; not settings
            continue
        if section not in _SECTION_TYPES:
            raise ConfigError(f"{source}: unknown section {section!r}; valid sections: {', '.join(SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must be an object of key: value")
        for key, value in values.items():
            dotted = f"{section}.{key}"
            if key not in _SECTION_TYPES[section]:
                raise ConfigError(f"{source}: unknown key {dotted!r}; closest valid keys: {_closest(dotted)}")
            tp = _SECTION_TYPES[section][key]
            setattr(getattr(config, section), key, _check_json_value(f"{source}: {dotted}", value, tp))


def parse_override(text: str) -> tuple[str, str, object]:
    """'section.key=value' -> (section, key, typed value)."""
    dotted, sep, raw = text.partition("=")
    dotted = dotted.strip()
    if not sep or "." not in dotted:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. training.steps=2000")
    section, key = dotted.split(".", 1)
    if section not in _SECTION_TYPES or key not in _SECTION_TYPES[section]:
        raise ConfigError(f"unknown override key {dotted!r}; closest valid keys: {_closest(dotted)}")
    return section, key, _parse_text(dotted, raw.strip(), _SECTION_TYPES[section][key])


def load_config_file(path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid JSON: {err.msg} "
                          f"at line {err.lineno} column {err.colno}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {err}") from None


def validate(config: Config) -> Config:
    """Raise ConfigError for values no run can use; return the config for chaining."""
    t, m, o, tr = config.task, config.model, config.optimizer, config.training
    for section in SECTIONS:  # inf and nan pass every comparison below that they should fail
        for key, tp in _SECTION_TYPES[section].items():
            value = getattr(getattr(config, section), key)
            if tp is float and not math.isfinite(value):
                raise ConfigError(f"{section}.{key} must be a finite number, got {value}")
    check_task(t)
    rules = [
        (0 < t.train_fraction < 1, f"task.train_fraction must be in (0, 1), got {t.train_fraction}"),
        (m.type in MODELS, f"model.type must be one of {', '.join(MODELS)}, got {m.type!r}"),
        ((m.type in VECTOR_MODELS) == FAMILIES[t.family].vectors,
         f"model.type={m.type} does not read the rows of task.family={t.family}: " +
         (f"they are input vectors, which model.type={'/'.join(sorted(VECTOR_MODELS))} reads"
          if FAMILIES[t.family].vectors else "model.type=dense reads input vectors, which only task.family="
          f"{'/'.join(f for f, v in FAMILIES.items() if v.vectors)} gives")),
        (m.d_model >= 1 and m.n_heads >= 1 and m.d_model % m.n_heads == 0,
         f"model.n_heads must divide model.d_model, got {m.n_heads} and {m.d_model}"),
        (0 <= m.dropout < 1, f"model.dropout must be in [0, 1), got {m.dropout}"),
        (m.positional in POSITIONAL,
         f"model.positional must be one of {', '.join(POSITIONAL)}, got {m.positional!r}"),
        (m.d_embed >= 1 and m.d_hidden >= 1 and m.n_layers >= 1,
         "model.d_embed, model.d_hidden and model.n_layers must be >= 1"),
        (m.activation in ACTIVATIONS,
         f"model.activation must be one of {', '.join(ACTIVATIONS)}, got {m.activation!r}"),
        (m.init_scale > 0, f"model.init_scale must be > 0, got {m.init_scale}"),
        (m.position_scale > 0, f"model.position_scale must be > 0, got {m.position_scale}"),
        (m.init in INITS + ("nanda",), f"model.init must be one of {', '.join(INITS)} or nanda, got {m.init!r}"),
        (m.init != "nanda" or m.type == "transformer", "model.init=nanda is a transformer setting (Nanda et "
                                                       "al.'s code); the MLP takes normal or uniform"),
        (m.normalization in NORMALIZATIONS,
         f"model.normalization must be one of {', '.join(NORMALIZATIONS)}, got {m.normalization!r}"),
        (m.sequence in SEQUENCES,
         f"model.sequence must be one of {', '.join(repr(q) for q in SEQUENCES)}, got {m.sequence!r}"),
        (m.d_ff >= 0, f"model.d_ff must be >= 0 (0: 4 * d_model), got {m.d_ff}"),
        (m.input in INPUTS, f"model.input must be one of {', '.join(INPUTS)}, got {m.input!r}"),
        (m.input == "embedding" or m.type == "mlp", f"model.input={m.input} is an MLP setting (model.type=mlp); "
                                                     f"model.type={m.type} reads its input its own way"),
        (m.dtype in DTYPES, f"model.dtype must be one of {', '.join(DTYPES)}, got {m.dtype!r}"),
        (m.loss in LOSSES, f"model.loss must be one of {', '.join(LOSSES)}, got {m.loss!r}"),
        (m.loss_dtype in LOSS_DTYPES, "model.loss_dtype must be float32, float64 or empty (the model's "
                                      f"dtype), got {m.loss_dtype!r}"),
        (o.name in OPTIMIZERS, f"optimizer.name must be one of {', '.join(OPTIMIZERS)}, got {o.name!r}"),
        (o.decay_toward in DECAY_TOWARD,
         f"optimizer.decay_toward must be one of {', '.join(DECAY_TOWARD)}, got {o.decay_toward!r}"),
        (o.grad_noise >= 0 and o.weight_noise >= 0, "optimizer.grad_noise and optimizer.weight_noise must be >= 0"),
        (o.lr > 0, f"optimizer.lr must be > 0, got {o.lr}"),
        (o.weight_decay >= 0, f"optimizer.weight_decay must be >= 0, got {o.weight_decay}"),
        (0 <= o.beta1 < 1 and 0 <= o.beta2 < 1, "optimizer.beta1 and optimizer.beta2 must be in [0, 1)"),
        (o.eps > 0, f"optimizer.eps must be > 0, got {o.eps}"),
        (0 <= o.momentum < 1, f"optimizer.momentum must be in [0, 1), got {o.momentum}"),
        (o.muon_lr > 0, f"optimizer.muon_lr must be > 0, got {o.muon_lr}"),
        (0 <= o.muon_momentum < 1, f"optimizer.muon_momentum must be in [0, 1), got {o.muon_momentum}"),
        (o.warmup_steps >= 0, f"optimizer.warmup_steps must be >= 0, got {o.warmup_steps}"),
        (o.grokfast in GROKFAST, f"optimizer.grokfast must be ema, ma or empty, got {o.grokfast!r}"),
        (0 <= o.grokfast_alpha < 1, f"optimizer.grokfast_alpha must be in [0, 1), got {o.grokfast_alpha}"),
        (o.grokfast_lambda >= 0, f"optimizer.grokfast_lambda must be >= 0, got {o.grokfast_lambda}"),
        (o.grokfast_window >= 1, f"optimizer.grokfast_window must be >= 1, got {o.grokfast_window}"),
        (tr.steps >= 1, f"training.steps must be >= 1, got {tr.steps}"),
        (tr.batch_size >= 0, f"training.batch_size must be >= 0 (0 means full batch), got {tr.batch_size}"),
        (tr.eval_interval >= 1, f"training.eval_interval must be >= 1, got {tr.eval_interval}"),
        (tr.seed >= 0, f"training.seed must be >= 0, got {tr.seed}"),
        (config.output.checkpoint_interval >= 0, "output.checkpoint_interval must be >= 0 (0: only at "
                                                 f"the end), got {config.output.checkpoint_interval}"),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigError(message)
    parse_loggers(config.output.loggers)
    parse_measures(config.output.measures, t)
    snapshot_steps(config.output.snapshots, tr.steps)
    return config


def preset_tree(name: str) -> dict:
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown preset {name!r}{hint}; available: {', '.join(PRESETS)}")
    return PRESETS[name][1]


def resolve_config(preset: str | None = None, config_path=None, overrides=()) -> Config:
    """Defaults < preset < config file < overrides, validated."""
    config = Config()
    if preset is not None:
        _merge(config, preset_tree(preset), f"preset {preset}")
    if config_path is not None:
        _merge(config, load_config_file(config_path), f"config file {str(config_path)!r}")
    return _overridden(config, overrides)


def config_from_dict(tree: dict, overrides=()) -> Config:
    """A config from a tree such as a run's config.json, with ``overrides`` applied, validated."""
    config = Config()
    _merge(config, tree, "config")
    return _overridden(config, overrides)


def _overridden(config: Config, overrides) -> Config:
    """``config`` with each 'section.key=value' of ``overrides`` set, validated."""
    for text in overrides:
        section, key, value = parse_override(text)
        setattr(getattr(config, section), key, value)
    return validate(config)


def describe_keys() -> str:
    """Every settable key with its type, default and help, for --list-keys."""
    lines = []
    defaults = Config()
    for section in SECTIONS:
        for f in dataclasses.fields(getattr(defaults, section)):
            tp = _SECTION_TYPES[section][f.name]
            lines.append(f"{section}.{f.name:<16} {_type_name(tp):<6} {str(f.default):<10} {f.metadata['help']}")
    return "\n".join(lines)
