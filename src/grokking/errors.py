"""The exception types a command line turns into one line on stderr."""

import errno

# errno values of a write that more space (or a larger quota) would let through
DISK_FULL = {errno.ENOSPC} | ({errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())


class ConfigError(ValueError):
    """Bad user input: the message is one line that says what was wrong and what is allowed.
    Command lines exit with status 2."""


class WriteFailed(Exception):
    """An artifact could not be written for lack of space; the message says what, where, and how
    to continue. Command lines exit with status 1; a sweep records the run as failed and does not
    retry it (a retry from scratch would discard the checkpoint the message points to)."""
