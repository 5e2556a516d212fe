"""The claims registry: arms on the same seeds, censoring, intervals, paired ratios, verdicts."""

import json
import unittest
from unittest import mock

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
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

        later = claims._later("m", 2)
        self.assertEqual(later({"m": {**arm([3, 4, 5], [False] * 3), "interval": (3, 5)}})[0], "reproduced")
        self.assertEqual(later({"m": {**arm([1.5, 4, 5], [False] * 3), "interval": (1.5, 5)}})[0], "not reproduced")
        self.assertEqual(later({"m": {**arm([3, 4, 5], [False, True, False]), "interval": (3, 5)}})[0],
                         "not reproduced")  # a seed that never generalizes is no delayed generalization

        steeper = claims._steeper("m", "b", points=5, per_point=0.4)
        self.assertEqual(steeper({"m/b": {"median": 6.0, "interval": (5.5, 7)}})[0], "reproduced")  # 1.43 per point
        verdict, why = steeper({"m/b": {"median": 2.4, "interval": (2.2, 2.6)}})
        self.assertEqual((verdict, why[:26]), ("partly reproduced", "sharp, less steep: 19% mor"))
        self.assertEqual(steeper({"m/b": {"median": 1.2, "interval": (0.9, 1.5)}})[0], "not reproduced")

        never = claims._never_while("m", "b", below=0.5, reaches=0.99)
        self.assertEqual(never({"m": arm([0.01, 0.02, 0.01], [False] * 3), "b": arm([1, 1, 1], [False] * 3)})[0],
                         "reproduced")
        self.assertEqual(never({"m": arm([0.01, 0.6, 0.01], [False] * 3), "b": arm([1, 1, 1], [False] * 3)})[0],
                         "not reproduced")  # one seed learned it

        generalizes = claims._generalizes("m", 0.95)
        self.assertEqual(generalizes({"m": arm([0.99, 0.97, 1.0], [False] * 3)})[0], "reproduced")
        self.assertEqual(generalizes({"m": arm([0.99, 0.5, 1.0], [False] * 3)})[0], "partly reproduced")
        self.assertEqual(generalizes({"m": arm([0.2, 0.5, 0.1], [False] * 3)})[0], "not reproduced")

        larger = claims._larger("m", "b", 0.9, margin=0.1)
        self.assertEqual(larger({"m": arm([0.95] * 3, [False] * 3), "b": arm([0.4] * 3, [False] * 3)})[0], "reproduced")
        self.assertEqual(larger({"m": arm([0.7] * 3, [False] * 3), "b": arm([0.4] * 3, [False] * 3),
                                 "m-b": {"interval": (0.28, 0.32)}})[0], "partly reproduced")
        self.assertEqual(larger({"m": arm([0.45] * 3, [False] * 3), "b": arm([0.4] * 3, [False] * 3),
                                 "m-b": {"interval": (0.0, 0.1)}})[0], "not reproduced")

        same = claims._about_the_same("m", "b", 1.5)
        both = {"m": arm([10, 20, 30], [False] * 3), "b": arm([10, 20, 30], [False] * 3)}
        self.assertEqual(same({**both, "m/b": {"interval": (0.8, 1.2)}})[0], "reproduced")
        self.assertEqual(same({**both, "m/b": {"interval": (0.5, 1.2)}})[0], "not reproduced")
        both["b"] = arm([10, 100, 30], [False, True, False])
        self.assertEqual(same({**both, "m/b": {"interval": (0.8, 1.2)}})[0], "inconclusive")


class Table(unittest.TestCase):
    def test_censored_values_are_marked(self):
        summary = {"median": 3000.0, "interval": (1000.0, 3000.0)}
        self.assertEqual(claims._fmt(summary, [True] * 3), ">3000 [1000, 3000]")
        self.assertEqual(claims._fmt(summary, [False, True, True]), "3000 [1000, 3000] (2 of 3 seeds never get there)")
        self.assertEqual(claims._fmt(summary, [False] * 3), "3000 [1000, 3000]")


class Measures(unittest.TestCase):
    """Each claim measure read off a hand-written metrics.csv, censored values included."""

    def run_dir(self, rows):
        run = temp_dir(self)
        lines = ["step,train_acc,val_acc"] + [f"{s},{t},{v}" for s, t, v in rows]
        (run / "metrics.csv").write_text("\n".join(lines) + "\n")
        return run

    def test_reads(self):
        run = self.run_dir([(100, 0.5, 0.0), (200, 0.995, 0.1), (500, 1.0, 0.96), (800, 1.0, 0.995), (1000, 1.0, 0.9)])
        read = {name: m.read(run, 1000) for name, m in claims.MEASURES.items()
                if name not in ("max_sc_zero_loss", "hidden_progress", "steps_to_val_90_norm")  # test_families
                and not name.startswith(("nanda_", "chughtai_", "liu_"))}
        self.assertEqual(read["steps_to_val_95"], (500.0, False))
        self.assertEqual(read["steps_to_val_99"], (800.0, False))
        self.assertEqual(read["final_val_acc"], (0.9, False))
        self.assertEqual(read["best_val_acc"], (0.995, False))
        self.assertEqual(read["delay_95"], (300.0, False))  # train 95% at 200, validation at 500
        self.assertEqual(read["delay_ratio_95"], (2.5, False))  # 500 / 200

    def test_censored_reads_are_bounds(self):
        run = self.run_dir([(100, 0.5, 0.0), (250, 1.0, 0.1), (1000, 1.0, 0.2)])
        self.assertEqual(claims.MEASURES["steps_to_val_99"].read(run, 1000), (1000.0, True))
        self.assertEqual(claims.MEASURES["delay_95"].read(run, 1000), (750.0, True))
        self.assertEqual(claims.MEASURES["delay_ratio_95"].read(run, 1000), (4.0, True))


class NandaMeasures(unittest.TestCase):
    def test_the_three_phases_read_off_the_curves(self):
        run = temp_dir(self)
        steps = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
        val_loss = [5, 8, 9, 10, 12, 10, 6, 3, 0.1, 0.01]   # half its peak (12, at 500) at 700
        val_acc = [0, 0, 0, 0, 0.01, 0.05, 0.2, 0.8, 0.995, 1]
        excluded = [2, 1, 0.5, 0.8, 1.5, 2.5, 3, 3, 3, 3]      # lowest at 300: memorization ends
        restricted = [9, 9, 8, 7, 5, 3, 2, 1, 0.1, 0.01]
        (run / "metrics.csv").write_text("step,train_acc,val_acc,val_loss\n" + "".join(
            f"{s},1,{a},{v}\n" for s, a, v in zip(steps, val_acc, val_loss)))
        (run / "measures.csv").write_text("step,restricted_loss,excluded_loss\n" + "".join(
            f"{s},{r},{e}\n" for s, r, e in zip(steps, restricted, excluded)))
        value, censored, d = claims.MEASURES["nanda_phases"].read(run, 1000)
        self.assertEqual((value, censored), (700.0, False))
        self.assertEqual((d["memorization_end"], d["cleanup_start"], d["cleanup_end"]), (300, 700, 900))
        self.assertTrue(d["restricted_fell"] and d["excluded_rose"] and d["test_stayed_low"])
        results = {"nanda": {"details": [d, d, {**d, "excluded_rose": False}], "budget": 1000}}
        verdict, why = claims._three_phases("nanda", (1400, 9400, 14000))(results)
        self.assertEqual(verdict, "partly reproduced")
        self.assertIn("2 of 3 seeds show the three phases in order: memorization ends at 300, cleanup "
                      "begins at 700 and ends at 900 (medians; published 1,400, 9,400, 14,000)", why)

    def test_claims_that_share_runs_train_them_once_and_read_the_model(self):
        tmp = temp_dir(self)
        arms = (Arm("t", "nanda_mod_add", (*TINY, "task.p=7", "model.d_model=8", "model.n_heads=2", "model.d_ff=8",
                                           "training.steps=30", "output.measures=circuit")),)
        common = dict(source="a test", published_setting="tiny", published="p", here="tiny", arms=arms,
                      comparisons=())
        a = Claim(name="a", measure="nanda_frequencies", verdict=claims._few_keys("t", 8, 0.8), **common)
        b = Claim(name="b", measure="nanda_ablation", verdict=claims._ablation_rule("t"), runs_of="a", **common)
        with mock.patch.dict(claims.CLAIMS, {"a": a, "b": b}):
            rows = run_claims(["a", "b"], tmp, workers=1, log=quiet)
        self.assertFalse((tmp / "b").exists(), "b reads a's runs")
        keys, ablation = rows[0]["results"]["t"]["details"], rows[1]["results"]["t"]["details"]
        self.assertEqual([d["keys"] for d in keys], [d["keys"] for d in ablation])
        self.assertEqual(rows[0]["results"]["t"]["values"], [float(len(d["keys"])) for d in keys])
        for d in ablation:  # with every frequency kept, the neurons lose only the terms mixing two
            self.assertAlmostEqual(d["chance"], float(np.log(7)))
            self.assertTrue(all(0 <= d[k] < 100 for k in ("loss", "kept", "removed")))


class ChughtaiMeasures(unittest.TestCase):
    def test_key_irreps_read_off_the_last_row_and_the_rule(self):
        run = temp_dir(self)
        names = ["5", "4_1", "3_2", "3_1_1", "2_2_1", "2_1_1_1", "1_1_1_1_1"]
        first = {"share": [0.1, 0.2, 0.2, 0.3, 0.1, 0.05, 0.05], "sim": [0.2, 0.1, 0.1, 0.1, 0.1, 0.1]}
        # The end: (4,1) and the sign key (cosine above 0.005), (3,2) at exactly 0.005 is not.
        last = {"share": [0.0, 0.8, 0.05, 0.0, 0.0, 0.0, 0.15], "sim": [0.6, 0.005, 0.001, -0.2, 0.0, 0.3]}
        header = ["step", *(f"irrep_share_{n}" for n in names), "irrep_n90", *(f"irrep_sim_{n}" for n in names[1:])]
        lines = [",".join(header)] + [",".join(map(str, [step, *row["share"], n90, *row["sim"]]))
                                      for step, row, n90 in ((100, first, 5), (200, last, 2))]
        (run / "measures.csv").write_text("\n".join(lines) + "\n")
        value, censored, d = claims.MEASURES["chughtai_irreps"].read(run, 200)
        self.assertEqual((value, censored), (2.0, False))
        self.assertEqual(d["key"], ["4_1", "1_1_1_1_1"])
        self.assertAlmostEqual(d["key_share"], 0.95)
        self.assertEqual((d["n90"], d["step"]), (2, 200))
        rule = claims._few_irreps("m", most=4, share=0.9)
        few = {"m": {"values": [2.0, 2.0, 2.0], "details": [d, d, d]}}
        verdict, why = rule(few)
        self.assertEqual(verdict, "reproduced")
        self.assertIn("{4_1 (standard), 1_1_1_1_1 (sign)}", why)
        self.assertIn("95.00%", why)
        spread = {**d, "key": names[1:], "key_share": 1.0}
        self.assertEqual(rule({"m": {"values": [2.0, 6.0, 2.0], "details": [d, spread, d]}})[0], "partly reproduced")
        thin = {**d, "key_share": 0.5}
        self.assertEqual(rule({"m": {"values": [2.0] * 3, "details": [thin] * 3}})[0], "not reproduced")


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
            # The arms train in one pool, but each arm's sweep summary holds its own runs only.
            sweep = json.loads((tmp / "claims" / "tiny" / arm / "sweep_summary.json").read_text())
            self.assertEqual([run["seed"] for run in sweep["runs"]], [0, 1, 2])
            self.assertEqual({run["preset"] for run in sweep["runs"]},
                             {"mod_add_grokking" if arm == "decay" else "mod_add_baseline"})
            self.assertGreater(r[arm]["train_s"], 0)
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
