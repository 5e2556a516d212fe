"""``python -m grokking numerics [--env]``: this process's numeric environment, or the variables
that pin another process's (``grokking.numerics``)."""

import sys

from . import numerics

if __name__ == "__main__":
    if sys.argv[1:2] != ["numerics"]:
        print("usage: python -m grokking numerics [--env]", file=sys.stderr)
        sys.exit(2)
    sys.exit(numerics.main(sys.argv[2:]))
