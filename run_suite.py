#!/usr/bin/env python3
"""Run presets over seeds: see --help. Also installed as the console script `run_suite`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # works before pip install -e . too

from grokking.cli import run_suite_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_suite_main())
