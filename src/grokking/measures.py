"""Progress measures: quantities computed from the weights on the evaluation schedule, written to
measures.csv beside metrics.csv (``output.measures``; definitions in docs/measures.md).

A measure is a function of an evaluation's ``Context`` returning named values (its columns), and
an entry in ``MEASURES`` with the tasks it applies to. Adding one is a function plus its entry
and its test:

    def logit_max(ctx):
        return {"logit_max": float(ctx.train_logits.max())}

    MEASURES["logit_max"] = Measure(logit_max, "the largest training logit")

``output.measures=all`` selects every measure that applies to the task; naming one that does not
apply (Fourier measures on S5) is refused when the config is validated. A measure's values depend
on the weights alone, so a resumed run's measures.csv is byte-identical to an uninterrupted one's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from . import analysis, irreps
from .artifacts import MEASURES_CSV  # noqa: F401 (a run file's name; experiment imports it from here)
from .errors import ConfigError
from .tasks import is_permutation_op, task_name


class Context:
    """What a measure reads at one evaluation. Logits over the whole table are computed once, on
    first use, and shared by every measure that reads them; ``static`` is one dict for the whole
    run, where a measure keeps what does not change between evaluations (index arrays);
    ``initial`` is the parameters the run started from."""

    def __init__(self, model, params: dict, table, train_idx: np.ndarray, task, static: dict | None = None,
                 initial: dict | None = None):
        self.model, self.params, self.table, self.train_idx, self.task = model, params, table, train_idx, task
        self.static = {} if static is None else static
        self.initial = initial

    @cached_property
    def logits(self) -> np.ndarray:
        """(rows of the whole table, classes), in the model's dtype."""
        return self.model.logits(self.params, self.table.x, self.table.y)

    @cached_property
    def train_logits(self) -> np.ndarray:
        return self.logits[self.train_idx]

    def activations(self, *names: str) -> dict[str, np.ndarray]:
        """The model's named activations (``Model.run_with_cache``) over the whole table, computed
        once per evaluation for the names asked so far and shared by the measures that read them."""
        cache = self.__dict__.setdefault("_activations", {})
        missing = [n for n in names if n not in cache]
        if missing:
            cache.update(self.model.run_with_cache(self.params, self.table.x, self.table.y, names=missing)[1])
        return {n: cache[n] for n in names}

    @cached_property
    def train_labels(self) -> np.ndarray:
        return self.table.labels[self.train_idx]

    @cached_property
    def frequency_norms(self) -> np.ndarray:
        """Norm of each frequency 1..p//2 of the operand embedding over Z_p."""
        return analysis.frequency_norms(self.model.operand_embedding(self.params)[:self.task.p])

    @cached_property
    def key_frequencies(self) -> np.ndarray:
        return analysis.key_frequencies(self.frequency_norms)


def fourier(ctx: Context) -> dict:
    norms = ctx.frequency_norms
    row = {"fourier_gini": analysis.gini(norms), "fourier_n90": len(ctx.key_frequencies),
           "fourier_top": int(np.argmax(norms)) + 1}
    row.update({f"freq_norm_{k}": float(v) for k, v in enumerate(norms, start=1)})
    return row


def _by_u(ctx: Context) -> dict:
    """The rows of the table per value of u = a + b or a - b (the table is complete: p rows for each),
    the training rows' u, how many training rows each u has, and the answer of each u."""
    p, t = ctx.task.p, ctx.table
    u = (t.x + t.y) % p if ctx.task.operation == "x+y" else (t.x - t.y) % p
    rows = np.argsort(u, kind="stable")
    u_train = u[ctx.train_idx]
    return {"rows": rows, "u_train": u_train, "counts": np.bincount(u_train, minlength=p),
            "answers": t.labels[rows[::p]]}


def circuit_losses(ctx: Context) -> dict:
    """Nanda et al.'s restricted loss (the logits' constant and key-frequency components of
    a + b or a - b only) and excluded loss (the logits without the key-frequency components), on the
    training split; the key frequencies are the embedding's (at most analysis.MAX_KEYS of them)."""
    if "circuit" not in ctx.static:
        ctx.static["circuit"] = _by_u(ctx)
    s = ctx.static["circuit"]
    keys = ctx.key_frequencies[:analysis.MAX_KEYS]
    restricted = analysis.fourier_components(ctx.logits, s["rows"], np.concatenate([[0], keys]))
    # The restricted logits, like the answer, are a function of u: one row per value of u, each
    # weighted by how many training rows have it.
    per_u = analysis.row_cross_entropy(restricted, s["answers"])
    key_part = restricted - restricted.mean(axis=0)  # without the constant (k = 0)
    excluded = ctx.train_logits - key_part[s["u_train"]]
    return {"restricted_loss": float(s["counts"] @ per_u / len(s["u_train"])),
            "excluded_loss": analysis.cross_entropy(excluded, ctx.train_labels, overwrite=True),
            "n_key_frequencies": len(keys)}


def neurons(ctx: Context) -> dict:
    """Nanda et al.'s neurons by frequency, read from the activations: the last hidden layer (at
    the answer, over the whole table) centered; the share of its variance at the embedding's key
    frequencies, the mean over neurons of the share at each one's strongest frequency, and how many
    distinct strongest frequencies the neurons have."""
    name = [n for n in ctx.model.activation_names if n.endswith("mlp.hook_post")][-1]
    acts = ctx.activations(name)[name]
    acts = np.asarray(acts[:, -1] if acts.ndim == 3 else acts, dtype=np.float64)
    if not np.isfinite(acts).all():  # a diverged run: no shares to speak of
        return {"neuron_key_share": float("nan"), "neuron_top_share": float("nan"), "neuron_n_freqs": 0}
    acts = acts - acts.mean(axis=0)
    variance = (acts ** 2).sum(axis=0)
    live = variance > 0
    if not live.any():  # every neuron constant (dead) over the table
        return {"neuron_key_share": 0.0, "neuron_top_share": 0.0, "neuron_n_freqs": 0}
    shares = analysis.frequency_shares_2d(acts)
    keys = ctx.key_frequencies[:analysis.MAX_KEYS]
    return {"neuron_key_share": float((shares[:, keys - 1].sum(axis=1) * variance).sum() / variance.sum()),
            "neuron_top_share": float(shares[live].max(axis=1).mean()),
            # how many clusters: the distinct strongest frequencies of the neurons that vary
            "neuron_n_freqs": len(np.unique(np.argmax(shares[live], axis=1)))}


def irrep_shares(ctx: Context) -> dict:
    """Chughtai et al.'s share of the embedding per irreducible representation of S_n, the
    counterpart of the Fourier norms: the operand embedding's columns (one row per element, in the
    tasks' numbering; the MLP's E @ W1_x and E @ W1_y side by side, as ``fourier`` reads it)
    projected on each irrep rho's orthonormal basis {sqrt(d_rho / n!) rho_ij(g)}; the share of the
    squared norm in each (not centered: the trivial irrep holds the mean row), and the fewest
    irreps, largest share first, that carry 90% of it. The shares add up to 1 (the irreps' matrix
    entries span every function on the group). On chughtai_s5_irreps's MLP (S5) 74 ms a call, most of
    it the embedding E @ W1 (measured on a shared 2-core machine). The same shares of the
    unembedding (``W_out``'s columns, one per answer) as ``irrep_unembed_share_<irrep>``: Chughtai
    et al. read both ends of the network."""
    n = ctx.task.n
    share = irreps.shares(ctx.model.operand_embedding(ctx.params)[:len(irreps.full_basis(n)[0])], n)
    order = np.argsort(-share, kind="stable")
    carried = np.cumsum(share[order])
    row = {f"irrep_share_{rep.name}": float(v) for rep, v in zip(irreps.irreps(n), share)}
    row["irrep_n90"] = int(np.searchsorted(carried, analysis.KEY_SHARE * carried[-1])) + 1 if carried[-1] > 0 \
        else len(share)
    w_out = ctx.params.get("W_out")
    if w_out is not None:  # the unembedding, one column per answer (an element, in the same numbering)
        unembed = irreps.shares(np.asarray(w_out).T, n)
        row.update({f"irrep_unembed_share_{rep.name}": float(v) for rep, v in zip(irreps.irreps(n), unembed)})
    return row


KEY_SIMILARITY = 0.005  # Chughtai et al.'s key irreps: the logits' cosine with chi_rho(g z^-1) above this


def _by_answer(ctx: Context) -> dict:
    """The table's rows grouped by answer (sorted, with each group's start), the answers of the
    training rows and how many training rows each answer has."""
    labels = ctx.table.labels
    rows = np.argsort(labels, kind="stable")
    present, starts = np.unique(labels[rows], return_index=True)  # reduceat wants no empty group
    train = labels[ctx.train_idx]
    return {"rows": rows, "present": present, "starts": starts, "train": train,
            "counts": np.bincount(train, minlength=ctx.table.n_classes)}


def irrep_circuit(ctx: Context) -> dict:
    """Chughtai et al.'s logits per irrep (their code's ``logit_trace_similarity`` and
    ``logit_excluded_and_restricted_loss``, rep_theory/utils/metrics.py), for each non-trivial irrep
    rho of S_n:

    - T_rho[row, z] = chi_rho(g z^-1), g the row's answer (x.y for composition: their
      tr(rho(x) rho(y) rho(z^-1))), z every class: what the logits are under their Group Composition
      via Representations algorithm, up to a scale;
    - ``irrep_sim_<rho>``: the cosine between the logits centered per row and T_rho, both flattened
      over the whole table and every class (T_rho is centered per row already);
    - ``irrep_restricted_<rho>``: the cross-entropy of the logits' projection on T_rho alone
      (a_rho T_rho, a_rho fitted over the whole table); ``irrep_excluded_<rho>``: of the logits less
      that projection; both over the training split (their restricted loss is over the whole table)
      and in float64;
    - ``irrep_n_key`` key irreps, their rule: cosine above 0.005 (they apply it to the final model;
      here each evaluation's own), and the losses with all of their projections kept or removed
      together (``irrep_key_restricted``, ``irrep_key_excluded``; chance when there is none), and
      ``irrep_logit_explained``, the sum of squared cosines.

    Different irreps' T_rho are orthogonal (the characters are), so the projections add. a_rho and
    the cosines need only each answer's summed logits, (n!, n!), so the cost is a pass over the
    logits and one cross-entropy of the training rows per irrep: on S5 (40%) 73 ms a call, beside the
    whole-table logits that every logit measure shares (0.17 s; measured on a shared 2-core machine)."""
    n, g_count = ctx.task.n, ctx.table.n_classes
    if "irrep_circuit" not in ctx.static:
        ctx.static["irrep_circuit"] = _by_answer(ctx)
    s = ctx.static["irrep_circuit"]
    logits = np.asarray(ctx.logits, dtype=np.float64)
    # Each answer's logits summed over its rows: <L, T_rho> = sum_{g,z} S[g, z] chi(g z^-1).
    sums = np.zeros((g_count, logits.shape[1]))
    sums[s["present"]] = np.add.reduceat(logits[s["rows"]], s["starts"], axis=0)
    row_means = logits.mean(axis=1)
    centered_sq = float(np.sum(logits ** 2) - g_count * np.sum(row_means ** 2))
    # sum_z chi(g z^-1)^2 = n! for every g (orthonormal characters): ||T_rho||^2 = rows * n!
    t_sq = len(logits) * g_count
    tables = irreps.character_tables(n)
    train_logits = logits[ctx.train_idx]
    labels = ctx.train_labels

    def losses(kept):  # kept: (n!, n!) logits of each answer g over the classes z
        restricted = s["counts"] @ analysis.row_cross_entropy(kept, np.arange(g_count)) / len(labels)
        excluded = analysis.cross_entropy(train_logits - kept[s["train"]], labels, overwrite=True)
        return float(restricted), excluded

    row, key, explained = {}, np.zeros((g_count, g_count)), 0.0
    names = []
    for rep, table in zip(irreps.irreps(n), tables):
        if rep.partition == (n,):  # the trivial irrep: constant per row, gone once centered
            continue
        inner = float(np.sum(sums * table))
        sim = float(inner / np.sqrt(centered_sq * t_sq)) if centered_sq > 0 else 0.0
        kept = (inner / t_sq) * table
        restricted, excluded = losses(kept)
        row[f"irrep_sim_{rep.name}"] = sim
        row[f"irrep_restricted_{rep.name}"] = restricted
        row[f"irrep_excluded_{rep.name}"] = excluded
        explained += sim ** 2
        if sim > KEY_SIMILARITY:
            key += kept
            names.append(rep.name)
    row["irrep_n_key"] = len(names)
    row["irrep_key_restricted"], row["irrep_key_excluded"] = losses(key)
    row["irrep_logit_explained"] = float(explained)
    return row


def norms(ctx: Context) -> dict:
    """The L2 norm of each parameter tensor (W_out is the last layer)."""
    return {f"norm_{name}": float(np.sqrt(np.vdot(p, p))) for name, p in ctx.params.items()}


def movement(ctx: Context) -> dict:
    """How far the weights have moved from where the run started: the L2 distance over all
    parameters, that distance over the initial norm, and each tensor's relative distance. The
    hidden progress of a plateau (Barak et al. 2022, Merrill et al. 2023) and the lazy-or-rich
    question (Kumar et al. 2023: lazy training barely leaves its initialization). In float64."""
    moved = total = start = 0.0
    row = {}
    for name, p in ctx.params.items():
        p0 = ctx.initial[name].astype(np.float64)
        d = p.astype(np.float64) - p0
        dd, nn = float(np.vdot(d, d)), float(np.vdot(p0, p0))
        moved, start = moved + dd, start + nn
        row[f"moved_{name}"] = float(np.sqrt(dd / nn)) if nn > 0 else float(np.sqrt(dd))
    total = float(np.sqrt(moved))
    return {"weight_distance": total, "weight_distance_rel": total / float(np.sqrt(start)) if start > 0 else total,
            **row}


def logit_scale(ctx: Context) -> dict:
    """How large the training logits have grown: the root mean square of each row's logits about
    the row's mean, and the median margin of the answer over the best other class."""
    z = ctx.train_logits
    answer = z[np.arange(len(z)), ctx.train_labels].astype(np.float64)
    top2 = np.partition(z, -2, axis=1)[:, -2:].astype(np.float64)  # the second largest, the largest
    best_other = np.where(answer >= top2[:, 1], top2[:, 0], top2[:, 1])
    return {"logit_rms": float(np.sqrt(np.mean(np.var(z, axis=1, dtype=np.float64)))),
            "logit_margin": float(np.median(answer - best_other))}


def softmax_collapse(ctx: Context) -> dict:
    """Prieto et al.'s Softmax Collapse, with a plain float32 softmax of the training logits:
    the share of rows whose loss is exactly 0 (the sum of exponentials equals the answer's term)
    and of rows whose gradient softmax - onehot is exactly 0 in every class."""
    z = np.asarray(ctx.train_logits, dtype=np.float32)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    total = e.sum(axis=1)
    rows, labels = np.arange(len(z)), ctx.train_labels
    zero_loss = (np.log(total) - z[rows, labels]) == 0
    grad = e / total[:, None]
    grad[rows, labels] -= 1
    zero_grad = ~np.any(grad != 0, axis=1)
    return {"sc_zero_loss": float(zero_loss.mean()), "sc_zero_grad": float(zero_grad.mean())}


def _modular(task) -> str | None:
    if task.family != "table" or is_permutation_op(task.operation):
        return "it needs a modular table (operands in Z_p)"
    return None


def _permutation(task) -> str | None:
    return None if task.family == "table" and is_permutation_op(task.operation) else \
        "it needs a permutation table (operands in S_n)"


def _additive(task) -> str | None:
    return None if task.family == "table" and task.operation in ("x+y", "x-y") else \
        "it needs x+y or x-y mod p, whose logits are functions of a + b or a - b"


def _parity(task) -> str | None:
    return None if task.family == "parity" else "it needs a sparse parity task (task.family=parity)"


def parity_bits(ctx: Context) -> dict:
    """Merrill et al. 2023's view of sparse parity: the first layer's weight on the k bits whose
    parity is the label against the others, as the root mean square over those bits of their row
    of W1 (the model's ``operand_embedding``: one row per input), and how far those rows have moved
    from the run's initial weights (the same RMS of the difference). A plateau that hides progress
    shows the relevant rows growing and moving while the accuracy stands still. With one hidden
    layer, also how many neurons the network leans on (``active_neurons``): the fewest whose size,
    the norm of a neuron's input weights times that of its output weights, carry 90% of the
    neurons' total; Merrill et al.'s sparse circuit is a few neurons growing while the rest decay.
    In float64."""
    w = np.asarray(ctx.model.operand_embedding(ctx.params), dtype=np.float64)
    w0 = np.asarray(ctx.model.operand_embedding(ctx.initial), dtype=np.float64)
    k = ctx.task.k

    def rms(rows):
        return float(np.sqrt(np.mean(np.sum(rows ** 2, axis=1)))) if len(rows) else 0.0

    row = {"relevant_weight": rms(w[:k]), "irrelevant_weight": rms(w[k:]),
           "relevant_moved": rms(w[:k] - w0[:k]), "irrelevant_moved": rms(w[k:] - w0[k:])}
    row["relevant_ratio"] = row["relevant_weight"] / row["irrelevant_weight"] if row["irrelevant_weight"] else \
        float("inf")
    if "W2" not in ctx.params:  # one hidden layer: Merrill et al.'s neurons, each an input row and an output column
        size = np.linalg.norm(np.asarray(ctx.params["W1"], dtype=np.float64), axis=0) * \
            np.linalg.norm(np.asarray(ctx.params["W_out"], dtype=np.float64), axis=1)
        carried = np.cumsum(np.sort(size)[::-1])
        row["active_neurons"] = int(np.searchsorted(carried, 0.9 * carried[-1])) + 1 if carried[-1] > 0 else 0
    return row


@dataclass(frozen=True)
class Measure:
    compute: Callable[[Context], dict]
    help: str
    applies: Callable[[object], str | None] = lambda task: None  # why not, or None when it applies
    initial: bool = False  # reads the parameters the run started from (Context.initial)


MEASURES = {
    "fourier": Measure(fourier, "norm of each frequency of the operand embedding over Z_p, their "
                                "Gini coefficient, the number carrying 90% (fourier_n90)", _modular),
    "circuit": Measure(circuit_losses, "restricted and excluded loss on the training split "
                                       "(Nanda et al. 2023)", _additive),
    "neurons": Measure(neurons, "share of the last hidden layer's variance at the key frequencies, at "
                                "each neuron's strongest, and the number of those (Nanda et al. 2023); "
                                "reads the activations",
                       _additive),
    "irreps": Measure(irrep_shares, "share of the operand embedding in each irreducible representation of "
                                    "S_n, the number carrying 90% (irrep_n90) (Chughtai et al. 2023)",
                      _permutation),
    "irrep_circuit": Measure(irrep_circuit, "per irrep of S_n: the logits' cosine with chi(g z^-1), restricted "
                                            "and excluded loss on the training split, and for the key irreps "
                                            "together (Chughtai et al. 2023)", _permutation),
    "norms": Measure(norms, "L2 norm of each parameter tensor"),
    "movement": Measure(movement, "distance of the weights from their initialization, absolute and "
                                  "relative, and each tensor's relative distance (moved_<name>)", initial=True),
    "parity_bits": Measure(parity_bits, "sparse parity: RMS weight of the first layer's rows of the k relevant "
                                        "bits and of the others, their ratio, how far each has moved from "
                                        "initialization, and how many neurons carry 90% of the network "
                                        "(Merrill et al. 2023)", _parity, initial=True),
    "logit_scale": Measure(logit_scale, "RMS of the centered training logits, median answer margin"),
    "softmax_collapse": Measure(softmax_collapse, "share of training rows whose float32 loss, and "
                                                  "gradient, are exactly zero (Prieto et al. 2025)"),
}


def parse_measures(text: str, task) -> list[str]:
    """'fourier,norms' or 'all' -> measure names; ConfigError for an unknown one or one that does
    not apply to ``task``."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["all"]:
        return [n for n, m in MEASURES.items() if m.applies(task) is None]
    for name in names:
        if name not in MEASURES:
            raise ConfigError(f"output.measures: unknown measure {name!r}; choose from "
                              f"{', '.join(MEASURES)} (comma-separated), all, or leave it empty")
        why = MEASURES[name].applies(task)
        if why:
            raise ConfigError(f"output.measures: {name!r} does not apply to {task_name(task)!r}: {why}")
    return list(dict.fromkeys(names))


def evaluate(names: list[str], ctx: Context) -> dict:
    """One row of measures.csv (without the step): every named measure's columns, in order."""
    row = {}
    for name in names:
        row.update(MEASURES[name].compute(ctx))
    return row
