"""The claims registry: arms on the same seeds, censoring, intervals, paired ratios, verdicts."""

import json
import unittest
from unittest import mock

import numpy as np

from grokking import claims
from grokking.claims import Arm, Claim, bootstrap_interval, run_claims
from grokking.errors import ConfigError

from helpers import TINY, quiet, temp_dir


class Statistics(unittest.TestCase):
    def test_bootstrap_interval(self):
        self.assertEqual(bootstrap_interval([2.0, 2.0, 2.0]), (2.0, 2.0))
        lo, hi = bootstrap_interval([1.0, 2.0, 3.0, 4.0, 100.0])
        self.assertTrue(1.0 <= lo <= 3.0 <= hi <= 100.0)
        self.assertEqual(bootstrap_interval([1.0, 5.0, 9.0]), bootstrap_interval([1.0, 5.0, 9.0]))  # seeded

    def test_rules(self):
        def arm(values, censored, budget=100):
            return {"median": float(np.median(values)), "values": values, "censored": censored, "budget": budget}

        rule = claims._reaches_and_baseline_does_not("m", "b")
        self.assertEqual(rule({"m": arm([10, 20, 30], [False] * 3), "b": arm([100] * 3, [True] * 3)})[0], "reproduced")
        self.assertEqual(rule({"m": arm([10, 100, 30], [False, True, False]), "b": arm([100] * 3, [True] * 3)})[0],
                         "not reproduced")
        faster = claims._faster("m", "b")
        self.assertEqual(faster({"m/b": {"interval": (0.2, 0.5)}})[0], "reproduced")
        self.assertEqual(faster({"m/b": {"interval": (0.8, 1.3)}})[0], "inconclusive")
        self.assertEqual(faster({"m/b": {"interval": (1.2, 1.3)}})[0], "contradicted")


class Registry(unittest.TestCase):
    def test_a_tiny_claim_end_to_end(self):
        tmp = temp_dir(self)
        tiny = Claim(name="tiny", source="a test", published_setting="tiny", published="weight decay helps",
                     measure="steps_to_val_99", here="tiny MLPs",
                     arms=(Arm("decay", "mod_add_grokking", (*TINY, "task.train_fraction=0.6", "training.steps=200")),
                           Arm("none", "mod_add_baseline", (*TINY, "task.train_fraction=0.6", "training.steps=200"))),
                     comparisons=(("decay", "none"),), verdict=claims._faster("decay", "none"))
        with mock.patch.dict(claims.CLAIMS, {"tiny": tiny}):
            rows = run_claims(["tiny"], tmp / "claims", workers=2, log=quiet)
            again = run_claims(["tiny"], tmp / "claims", workers=2, log=quiet)  # finished runs are kept
        self.assertEqual(json.dumps(rows, sort_keys=True), json.dumps(again, sort_keys=True))
        r = rows[0]["results"]
        for arm in ("decay", "none"):
            self.assertEqual(len(r[arm]["values"]), 3)  # seeds 0, 1, 2
            for seed, value in zip((0, 1, 2), r[arm]["values"]):
                summary = json.loads((tmp / "claims" / "tiny" / arm / ("mod_add_grokking" if arm == "decay" else
                                      "mod_add_baseline") / f"seed_{seed}" / "summary.json").read_text())
                self.assertEqual(value, summary["steps_to_val_99"] or 200)  # a run that never gets there counts as the budget
                self.assertEqual(r[arm]["censored"][seed], summary["steps_to_val_99"] is None)
        ratios = [a / b for a, b in zip(r["decay"]["values"], r["none"]["values"])]
        self.assertAlmostEqual(r["decay/none"]["median"], float(np.median(ratios)))
        table = (tmp / "claims" / "claims.md").read_text()
        self.assertIn("| tiny: first step with validation accuracy >= 99% | weight decay helps (a test) |", table)
        self.assertIn(rows[0]["verdict"], table)
        self.assertTrue((tmp / "claims" / "claims.csv").exists())
        self.assertEqual((tmp / "claims" / "tiny.png").read_bytes()[:4], b"\x89PNG")

    def test_refusals(self):
        with self.assertRaisesRegex(ConfigError, "unknown claim 'nope'"):
            run_claims(["nope"], temp_dir(self), log=quiet)
        with self.assertRaisesRegex(ConfigError, "at least 3 seeds"):
            run_claims(["power_weight_decay"], temp_dir(self), seeds=[0, 1], log=quiet)

    def test_every_registered_claim_resolves_and_names_its_measure(self):
        from grokking.config import resolve_config

        for claim in claims.CLAIMS.values():
            self.assertIn(claim.measure, claims.MEASURES)
            names = [a.name for a in claim.arms]
            for method, baseline in claim.comparisons:
                self.assertIn(method, names)
                self.assertIn(baseline, names)
            for arm in claim.arms:
                resolve_config(arm.preset, overrides=arm.overrides)


if __name__ == "__main__":
    unittest.main()
