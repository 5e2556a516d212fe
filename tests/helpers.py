"""Shared by the tests: tiny configs that train in well under a second."""

import os
import subprocess
import sys
from pathlib import Path

from grokking.config import resolve_config

ROOT = Path(__file__).resolve().parents[1]

TINY = ["task.p=11", "model.d_embed=8", "model.d_hidden=16", "training.steps=40",
        "training.eval_interval=10", "output.progress=false"]


def tiny_config(*extra, preset="mod_add_grokking"):
    return resolve_config(preset, None, [*TINY, *extra])


def run_script(script, *args, cwd=None):
    """Run a root-level command-line script in a subprocess, as a user would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)
