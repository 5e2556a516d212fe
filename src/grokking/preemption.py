"""Preemption: SIGTERM asks a run to checkpoint where it is and stop, instead of killing it.

Slurm, Kubernetes and a cluster's autoscaler end a job with SIGTERM and, a grace period later,
SIGKILL. By default SIGTERM kills a Python process on the spot, losing every step since the last
scheduled checkpoint. While ``watch`` is active (``run_experiment`` holds it for its whole run,
a sweep's workers for their whole life), SIGTERM only sets a flag: the training loop finishes the
update it is in, writes a checkpoint at that step and raises ``Preempted``, which ends the
process with status 143 (128 + SIGTERM, what a shell reports for a process SIGTERM killed)
unless someone catches it. ``--resume`` then continues the run as if it had never stopped.

Signal handlers live in the main thread of a process. Where a run trains in another thread (a
Dask worker's task) or where the program has its own SIGTERM handler, the handler is left alone
and the caller passes a ``stop`` callable instead (``run_experiment(stop=...)``), which the loop
polls after each update the same way.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

EXIT_STATUS = 128 + signal.SIGTERM

_requested: list[int] = []  # the signals received while watched, in order


class Preempted(SystemExit):
    """A run stopped at a checkpoint on request (SIGTERM or ``stop``): nothing is lost, and
    ``--resume`` (or the same sweep command) continues it. As a SystemExit it ends a program that
    does not catch it with status 143 and no traceback."""

    def __init__(self, message: str, step: int | None = None):
        super().__init__(EXIT_STATUS)
        self.message, self.step = message, step

    def __str__(self) -> str:
        return self.message


def _on_sigterm(signum, frame) -> None:
    _requested.append(signum)


def requested() -> bool:
    """Whether this process received SIGTERM while watched."""
    return bool(_requested)


def install() -> bool:
    """Make SIGTERM set the flag for the rest of this process's life, where this is the main
    thread and nobody else handles SIGTERM; return whether the flag now answers SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        return True
    if current not in (signal.SIG_DFL, None):
        return False  # the program's own handler decides
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


@contextmanager
def watch():
    """SIGTERM sets the flag while the block runs (see ``install``); afterwards the handler that
    was there before is back, and a SIGTERM that arrived after the last poll is delivered to it
    then, so a caller with the default handler still ends as it asked."""
    before = signal.getsignal(signal.SIGTERM)
    if before is _on_sigterm or not install():  # already set for the process, or not ours to set
        yield
        return
    try:
        yield
    except Preempted:
        _requested.clear()  # answered: the run stopped at a checkpoint
        raise
    finally:
        signal.signal(signal.SIGTERM, before)
        if _requested:  # asked to stop but never polled again (the run was ending): honour it now
            _requested.clear()
            signal.raise_signal(signal.SIGTERM)
