"""Run the outcome tests (``helpers.outcome``) unpinned, once under each kernel a machine may choose.

    python tests/outcomes_under_every_kernel.py

The suite itself runs the portable kernels (``grokking.numerics``), where every machine gives the
same bytes. A test that asserts a training outcome must also hold with a clear margin where the
bytes differ, so that it says something about training rather than about one machine's last bits:
this runs those tests with GROKKING_NUMERICS=native under each OpenBLAS kernel family of x86-64
(the CPU's own choice, Haswell, SkylakeX, Zen) with NumPy's AVX-512 code paths on and off. A
family this CPU cannot run (SkylakeX without AVX-512) is left out, and said so. Exit status 1 when
any test fails.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from grokking import numerics  # noqa: E402

from helpers import outcome_test_ids  # noqa: E402

AVX512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}  # what SkylakeX kernels use


def main() -> int:
    if not numerics.is_x86_64():
        print("outcome tests under every kernel: not an x86-64 machine; the x86-64 kernel families do not apply")
        return 0
    flags = numerics.cpu_flags() or set()
    ids = outcome_test_ids()
    failed = 0
    for coretype in (None, "Haswell", "SkylakeX", "Zen"):
        if coretype == "SkylakeX" and not AVX512 <= flags:
            print("outcome tests under OPENBLAS_CORETYPE=SkylakeX: left out, this CPU has no AVX-512")
            continue
        for disabled in (None, " ".join(numerics.avx512_targets())):
            env = numerics.original_environ()
            env[numerics.MODE_ENV] = "native"
            for key, value in ((numerics.BLAS_ENV, coretype), (numerics.SIMD_ENV, disabled)):
                env.pop(key, None)
                if value is not None:
                    env[key] = value
            what = (f"OPENBLAS_CORETYPE={coretype or '(unset)'}, NumPy's AVX-512 paths "
                    f"{'off' if disabled else 'on'}")
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "unittest", *ids], cwd=HERE, env=env,
                               capture_output=True, text=True)
            status = "passed" if r.returncode == 0 else "FAILED"
            print(f"{len(ids)} outcome tests under {what}: {status} in {time.perf_counter() - t0:.0f} s", flush=True)
            if r.returncode:
                failed += 1
                print(r.stderr[-5000:], flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
