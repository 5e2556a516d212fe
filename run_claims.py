#!/usr/bin/env python3
"""Check published claims: see --help. Also installed as the console script `run_claims`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # works before pip install -e . too

from grokking.cli import run_claims_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_claims_main())
