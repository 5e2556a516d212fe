"""Shared by the tests: tiny configs that train in well under a second."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from grokking.config import resolve_config

ROOT = Path(__file__).resolve().parents[1]

TINY = ["task.p=11", "model.d_embed=8", "model.d_hidden=16", "training.steps=40",
        "training.eval_interval=10", "output.progress=false"]


def quiet(*_):
    """A log function that prints nothing."""


def outcome(test):
    """Mark a test that asserts a training outcome: that a real run groks or does not, the step at
    which it reaches a threshold, a loss or norm beyond a bound after training, a divergence.

    Such an outcome depends on the kernels NumPy runs (OpenBLAS's kernel family, NumPy's AVX-512
    paths), which change a run's last bits and so, at the edge, its result; each marked test's
    config keeps a clear margin under every kernel. CI runs them unpinned under every kernel
    (``outcome_test_ids``).
    """
    test.outcome = True
    return test


def outcome_test_ids() -> list[str]:
    """The sorted ids ("module.Class.method") of the tests marked ``outcome`` in tests/test_*.py.

    Imports every test module (an import error is raised, not skipped) and walks its
    unittest.TestCase classes. The ids are relative to tests/: run them from there, as
    ``cd tests && python -m unittest ID ...`` (``discover -s tests`` puts the same folder first on
    sys.path).
    """
    import importlib
    import inspect
    import unittest

    tests = str(Path(__file__).resolve().parent)
    if tests not in sys.path:
        sys.path.insert(0, tests)
    loader = unittest.TestLoader()
    ids = set()
    for path in sorted(Path(tests).glob("test_*.py")):
        module = importlib.import_module(path.stem)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, unittest.TestCase) or cls.__module__ != module.__name__:
                continue
            for method in loader.getTestCaseNames(cls):
                if getattr(getattr(cls, method), "outcome", False) is True:
                    ids.add(f"{module.__name__}.{name}.{method}")
    return sorted(ids)


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


TIMING = ("wall_time_s", "eval_time_s", "steps_per_s", "time_to_val_99_s")


def temp_dir(test) -> Path:
    """A fresh directory removed when ``test`` ends."""
    path = Path(tempfile.mkdtemp())
    test.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


def assert_same_run(test, a: Path, b: Path):
    """Two run directories hold the same run: metrics.csv (and measures.csv), final parameters and
    summary (but its timings) byte for byte."""
    from grokking.checkpoint import load_checkpoint

    test.assertEqual((a / "metrics.csv").read_bytes(), (b / "metrics.csv").read_bytes())
    test.assertEqual((a / "measures.csv").exists(), (b / "measures.csv").exists())
    if (a / "measures.csv").exists():
        test.assertEqual((a / "measures.csv").read_bytes(), (b / "measures.csv").read_bytes())
    pa, pb = (load_checkpoint(d / "checkpoint.npz")[1] for d in (a, b))
    test.assertEqual(sorted(pa), sorted(pb))
    for key in pa:
        test.assertEqual(pa[key].tobytes(), pb[key].tobytes(), key)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for key in TIMING:
        sa.pop(key), sb.pop(key)
    test.assertEqual(sa, sb)


def start_script(script, *args):
    """Start a root-level command-line script in the background, as a user would with '&'."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, str(ROOT / script), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
