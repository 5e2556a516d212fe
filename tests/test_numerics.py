"""The numeric environment (grokking.numerics): pinned at import, recorded in every run, and said
out loud where it cannot apply or where a run or sweep mixes environments."""

import json
import os
import subprocess
import sys
import unittest

from grokking import numerics
from grokking.experiment import run_experiment
from grokking.sweeps import run_suite

from helpers import ROOT, quiet, run_script, temp_dir, tiny_config


def python(code: str, **env) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with the environment as the user had it, plus ``env``."""
    full = {**numerics.original_environ(), "PYTHONPATH": str(ROOT / "src"), **env}
    full.pop(numerics.MODE_ENV, None) if numerics.MODE_ENV not in env else None
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


TINY_RUN = """
import sys, json, tempfile
from pathlib import Path
from grokking import resolve_config, run_experiment
out = Path(tempfile.mkdtemp())
for name in ("a", "b"):  # two runs in one process: the note comes once
    run_experiment(resolve_config("mod_add_grokking", None, ["task.p=11", "model.d_embed=8", "model.d_hidden=16",
                   "training.steps=5", "output.curves=false", "output.progress=false"]), out / name)
print(json.dumps(json.loads((out / "a" / "config.json").read_text())["meta"]["numerics"]))
"""


class Pinning(unittest.TestCase):
    def test_this_suite_runs_the_portable_kernels(self):
        # Every test module imports grokking before NumPy; one that did not would unpin the whole
        # suite, and outcome tests would then depend on the CPU.
        env = numerics.environment()
        if os.environ.get(numerics.MODE_ENV) == "native":
            self.assertFalse(env["portable"])
            self.assertEqual(env["reason"], "GROKKING_NUMERICS=native")
        else:
            self.assertTrue(env["portable"], env["reason"])
            self.assertEqual((env["blas_kernel"], env["mode"]), ("Haswell", "portable"))

    def test_import_grokking_overrides_the_kernel_and_keeps_other_disabled_features(self):
        r = python("import grokking, os, json, threadpoolctl\n"
                   "print(json.dumps([os.environ['OPENBLAS_CORETYPE'], os.environ['NPY_DISABLE_CPU_FEATURES'],"
                   " threadpoolctl.threadpool_info()[0]['architecture']]))",
                   OPENBLAS_CORETYPE="SkylakeX", NPY_DISABLE_CPU_FEATURES="AVX512_SPR")
        self.assertEqual(r.returncode, 0, r.stderr)
        coretype, disabled, loaded = json.loads(r.stdout)
        self.assertEqual((coretype, loaded), ("Haswell", "Haswell"))
        self.assertEqual(disabled.split(",")[0], "AVX512_SPR")
        self.assertLessEqual(set(numerics.avx512_targets()), set(disabled.split(",")))

    def test_numpy_imported_first_is_said_once_recorded_and_children_are_still_pinned(self):
        r = python("import numpy\n" + TINY_RUN + "import os; print(os.environ['OPENBLAS_CORETYPE'])")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        notes = [line for line in lines if line.startswith("note:")]
        self.assertEqual(len(notes), 1, r.stdout)
        meta = json.loads(lines[-2])
        self.assertFalse(meta["portable"])
        self.assertIn("NumPy was imported before grokking", meta["reason"])
        self.assertIn(meta["reason"], notes[0])
        self.assertIn("import grokking before NumPy", notes[0])
        self.assertEqual(lines[-1], "Haswell")  # what a sweep's workers will load

    def test_native_opt_out_is_recorded_and_said(self):
        r = python(TINY_RUN, GROKKING_NUMERICS="native")
        self.assertEqual(r.returncode, 0, r.stderr)
        meta = json.loads(r.stdout.splitlines()[-1])
        self.assertEqual((meta["mode"], meta["portable"], meta["reason"]), ("native", False, "GROKKING_NUMERICS=native"))
        self.assertEqual(sum(line.startswith("note:") for line in r.stdout.splitlines()), 1, r.stdout)

    def test_the_portable_run_records_its_environment_and_says_nothing(self):
        r = python(TINY_RUN)
        self.assertEqual(r.returncode, 0, r.stderr)
        meta = json.loads(r.stdout.splitlines()[-1])
        self.assertTrue(meta["portable"], meta)
        for key in ("numpy", "numpy_simd", "blas", "blas_kernel", "cpu", "id"):
            self.assertIn(key, meta)
        self.assertNotIn("note:", r.stdout)

    def test_an_unknown_mode_is_one_line_and_exit_2(self):
        out = temp_dir(self) / "run"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), numerics.MODE_ENV: "fastest"}
        r = subprocess.run([sys.executable, str(ROOT / "run_experiment.py"), "--preset", "mod_add_grokking",
                            "--out", str(out)], capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.strip().splitlines(),
                         ["run_experiment: error: GROKKING_NUMERICS must be one of portable, native "
                          "(empty: portable), not 'fastest'"])
        self.assertFalse(out.exists())

    def test_env_prints_what_pins_another_process(self):
        r = subprocess.run([sys.executable, "-m", "grokking", "numerics", "--env"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        assignments = dict(item.split("=", 1) for item in r.stdout.split())
        self.assertEqual(assignments["OPENBLAS_CORETYPE"], "Haswell")
        self.assertLessEqual(set(numerics.avx512_targets()), set(assignments["NPY_DISABLE_CPU_FEATURES"].split(",")))


class Mixing(unittest.TestCase):
    def setUp(self):
        self.tmp = temp_dir(self)

    def test_a_run_resumed_under_another_environment_says_so_and_records_it(self):
        config = tiny_config("output.curves=false")
        run = self.tmp / "run"
        run_experiment(config, run, log=quiet)
        (run / "summary.json").unlink()  # as if killed after its final checkpoint
        stored = json.loads((run / "config.json").read_text())
        stored["meta"]["numerics"]["id"] = "elsewhere"
        (run / "config.json").write_text(json.dumps(stored))
        said = []
        summary = run_experiment(config, run, log=said.append, resume=True)
        here = numerics.environment()["id"]
        self.assertTrue(any("under another numeric environment (elsewhere)" in line for line in said), said)
        self.assertEqual(summary["numerics"], f"elsewhere then {here}")
        meta = json.loads((run / "config.json").read_text())["meta"]
        self.assertEqual([(r["step"], r["numerics"]["id"]) for r in meta["resumed_under"]], [(40, here)])
        (run / "summary.json").unlink()  # resumed again here: nothing new to say or record
        said.clear()
        self.assertEqual(run_experiment(config, run, log=said.append, resume=True)["numerics"], f"elsewhere then {here}")
        self.assertFalse(any("numeric environment" in line for line in said), said)

    def test_a_sweep_over_runs_of_two_environments_says_so(self):
        out = self.tmp / "sweep"
        overrides = ["task.p=11", "model.d_embed=8", "model.d_hidden=16", "training.steps=20"]
        run_suite(["mod_add_grokking"], [0, 1], out, overrides=overrides, curves=False, workers=1, log=quiet)
        runs = sorted(p.parent for p in out.rglob("summary.json"))
        self.assertEqual(len(runs), 2)
        summary = json.loads((runs[1] / "summary.json").read_text())
        summary["numerics"] = "elsewhere"
        (runs[1] / "summary.json").write_text(json.dumps(summary))
        said = []
        run_suite(["mod_add_grokking"], [0, 1], out, overrides=overrides, curves=False, workers=1, log=said.append)
        here = numerics.environment()["id"]
        self.assertTrue(any(line.startswith("note: these runs trained under 2 numeric environments") for line in said),
                        said)
        self.assertEqual(json.loads((out / "sweep_summary.json").read_text())["numerics"], [here, "elsewhere"])

    def test_sweep_workers_say_when_their_numbers_may_differ(self):
        for mode, notes in (("portable", 0), ("native", 1)):
            with self.subTest(mode):
                env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), numerics.MODE_ENV: mode}
                r = subprocess.run([sys.executable, str(ROOT / "run_suite.py"), "--presets", "mod_add_grokking",
                                    "--seeds", "0,1", "--workers", "2", "--out", str(self.tmp / mode), "--no-curves",
                                    "--override", "task.p=11", "--override", "training.steps=5"],
                                   capture_output=True, text=True, env=env, timeout=300)
                self.assertEqual(r.returncode, 0, r.stderr)
                said = [line for line in r.stdout.splitlines() if line.startswith("note: this run's numbers")]
                self.assertEqual(len(said), notes, r.stdout)  # once, though two workers said it
                self.assertTrue(all("GROKKING_NUMERICS=native" in line for line in said), said)

if __name__ == "__main__":
    unittest.main()
