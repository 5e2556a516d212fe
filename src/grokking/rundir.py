"""One writer per run directory: a lock that the operating system releases when its holder dies.

A run holds ``<run dir>/.lock`` for its whole life: from clearing or resuming the directory to the
final write of summary.json. ``run_experiment`` takes it without waiting, so a second command aimed
at a live run is refused at once with the holder's host and process id; ``--force`` replaces a
finished or abandoned run, never a live one. A sweep's worker waits instead, then takes the
other process's result (or resumes its checkpoint, if that process died).

The lock is ``flock`` on the file: the kernel drops it when the process exits, however it exits,
so ``kill -9`` leaves no lock that blocks anyone; at most an unlocked ``.lock`` file, which the
next holder reuses. On Linux, ``flock`` on NFS is carried by the server's byte-range locks, so
Dask workers on a shared filesystem exclude each other too. Where the filesystem (or the platform)
has no such locks, the lock falls back to creating the file exclusively: then a holder killed by
``kill -9`` leaves the file behind; on its own host it is recognised as stale (its process is
gone) and taken over, from another host it is not, and the refusal names the file to delete.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK = ".lock"
POLL_S = 0.5  # how often a waiting holder looks again, where there is no kernel lock to wait on
# errno values of a filesystem that does not support flock
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}

_held: dict[str, int] = {}  # run directories this process holds, with their nesting depth


class RunDirBusy(ConfigError):
    """Another live process holds the run directory."""


def _identity() -> str:
    return f"host {socket.gethostname()}, pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "a process that is starting"
    except OSError:
        return "a process that has just finished"


def _busy(out: Path, path: Path, stale_hint: bool = False) -> RunDirBusy:
    hint = f"; if that process is gone, delete {str(path)!r}" if stale_hint else ""
    return RunDirBusy(f"{str(out)!r} is in use by another run ({_holder(path)}); wait for it to "
                      f"finish or choose another --out{hint}")


def _flock(out: Path, wait: bool) -> tuple[int | None, bool]:
    """(the open, locked lock file or None when this filesystem has no flock, whether it waited)."""
    path = out / LOCK
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                os.close(fd)
                raise _busy(out, path) from None
            waited = True
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        except OSError as err:
            os.close(fd)
            if err.errno in _NO_LOCKS:
                return None, waited
            raise
        # The holder before us unlinks the file before it unlocks; if we locked that unlinked file,
        # a newcomer may already hold a new one at the same path: start over on whatever is there.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, _identity().encode())
            return fd, waited
        os.close(fd)


def _alive(host: str, pid: int) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else (or no signals on this platform)
        return True
    return True


def _exclusive_file(out: Path, wait: bool) -> bool:
    """The fallback lock: create the file or find its holder; take it over when that one is dead.
    Returns whether it waited."""
    path = out / LOCK
    waited = False
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            fields = dict(part.strip().split(" ", 1) for part in _holder(path).split(",") if " " in part.strip())
            try:
                stale = not _alive(fields["host"], int(fields["pid"]))
            except (KeyError, ValueError):
                stale = False  # being written, or not ours: leave it
            if stale:
                path.unlink(missing_ok=True)
                continue
            if not wait:
                raise _busy(out, path, stale_hint=True) from None
            waited = True
            time.sleep(POLL_S)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_identity())
        return waited


@contextmanager
def hold(out: Path, wait: bool = False):
    """Hold the run directory ``out`` (which must exist) for the duration of the block.

    Raises RunDirBusy at once when another process holds it, unless ``wait``. Yields True when it
    had to wait for another holder. Re-entrant within a process: a sweep's worker holds the
    directory while it decides whether to resume, and run_experiment inside takes it again.
    """
    key = os.path.realpath(out)
    if key in _held:
        _held[key] += 1
        try:
            yield False
        finally:
            _held[key] -= 1
        return
    out = Path(out)
    fd, waited = _flock(out, wait) if fcntl is not None else (None, False)
    if fd is None:
        waited = _exclusive_file(out, wait) or waited
    _held[key] = 1
    try:
        yield waited
    finally:
        del _held[key]
        (out / LOCK).unlink(missing_ok=True)  # before unlocking: see _flock
        if fd is not None:
            os.close(fd)
