"""Liu et al.'s toy phase diagram as a claim: the runner, its resumption, the agreement and verdict."""

import dataclasses
import io
import json
import unittest
from contextlib import redirect_stdout
from pathlib import Path
from unittest import mock

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)

from grokking import claims, toy, toy_claim
from grokking.claims import ClaimFailed, run_claims
from grokking.errors import ConfigError

from helpers import quiet, temp_dir

# Two of the grid's learning rates and weight decays, 300 steps (about 0.3 s a cell): at eta_dec 1e-2
# and no weight decay training reaches 0.9 at step 245, so the cells are not all alike.
ETAS, WDS, STEPS = toy.ETA_DECS[-2:], (0.0, 1.0), 300
NEVER = STEPS - 1
# Made-up published cells for that sub-grid, one of each phase the budget allows, by their rule.
PUBLISHED = {(ETAS[0], 0.0): (NEVER, NEVER), (ETAS[1], 0.0): (245, NEVER),
             (ETAS[0], 1.0): (100, 120), (ETAS[1], 1.0): (NEVER, NEVER)}


def published_csv(folder: Path) -> Path:
    path = folder / "published.csv"
    path.write_text("# made up\neta_dec,weight_decay,train_step,test_step\n"
                    + "".join(f"{e!r},{w},{t},{s}\n" for (e, w), (t, s) in PUBLISHED.items()))
    return path


def tiny_claim(folder: Path, steps=STEPS) -> claims.Claim:
    grid = toy_claim.ToyGrid(eta_decs=ETAS, weight_decays=WDS, steps=steps, published=published_csv(folder))
    return dataclasses.replace(claims.CLAIMS["liu_toy_phases"], name="tiny_liu", runner=claims.liu_toy_runner(grid))


def run(claim, out, **kw):
    with mock.patch.dict(claims.CLAIMS, {claim.name: claim}):
        return run_claims([claim.name], out, log=quiet, **kw)


class Agreement(unittest.TestCase):
    def test_the_published_cells_give_the_published_counts(self):
        theirs = toy.read_steps(toy_claim.PUBLISHED)
        self.assertEqual(len(theirs), 110)
        counts = [sum(toy.liu_phase(c["train_step"], c["test_step"]) == p for c in theirs) for p in toy.PHASES]
        self.assertEqual(counts, [12, 18, 49, 31])  # comprehension, grokking, memorization, confusion (Fig. 5b)

    def test_compare_on_a_made_up_grid(self):
        def cell(eta, wd, train, test):
            return {"eta_dec": eta, "weight_decay": wd, "train_step": train, "test_step": test}

        # steps 10,000: 9999 is never; gap 1000 parts grokking from comprehension
        ours = [cell(1e-3, 0, 100, 200), cell(1e-3, 1, 100, 5000), cell(1e-2, 0, 100, 9999), cell(1e-2, 1, 9999, 9999)]
        theirs = [cell(1e-2, 1, 9999, 9999), cell(1e-2, 0, 9999, 9999), cell(1e-3, 1, 90, 4000), cell(1e-3, 0, 300, 900)]
        cmp = toy_claim.compare(ours, theirs, 10_000)
        self.assertEqual((cmp["agree"], cmp["cells"]), (3, 4))  # ours memorizes at (1e-2, 0), theirs is confusion
        self.assertEqual(dict(cmp["ours"]), {"comprehension": 1, "grokking": 1, "memorization": 1, "confusion": 1})
        self.assertEqual(dict(cmp["theirs"]), {"comprehension": 1, "grokking": 1, "confusion": 2})
        self.assertEqual(cmp["matrix"]["memorization"]["confusion"], 1)
        self.assertEqual(sum(sum(row.values()) for row in cmp["matrix"].values()), 4)
        self.assertEqual(cmp["mismatches"], [(1e-2, 0, 100, 9999, 9999, 9999, "memorization", "confusion")])
        self.assertEqual(cmp["steps"]["train_step"]["both_reached"], 2)  # 100 vs 300 and 100 vs 90
        self.assertEqual(cmp["steps"]["train_step"]["within_10pct"], 0)
        with self.assertRaisesRegex(ConfigError, "lack eta_dec 0.1"):
            toy_claim.compare(ours + [cell(0.1, 0, 1, 1)], theirs, 10_000)

    def test_the_verdict_rule(self):
        rule = claims._phase_agreement(0.9, 0.75, 3)
        theirs = {"comprehension": 12, "grokking": 18, "memorization": 49, "confusion": 31}

        def verdict(agree, ours, others=()):
            results = {"published_draw": {"details": [{"seed": 58, "agree": agree, "cells": 110, "ours": ours,
                                                       "theirs": theirs}]}}
            if others:
                results["other_draws"] = {"details": [{"seed": s, "agree": a, "cells": 110} for s, a in others]}
            return rule(results)

        close = {"comprehension": 11, "grokking": 18, "memorization": 50, "confusion": 31}
        v, why = verdict(107, close)
        self.assertEqual(v, "reproduced")
        self.assertIn("107 of 110 cells (97.3%) in the published phase on their draw (seed 58); "
                      "comprehension 11 (theirs 12)", why)
        self.assertEqual(verdict(99, close)[0], "reproduced")  # 90.0%: the bound is inclusive
        self.assertEqual(verdict(98, close)[0], "partly reproduced")  # 89.1%
        self.assertEqual(verdict(107, {**close, "grokking": 14, "memorization": 54})[0], "partly reproduced")
        self.assertEqual(verdict(107, {**close, "comprehension": 12, "grokking": 15, "memorization": 52})[0],
                         "reproduced")  # 3 off: the bound is inclusive
        self.assertEqual(verdict(82, close)[0], "not reproduced")  # 74.5%
        v, why = verdict(107, close, others=[(0, 77), (1, 66)])
        self.assertEqual(v, "reproduced")  # other draws say how much is the draw's, not whether it reproduces
        self.assertIn("other draws: seed 0 70.0%, seed 1 60.0%", why)


class Runner(unittest.TestCase):
    def test_a_sub_grid_end_to_end_and_resumed(self):
        tmp = temp_dir(self)
        claim = tiny_claim(tmp)
        rows = run(claim, tmp / "out", workers=2)
        sdir = tmp / "out" / "tiny_liu" / "seed_58"
        self.assertEqual(len(list((sdir / "cells").glob("*.json"))), 4)
        self.assertEqual((tmp / "out" / "tiny_liu" / "published.csv").read_bytes(), (tmp / "published.csv").read_bytes())
        ours = toy.read_steps(sdir / "cells.csv")
        # The runner's cells are the toy's own runs, on their draw.
        direct = toy.run(ETAS[1], 0.0, steps=STEPS)
        cell = next(c for c in ours if toy_claim.key(c) == toy_claim.key({"eta_dec": ETAS[1], "weight_decay": 0.0}))
        self.assertEqual((cell["train_step"], cell["test_step"]), (direct["train_step"], direct["test_step"]))
        # The agreement, counted here from the cells on disk and the made-up published phases.
        agree = sum(toy.liu_phase(c["train_step"], c["test_step"], STEPS)
                    == toy.liu_phase(*PUBLISHED[(c["eta_dec"], c["weight_decay"])], STEPS) for c in ours)
        row = rows[0]
        r = row["results"]["published_draw"]
        self.assertEqual(r["values"], [agree / 4])
        self.assertEqual((r["details"][0]["agree"], r["details"][0]["cells"]), (agree, 4))
        self.assertEqual(r["details"][0]["theirs"],
                         {"comprehension": 1, "grokking": 0, "memorization": 1, "confusion": 2})
        self.assertEqual(set(row["results"]), {"published_draw"})  # no other draw unless asked
        self.assertEqual(row["verdict"], claims._phase_agreement(0.9, 0.75, 3)(row["results"])[0])
        out = tmp / "out"
        table = (out / "claims.md").read_text()
        self.assertIn("| tiny_liu: share of the phase diagram's cells in the published cell's phase (their rule) | "
                      "12 comprehension", table)
        self.assertIn(f"seed 58 (their draw): {agree} of 4 cells ({agree / 4:.1%}) in the published phase", table)
        self.assertIn("published 1/0/1/2", table)
        self.assertIn(f"**{row['verdict']}**", table)
        self.assertIn(f"tiny_liu,published_draw,{agree / 4}", (out / "claims.csv").read_text())
        self.assertEqual((out / "tiny_liu.png").read_bytes()[:4], b"\x89PNG")

        # A second call trains nothing and gives the same row.
        with mock.patch.object(toy_claim, "_train_cell", side_effect=AssertionError("trained again")):
            again = run(claim, out, workers=1)
        self.assertEqual(json.dumps(again, sort_keys=True), json.dumps(rows, sort_keys=True))
        # A lost cell (a kill while it ran) is the only one trained again.
        (sdir / "cells" / "eta01_wd01.json").unlink()
        with mock.patch.object(toy_claim, "_train_cell", wraps=toy_claim._train_cell) as trained:
            resumed = run(claim, out, workers=1)
        self.assertEqual([c.args[:2] for c in trained.call_args_list], [(ETAS[1], 1.0)])
        self.assertEqual(resumed[0]["results"]["published_draw"]["values"], r["values"])
        # Cells of another setting are refused, not mixed in.
        with self.assertRaisesRegex(ConfigError, "holds a cell of another setting .*300 steps"):
            run(tiny_claim(tmp, steps=30), out, workers=1)

    def test_other_draws_and_a_failed_run(self):
        tmp = temp_dir(self)
        claim = tiny_claim(tmp, steps=30)
        rows = run(claim, tmp / "out", workers=1, seeds=[0, 1, 58])
        r = rows[0]["results"]
        self.assertEqual([d["seed"] for d in r["published_draw"]["details"]], [58])  # always, and first
        self.assertEqual([d["seed"] for d in r["other_draws"]["details"]], [0, 1])
        for seed in (0, 1, 58):
            self.assertEqual(len(list((tmp / "out" / "tiny_liu" / f"seed_{seed}" / "cells").glob("*.json"))), 4)
        self.assertNotEqual(toy.make_data(0)["train"].tolist(), toy.make_data(58)["train"].tolist())  # another draw

        calls, train_cell = [], toy_claim._train_cell

        def fails_second(*args):
            calls.append(args)
            if len(calls) == 2:
                raise FloatingPointError("boom")
            return train_cell(*args)

        with mock.patch.object(toy_claim, "_train_cell", side_effect=fails_second):
            with self.assertRaisesRegex(ClaimFailed, r"tiny_liu: a toy run failed \(seed 2, eta_dec 0.01, weight "
                                                     r"decay 0: FloatingPointError: boom\); the finished cells are kept"):
                run(claim, tmp / "out", workers=1, seeds=[2, 0, 1])
        self.assertEqual(len(list((tmp / "out" / "tiny_liu" / "seed_2" / "cells").glob("*.json"))), 1)


class CommandLine(unittest.TestCase):
    def test_list_shows_the_claim_and_its_cost(self):
        from grokking.cli import run_claims_main

        buf = io.StringIO()
        with redirect_stdout(buf):
            self.assertEqual(run_claims_main(["--list"]), 0)
        self.assertIn("liu_toy_phases (Liu et al. 2022, Fig. 5b, about 9 min): 12 comprehension, 18 grokking, "
                      "49 memorization and 31 confusion cells", buf.getvalue())


if __name__ == "__main__":
    unittest.main()
