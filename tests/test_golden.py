"""Golden runs: the committed sha256 of short runs of every family of arithmetic, recomputed here.

The hashes in golden.json were made on one machine; this suite checks them on whatever machine runs
it, Intel or AMD. A difference means that a seed no longer gives the bytes it gives elsewhere (or
that the arithmetic changed on purpose: then rerun what the docs measured, and record the new hashes
with ``python tests/golden.py --write``).
"""

import json
import os
import subprocess
import sys
import unittest
from pathlib import Path

from grokking import numerics

import golden

HERE = Path(__file__).resolve().parent
# Runs that meet both choices pinning makes: OpenBLAS's kernels (every run) and NumPy's AVX-512
# code paths (float64, measures).
ACROSS_KERNELS = [n for n in ["mlp", "mlp_float64", "transformer", "transformer_float64", "mlp_measures",
                                "dense_digits_mse"] if golden.available(n)]
AVX512_OFF = " ".join(numerics.avx512_targets())
# What a user's environment may ask for before grokking pins (None: unset): OpenBLAS's kernel
# families on x86-64, and NumPy's AVX-512 dispatch on or off.
VARIANTS = [(None, None), ("Haswell", AVX512_OFF), ("SkylakeX", None), ("SkylakeX", AVX512_OFF), ("Zen", None)]


def expected_for(env_id: str, test) -> dict:
    recorded = golden.recorded()["environments"]
    if env_id not in recorded:
        test.fail(f"golden.json has no hashes for this numeric environment ({env_id}); it has them for "
                  f"{sorted(recorded)}. With another NumPy or OpenBLAS build the bytes may change: install "
                  "the constrained versions (pip install -c constraints.txt), or record this build's with "
                  "python tests/golden.py --write after checking what changed")
    return recorded[env_id]["runs"]


class Golden(unittest.TestCase):
    def test_every_golden_run_gives_the_recorded_bytes(self):
        env = numerics.environment()
        if not env["portable"]:
            self.skipTest(f"this process does not run the portable kernels ({env['reason']}); "
                          "the cross-kernel test below checks them in child processes")
        expected = expected_for(env["id"], self)
        self.assertEqual(sorted(expected), sorted(golden.RUNS), "golden.json and golden.RUNS list other runs")
        names = [n for n in golden.RUNS if golden.available(n)]
        if len(names) < len(golden.RUNS):
            print(f"test_golden: skipping {', '.join(n for n in golden.RUNS if n not in names)}: not trainable "
                  "here (the digits need pip install -e '.[digits]')", file=sys.stderr)
        got = golden.compute(names)
        differ = [name for name in names if got[name] != expected[name]]
        self.assertEqual(differ, [], f"runs whose bytes differ from golden.json on this machine "
                                     f"({env['cpu']}; the hashes were made on another machine)")

    def test_one_hash_whatever_kernel_the_cpu_or_the_user_would_choose(self):
        base = numerics.original_environ()
        base.pop(numerics.MODE_ENV, None)
        seen = {}
        for coretype, disabled in VARIANTS:
            env = dict(base)
            for key, value in ((numerics.BLAS_ENV, coretype), (numerics.SIMD_ENV, disabled)):
                env.pop(key, None)
                if value is not None:
                    env[key] = value
            with self.subTest(OPENBLAS_CORETYPE=coretype, NPY_DISABLE_CPU_FEATURES=disabled):
                r = subprocess.run([sys.executable, str(HERE / "golden.py"), "--runs", ",".join(ACROSS_KERNELS)],
                                   env=env, capture_output=True, text=True, timeout=300)
                self.assertEqual(r.returncode, 0, r.stderr)
                out = json.loads(r.stdout)
                self.assertTrue(out["environment"]["portable"], out["environment"]["reason"])
                expected = expected_for(out["environment"]["id"], self)
                self.assertEqual(out["runs"], {n: expected[n] for n in ACROSS_KERNELS})
                seen[(coretype, disabled)] = out["environment"]["id"]
        self.assertEqual(len(set(seen.values())), 1, seen)


if __name__ == "__main__":
    unittest.main()
