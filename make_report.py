#!/usr/bin/env python3
"""Write one self-contained HTML report of a run or sweep directory: see --help. Also installed as the console script `make_report`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # works before pip install -e . too

from grokking.cli import make_report_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(make_report_main())
