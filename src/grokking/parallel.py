"""The engine's threads: fixed pieces of work run on a small pool, results combined in a fixed order.

NumPy and BLAS release the GIL in their heavy calls, so a few Python threads keep the cores busy.
BLAS itself is held to one thread: a multi-threaded matmul may split its inner sum and change the
last bits, whereas one-threaded BLAS on pieces fixed in advance gives the same bytes for any number
of threads (``engine_threads``).
"""

from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager

import numpy as np


def even_slices(n: int, k: int) -> list[slice]:
    """range(n) cut into k contiguous slices of nearly equal length."""
    bounds = np.linspace(0, n, k + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


class Threads:
    """A small thread pool; the calling thread works too."""

    def __init__(self):
        self.n = 1
        self.pool = None

    def set(self, n: int) -> None:
        if n != self.n and self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        self.n = max(1, int(n))

    def map(self, fn, items):
        if self.n == 1 or len(items) == 1:
            return [fn(item) for item in items]
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(self.n - 1, thread_name_prefix="grokking")
        # Every thread takes the next item until none is left (next() on a shared range iterator is
        # atomic under the GIL), so uneven items balance out.
        results = [None] * len(items)
        todo = iter(range(len(items)))
        errors = np.geterr()  # NumPy's error handling is per thread: the helpers take the caller's

        def work():
            with np.errstate(**errors):
                for i in todo:
                    results[i] = fn(items[i])

        helpers = [self.pool.submit(work) for _ in range(min(self.n, len(items)) - 1)]
        work()
        for h in helpers:
            h.result()
        return results


THREADS = Threads()


# glibc's mallopt parameters (malloc.h), and the values set: arrays up to 32 MB come from the heap,
# whose top is returned to the kernel only beyond 128 MB.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 << 20, 128 << 20
_heap_kept = False


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for the next step instead of returning it to the kernel.

    A step allocates its temporaries afresh (a transformer chunk's (512, 512) float32 activations
    are 1 MB each). By default glibc serves arrays over a threshold that starts at 128 KB with a
    fresh mmap and trims the heap top above 128 KB, so steps page-fault and zero-fill their memory
    again: hundreds to thousands of faults per transformer step at minibatch 512, about 12% of its
    time on 2 cores here (``benchmarks/transformer_phases.py --default-malloc``). With these
    thresholds the step reuses the heap. The arithmetic is untouched. Process-wide and idempotent;
    a no-op where the C library is not glibc. Returns whether it took effect.
    """
    global _heap_kept
    if not _heap_kept:
        try:
            mallopt = ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
            return False
        _heap_kept = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
            bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _heap_kept


@contextmanager
def engine_threads(n: int | None = None):
    """Run the engine on ``n`` threads (default: every core) with single-threaded BLAS inside, and
    freed memory kept for the next step (``keep_freed_memory``)."""
    from threadpoolctl import threadpool_limits

    keep_freed_memory()
    previous = THREADS.n
    THREADS.set(n or os.cpu_count() or 1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        THREADS.set(previous)
