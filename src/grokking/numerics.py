"""The numeric environment: the same kernels on every x86-64 machine, so a seed gives the same bytes.

Two choices that NumPy makes for the CPU it finds decide a run's last bits, and training grows a
last bit into a different grokking step (docs/numerics.md has the measurements):
- OpenBLAS's kernel family. NumPy's OpenBLAS is built for many CPUs and picks its kernels when it
  loads: Haswell kernels on AVX2 machines (Intel or AMD), SkylakeX kernels on AVX-512 ones. The two
  sum matrix products in another order: every family of runs (MLP and transformer, float32 and
  float64, minibatch and full batch, every optimizer and measure) gave other bytes.
- NumPy's own AVX-512 code paths (its CPU dispatch): they change float64 runs (exp and log).
Both are read from the environment when NumPy is imported, so ``pin`` runs at ``import grokking``,
before NumPy: it asks for the Haswell kernels (``OPENBLAS_CORETYPE``) and switches NumPy's AVX-512
paths off (``NPY_DISABLE_CPU_FEATURES``). That is what every AVX2 machine without AVX-512 runs by
itself, and every x86-64 CPU since 2013-2015 (Intel Haswell, AMD Excavator and Zen) can run it.
OpenBLAS's cache-size setting (``OPENBLAS_L2_SIZE``) was measured to change nothing.

``GROKKING_NUMERICS=native`` leaves both choices to the machine (its fastest kernels, and its own
bytes). Where pinning cannot apply (NumPy imported before grokking, another BLAS, another CPU
architecture, a CPU without AVX2) runs still train; ``environment()`` says why the numbers may
differ from other machines', it goes into each run's config.json, and the run says so once.
"""

from __future__ import annotations

import os
import platform
import sys

MODE_ENV = "GROKKING_NUMERICS"
MODES = ("portable", "native")
KERNEL = "Haswell"  # OpenBLAS's AVX2 kernels, which every AVX2 CPU, Intel or AMD, runs
BLAS_ENV, SIMD_ENV = "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES"

_state = {"mode": "portable", "error": None, "before": {}, "numpy_first": False, "unsupported": None}
_cache = {}


def _numpy_version() -> tuple[int, ...]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return tuple(int(p) for p in version("numpy").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return (0, 0)


def avx512_targets() -> list[str]:
    """NumPy's AVX-512 dispatch targets, by the names the installed NumPy knows (NumPy 2.4 grouped
    the AVX-512 levels into X86_V4; a name it does not know would only make it warn)."""
    if _numpy_version() >= (2, 4):
        return ["X86_V4", "AVX512_ICL", "AVX512_SPR"]
    names = ["AVX512F", "AVX512CD", "AVX512_KNL", "AVX512_KNM", "AVX512_SKX", "AVX512_CLX",
             "AVX512_CNL", "AVX512_ICL"]
    return names + ["AVX512_SPR"] * (_numpy_version() >= (2, 3))


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags where the OS tells them cheaply (Linux), else None."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def _has_avx2() -> bool:
    """Whether the CPU runs the Haswell kernels: AVX2 and FMA (every CPU with one has the other)."""
    flags = cpu_flags()
    if flags is not None:
        return {"avx2", "fma"} <= flags
    if sys.platform == "darwin":
        import subprocess

        try:
            out = subprocess.run(["sysctl", "-n", "hw.optional.avx2_0"], capture_output=True, text=True,
                                 timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return False
        return out.strip() == "1"
    if sys.platform == "win32":
        import ctypes

        return bool(ctypes.windll.kernel32.IsProcessorFeaturePresent(40))  # PF_AVX2_INSTRUCTIONS_AVAILABLE
    return False


def is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def portable_environ() -> dict[str, str]:
    """The variables that pin another process (a Dask worker started by hand, say) before its
    Python starts: ``env $(python -m grokking numerics --env) dask worker ...``."""
    disabled = os.environ.get(SIMD_ENV, "").replace(",", " ").split()
    return {BLAS_ENV: KERNEL, SIMD_ENV: ",".join(dict.fromkeys(disabled + avx512_targets()))}


def pin() -> None:
    """Ask for the portable kernels, unless GROKKING_NUMERICS=native; called by ``import grokking``.

    Sets the environment even when NumPy is already imported (too late for this process), so that
    the processes it starts (sweep workers, a local Dask cluster) are pinned.
    """
    raw = os.environ.get(MODE_ENV, "")
    mode = raw.strip().lower() or "portable"
    if mode not in MODES:
        _state["error"] = f"{MODE_ENV} must be one of {', '.join(MODES)} (empty: portable), not {raw!r}"
        mode = "native"  # touch nothing until the run refuses to start
    _state["mode"] = mode
    _state["numpy_first"] = "numpy" in sys.modules
    if mode == "native":
        return
    if not is_x86_64():
        _state["unsupported"] = f"the CPU is {platform.machine()}, not x86-64"
        return
    if not _has_avx2():
        _state["unsupported"] = "the CPU has no AVX2, which the portable kernels need"
        return
    for key, value in portable_environ().items():
        _state["before"].setdefault(key, os.environ.get(key))
        os.environ[key] = value


def check() -> None:
    """Raise ConfigError for a GROKKING_NUMERICS that is neither portable nor native."""
    if _state["error"]:
        from .errors import ConfigError

        raise ConfigError(_state["error"])


def original_environ() -> dict[str, str]:
    """os.environ as it was before ``pin`` changed it: for a child process that should choose its
    own kernels (with GROKKING_NUMERICS=native added)."""
    env = dict(os.environ)
    for key, value in _state["before"].items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _simd() -> list[str]:
    """NumPy's baseline and the dispatch targets it runs on this CPU."""
    try:
        from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__, __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__, __cpu_features__
    return list(__cpu_baseline__) + [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]


def _blas() -> dict:
    """NumPy's BLAS: the one loaded from NumPy's own folder (numpy.libs, .dylibs) when there is one,
    not another package's (PyTorch brings its own)."""
    import numpy as np
    from threadpoolctl import threadpool_info

    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not libs:
        return {"blas": "unknown", "blas_kernel": None}
    home = os.path.dirname(np.__file__)
    lib = next((i for i in libs if (i.get("filepath") or "").startswith(home)), libs[0])
    return {"blas": f"{lib.get('internal_api')} {lib.get('version')}", "blas_kernel": lib.get("architecture"),
            "blas_file": os.path.basename(lib.get("filepath") or "")}


def _why_not_portable(env: dict) -> str | None:
    if _state["mode"] == "native":
        return f"{MODE_ENV}=native"
    if _state["unsupported"]:
        return _state["unsupported"]
    late = " (NumPy was imported before grokking)" if _state["numpy_first"] else ""
    if not env["blas"].startswith("openblas"):
        hint = "; MKL has its own switch, MKL_CBWR" if env["blas"].startswith("mkl") else ""
        return f"NumPy's BLAS is {env['blas']}, not OpenBLAS{hint}"
    if env["blas_kernel"] != KERNEL:
        return f"OpenBLAS runs its {env['blas_kernel']} kernels, not {KERNEL}{late}"
    simd = set(env["numpy_simd"])
    if simd & set(avx512_targets()) or any(t.startswith("AVX512") for t in simd):
        return f"NumPy runs its AVX-512 code paths{late}"
    if not ({"X86_V3"} <= simd or {"AVX2", "FMA3"} <= simd):
        return f"NumPy runs no AVX2 code paths ({SIMD_ENV} disables them?)"
    return None


def environment() -> dict:
    """The numeric environment of this process, for a run's config.json ``meta``: NumPy and its
    CPU code paths, the BLAS and its kernels, the CPU, whether this is the portable environment
    (and why not), and ``id``, the part that decides the bytes (equal ids, equal bytes)."""
    if not _cache:
        import numpy as np

        env = {"mode": _state["mode"], "numpy": np.__version__, "numpy_simd": _simd(), **_blas(),
               "machine": platform.machine(), "cpu": _cpu_name()}
        env["id"] = (f"{env['machine']} numpy {env['numpy']} {env['blas']} {env['blas_kernel']} "
                     f"{'+'.join(env['numpy_simd'])}")
        reason = _why_not_portable(env)
        _cache.update(portable=reason is None, reason=reason, **env)
    return dict(_cache)


def notice() -> str | None:
    """One line for a run whose numbers may differ from other machines', or None."""
    env = environment()
    if env["portable"]:
        return None
    fix = ""
    if _state["numpy_first"] and _state["mode"] == "portable" and not _state["unsupported"]:
        fix = "; import grokking before NumPy to pin them"
    return f"note: this run's numbers may differ from other machines': {env['reason']}{fix}"


_told = []


def tell_once(log) -> None:
    """Give ``notice()`` to ``log`` the first time a run in this process asks."""
    line = notice()
    if line and not _told:
        _told.append(line)
        log(line)


def main(argv=None) -> int:
    import json

    args = sys.argv[1:] if argv is None else argv
    if args == ["--env"]:
        print(" ".join(f"{k}={v}" for k, v in portable_environ().items()))
        return 0
    if args:
        print("usage: python -m grokking numerics [--env]", file=sys.stderr)
        return 2
    print(json.dumps(environment(), indent=2))
    return 0
