"""Open a run in a notebook or a script: its tables, its model at saved steps, its activations.

    python docs/examples/open_a_run.py [run directory]

Without a directory it trains mod_add_grokking for 1,800 steps (it generalizes at about 1,650) with
snapshots at 6 log-spaced steps into a temporary directory first (about 10 s). CI runs this file
(tests/test_runs.py).
"""

import sys
import tempfile
from pathlib import Path

import grokking
from grokking import activations, analysis, open_run

if len(sys.argv) > 1:
    path = Path(sys.argv[1])
else:
    path = Path(tempfile.mkdtemp()) / "mod_add"
    config = grokking.resolve_config("mod_add_grokking", overrides=[
        "training.steps=1800", "output.snapshots=log:6", "output.curves=false", "output.progress=false"])
    grokking.run_experiment(config, path, log=lambda *a: None)

run = open_run(path)
metrics = run.metrics  # a DataFrame with pandas installed (pip install grokking[analysis]), else a dict
steps, val_acc = metrics["step"], metrics["val_acc"]
print(f"{len(steps)} evaluations; validation accuracy {float(val_acc[len(steps) - 1]):.3f} at step "
      f"{int(steps[len(steps) - 1])}")

# The embedding's key frequencies along the trajectory, from the snapshots.
for step in run.snapshot_steps:
    keys = analysis.key_frequencies(analysis.frequency_norms(run.embedding(step)))
    print(f"step {step:>5}: {len(keys):>2} key frequencies, the strongest {[int(k) for k in keys[:3]]}")

# Activations over the whole table, and an ablation: the last hidden layer's neurons kept at the
# key frequencies only, then with them removed.
t, params = run.table, run.params()
name = run.model.activation_names[-1]
logits, cache = run.run_with_cache(params, names=[name])
keys = analysis.key_frequencies(analysis.frequency_norms(run.embedding(params)))
print(f"{name}: {cache[name].shape}; accuracy over the table {float((logits.argmax(1) == t.labels).mean()):.3f}")
for label, hooks in [("as trained", None),
                     ("key frequencies only", {name: activations.neuron_frequencies(keys)}),
                     ("key frequencies removed", {name: activations.neuron_frequencies(keys, keep=False)})]:
    loss, acc = activations.loss_with(run.model, params, t.x, t.y, t.labels, hooks)
    print(f"{label:>24}: loss {loss:.3f}, accuracy {acc:.3f}")
