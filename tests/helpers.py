"""Shared by the tests: tiny configs that train in well under a second."""

import os
import subprocess
import sys
from pathlib import Path

from grokking.config import resolve_config

ROOT = Path(__file__).resolve().parents[1]

TINY = ["task.p=11", "model.d_embed=8", "model.d_hidden=16", "training.steps=40",
        "training.eval_interval=10", "output.progress=false"]


def numerical_grads(loss, params, eps=1e-6):
    """Central finite differences of loss() with respect to every entry of every parameter."""
    import numpy as np

    numeric = {}
    for name, p in params.items():
        numeric[name] = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up = loss()
            p[i] = old - eps
            down = loss()
            p[i] = old
            numeric[name][i] = (up - down) / (2 * eps)
    return numeric


def tiny_config(*extra, preset="mod_add_grokking"):
    return resolve_config(preset, None, [*TINY, *extra])


def run_script(script, *args, cwd=None):
    """Run a root-level command-line script in a subprocess, as a user would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)
