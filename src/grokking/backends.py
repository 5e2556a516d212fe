"""Where a sweep's runs train: a pool of local processes or a Dask cluster, behind one interface.

Both hand out futures (``submit``), report the first that finish (``wait``), and tell a run that
raised from a worker that died (``worker_died``). They differ in what a death costs: a dead process
breaks a ``ProcessPoolExecutor`` and every run in flight with it, so the local backend is rebuilt
(``recover``) and cannot say which run killed it (``death_is_shared``); Dask loses only the dead
worker's task and names it with ``KilledWorker``. They differ in preemption too: SIGTERM to a
local worker means this machine is going down (``preemption_is_shared``), so the sweep stops,
while a Dask worker shut down alone leaves the others to resume its run. Dask is imported only
when asked for.
"""

from __future__ import annotations

import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
import logging
import multiprocessing
import os
import signal

from . import preemption
from .errors import ConfigError

BACKENDS = ("local", "dask")


class LocalBackend:
    """``workers`` processes on this machine, started with spawn: a clean interpreter per worker,
    with no threads or locks inherited from the parent."""

    name = "local"
    death_is_shared = True
    preemption_is_shared = True

    def __init__(self, workers: int):
        self.slots = workers
        self.pool = self._new_pool()

    def _new_pool(self):
        # Each worker answers SIGTERM by stopping its run at a checkpoint (grokking.preemption),
        # whether the signal comes from the sweep or to the whole process group (Slurm).
        return cf.ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=preemption.install)

    def submit(self, fn, arg):
        return self.pool.submit(fn, arg)

    def wait(self, futures, timeout=None):
        return cf.wait(futures, timeout, return_when=cf.FIRST_COMPLETED).done

    def wait_all(self, futures):
        return cf.wait(futures).done

    def stop_workers(self) -> bool:
        """Pass SIGTERM on to the workers, whose runs stop at a checkpoint; True: wait for them."""
        for process in list(self.pool._processes.values()):  # no public list of the pool's processes
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        return True

    def worker_died(self, err: BaseException) -> bool:
        return isinstance(err, BrokenProcessPool)

    def recover(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = self._new_pool()

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=not cancel, cancel_futures=cancel)


class DaskBackend:
    """A Dask distributed client: on the scheduler at ``address`` or on a local cluster of
    ``workers`` single-threaded worker processes. A remote cluster must see --out at the same
    path (a shared file system): runs write their directories there and the sweep reads them."""

    name = "dask"
    death_is_shared = False
    preemption_is_shared = False

    def __init__(self, address: str | None, workers: int):
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("--backend dask needs dask.distributed; install it with "
                              "pip install -e '.[dask]'") from None
        self.cluster = None
        if address:
            try:
                self.client = Client(address, timeout="10s")
            except (OSError, TimeoutError) as err:
                raise ConfigError(f"--scheduler {address}: cannot reach a Dask scheduler ({err})") from None
        else:
            # A dead worker fails its task at once (KilledWorker) so that --retries, not Dask's own
            # retry budget, decides whether the run trains again.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                            dashboard_address=None,
                                            silence_logs=logging.CRITICAL)  # the sweep reports deaths itself
            self.client = Client(self.cluster)
        # The scheduler queues whatever is submitted; keep no more in flight than it has threads,
        # so a run counts as started only when it starts.
        self.slots = max(1, sum(self.client.nthreads().values()))

    def submit(self, fn, arg):
        return self.client.submit(fn, arg, pure=False)

    def wait(self, futures, timeout=None):
        from distributed import wait

        try:
            return wait(list(futures), timeout=timeout, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            return set()

    def wait_all(self, futures):
        from distributed import wait

        return wait(list(futures)).done

    def worker_died(self, err: BaseException) -> bool:
        from distributed import KilledWorker

        return isinstance(err, KilledWorker)

    def recover(self) -> None:
        pass  # the nanny restarts a dead worker; the other workers never noticed

    def stop_workers(self) -> bool:
        """Retire the workers of our own local cluster (their runs stop at a checkpoint before
        they close); a remote cluster is not ours to stop, and its runs go on. False: do not wait."""
        if self.cluster is not None:
            self.client.retire_workers(list(self.client.nthreads()), close_workers=True)
        return False

    def close(self, cancel: bool = False) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def check_backend(name: str, workers: int, scheduler: str | None = None) -> None:
    """Refuse backend arguments no sweep can use, before anything is written."""
    if name not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if scheduler and name != "dask":
        raise ConfigError("--scheduler is the address of a Dask scheduler; add --backend dask")


def make_backend(name: str, workers: int, scheduler: str | None = None):
    check_backend(name, workers, scheduler)
    if name == "dask":
        return DaskBackend(scheduler, workers)
    return LocalBackend(workers)
