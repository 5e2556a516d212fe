#!/usr/bin/env python3
"""Draw the paper's figures from a run or sweep directory: see --help. Also installed as the console script `make_figures`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # works before pip install -e . too

from grokking.cli import make_figures_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(make_figures_main())
