"""The README is a promise: its set-up commands and presets must stay true."""

import re
import unittest

from grokking.config import PRESETS

from helpers import ROOT


class Readme(unittest.TestCase):
    def setUp(self):
        self.text = (ROOT / "README.md").read_text()
        self.commands = re.findall(r"```bash\n(.*?)\n```", self.text, flags=re.S)

    def test_two_one_line_setup_commands_first(self):
        demo, tests = self.commands[:2]
        self.assertNotIn("\n", demo + tests)
        self.assertIn("pip install", demo)
        self.assertIn("run_experiment --preset mod_add_grokking", demo)
        self.assertIn("unittest discover -s tests", tests)

    def test_ci_runs_the_readme_test_command(self):
        ci = (ROOT / ".ci" / "run").read_text()
        self.assertIn(self.commands[1], ci)

    def test_every_preset_documented(self):
        for name in PRESETS:
            self.assertIn(f"`{name}`", self.text)


if __name__ == "__main__":
    unittest.main()
