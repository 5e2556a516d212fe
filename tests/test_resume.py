"""Checkpoints and --resume: a run killed midway and resumed ends byte for byte where an
uninterrupted run ends, and nothing in its directory looks finished before it is."""

import json
import os
import signal
import subprocess
import sys
import time
import unittest
from pathlib import Path
from unittest import mock

import grokking  # noqa: F401  (before NumPy: grokking pins the kernels NumPy loads)
import numpy as np

from grokking import experiment
from grokking.checkpoint import load_checkpoint
from grokking.errors import ConfigError
from grokking.experiment import run_experiment
from grokking.transforms import TRANSFORMS

from helpers import ROOT, TINY, assert_same_run, quiet, run_script, temp_dir, tiny_config



class RunningMean:
    """A toy stateful transform: each gradient becomes the mean of itself and the running average
    of the earlier ones (state: that average and the count), so a resume that lost the state
    would change every later step."""

    def __init__(self):
        self.mean, self.count = None, 0

    @classmethod
    def build(cls, config, seed):
        return cls()

    def __call__(self, grads, params, step):
        if self.mean is None:
            self.mean = {k: np.zeros_like(g) for k, g in grads.items()}
        self.count += 1
        for k, g in grads.items():
            self.mean[k] += (g - self.mean[k]) / self.count
            g += self.mean[k]
            g *= 0.5

    def state_dict(self):
        return {"count": self.count, **({f"mean.{k}": v for k, v in self.mean.items()} if self.mean else {})}

    def load_state_dict(self, state):
        self.count = int(state["count"])
        means = {k[len("mean."):]: v for k, v in state.items() if k.startswith("mean.")}
        self.mean = {k: np.array(v) for k, v in means.items()} or None


def interrupt_at(step):
    """Patch the training loop to be interrupted (as by Ctrl-C) just before update ``step``."""
    real = experiment.learning_rate

    def lr(s, *args):
        if s == step:
            raise KeyboardInterrupt
        return real(s, *args)

    return mock.patch.object(experiment, "learning_rate", lr)


class Resume(unittest.TestCase):
    def setUp(self):
        self.tmp = temp_dir(self)

    def assertSameRun(self, a: Path, b: Path):
        assert_same_run(self, a, b)

    def test_interrupted_run_resumes_byte_identical(self):
        # Checkpoints at 25 (and the end); evaluations at 1..10, 20, 30, 40: the interruption at
        # step 37 leaves the row of step 30 after the checkpoint, which resume must drop and redo.
        variants = {
            "full batch adamw": [],
            "minibatch adamw": ["training.batch_size=16"],  # the batch order crosses epochs (60 rows)
            "minibatch sgd momentum": ["training.batch_size=16", "optimizer.name=sgd",
                                       "optimizer.momentum=0.9", "optimizer.lr=0.05"],
            "noise, decay to init": ["optimizer.grad_noise=0.01", "optimizer.weight_noise=0.001",
                                     "optimizer.decay_toward=init"],
            "transformer dropout": ["model.type=transformer", "model.d_model=8", "model.n_heads=2",
                                    "model.dropout=0.1"],
            "progress measures": ["output.measures=all"],
            "a gradient transform with state": ["training.batch_size=16"],
            "grokfast ema, scaled rate": ["optimizer.grokfast=ema", "optimizer.grokfast_scale_lr=true"],
            "muon, transformer": ["optimizer.name=muon", "model.type=transformer", "model.d_model=8",
                                  "model.n_heads=2", "training.batch_size=16"],
            "one-hot input, minibatch": ["model.input=onehot", "training.batch_size=16"],
            "two-hot input, stablemax": ["model.input=twohot", "model.loss=stablemax"],
            "constant norm, stablemax, float64 loss": ["optimizer.constant_norm=true", "model.loss=stablemax",
                                                       "model.loss_dtype=float64"],
            "grokfast ma, perp grad": ["training.batch_size=16", "optimizer.grokfast=ma", "optimizer.grokfast_window=8",
                                       "optimizer.perp_grad=true"],
        }
        for what, extra in variants.items():
            stateful = {"average": RunningMean.build} if what == "a gradient transform with state" else {}
            with self.subTest(what), mock.patch.dict(TRANSFORMS, stateful):
                config = tiny_config(*extra, "task.train_fraction=0.5", "output.curves=false",
                                     "output.checkpoint_interval=25")
                whole, cut = self.tmp / f"{what}-whole", self.tmp / f"{what}-cut"
                run_experiment(config, whole, log=quiet)
                with interrupt_at(37), self.assertRaises(KeyboardInterrupt):
                    run_experiment(config, cut, log=quiet)
                self.assertFalse((cut / "summary.json").exists())
                self.assertEqual(load_checkpoint(cut / "checkpoint.npz")[0]["step"], 25)
                self.assertIn(b"\n30,", (cut / "metrics.csv").read_bytes())
                run_experiment(config, cut, log=quiet, resume=True)
                self.assertSameRun(whole, cut)

    def test_resume_after_the_final_checkpoint_only_writes_the_summary(self):
        config = tiny_config("output.curves=false")
        run = self.tmp / "ended"
        first = run_experiment(config, run, log=quiet)
        (run / "summary.json").unlink()  # as if killed between the final checkpoint and the summary
        with mock.patch.object(experiment, "learning_rate", side_effect=AssertionError("trained")):
            again = run_experiment(config, run, log=quiet, resume=True)
        self.assertEqual(again["steps_to_train_99"], first["steps_to_train_99"])
        self.assertEqual(again["final_val_acc"], first["final_val_acc"])

    def test_refusals(self):
        config = tiny_config("output.curves=false")
        with self.assertRaisesRegex(ConfigError, "has no checkpoint"):
            run_experiment(config, self.tmp / "empty", log=quiet, resume=True)
        self.assertFalse((self.tmp / "empty").exists())
        run_experiment(config, self.tmp / "done", log=quiet)
        with self.assertRaisesRegex(ConfigError, "holds a finished run"):
            run_experiment(config, self.tmp / "done", log=quiet, resume=True)
        with self.assertRaisesRegex(ConfigError, "choose one"):
            run_experiment(config, self.tmp / "done", log=quiet, resume=True, force=True)
        with interrupt_at(30), self.assertRaises(KeyboardInterrupt):
            run_experiment(tiny_config("output.checkpoint_interval=10"), self.tmp / "cut", log=quiet)
        with self.assertRaisesRegex(ConfigError, r"differs .* at training.batch_size \(0 there, 8 here\), which "
                                                 "changes results; a resumed run may change only training.steps"):
            run_experiment(tiny_config("output.checkpoint_interval=10", "training.batch_size=8"), self.tmp / "cut",
                           log=quiet, resume=True)
        with self.assertRaisesRegex(ConfigError, "has trained 20 steps, more than training.steps=15"):
            run_experiment(tiny_config("output.checkpoint_interval=10", "training.steps=15"), self.tmp / "cut",
                           log=quiet, resume=True)
        # measures.csv must hold every evaluation, so measures cannot be switched on halfway.
        with self.assertRaisesRegex(ConfigError, r"output.measures is '' in .* and 'norms' here"):
            run_experiment(tiny_config("output.checkpoint_interval=10", "output.measures=norms"),
                           self.tmp / "cut", log=quiet, resume=True)
        with self.assertRaisesRegex(ConfigError, "checkpoint_interval must be >= 0"):
            run_experiment(tiny_config("output.checkpoint_interval=-1"), self.tmp / "neg", log=quiet)

    def test_a_run_stopped_before_its_first_checkpoint_resumes_from_step_0(self):
        config = tiny_config("output.curves=false", "output.checkpoint_interval=30")
        whole, cut = self.tmp / "whole", self.tmp / "cut"
        run_experiment(config, whole, log=quiet)
        with interrupt_at(20), self.assertRaises(KeyboardInterrupt):
            run_experiment(config, cut, log=quiet)
        self.assertFalse((cut / "checkpoint.npz").exists())
        self.assertTrue((cut / "config.json").exists() and (cut / "split.json").exists())
        with self.assertRaisesRegex(ConfigError, r"differs .* at training.seed"):
            run_experiment(tiny_config("output.checkpoint_interval=30", "training.seed=3"), cut, log=quiet,
                           resume=True)
        said = []
        run_experiment(config, cut, log=said.append, resume=True)
        self.assertSameRun(whole, cut)
        self.assertIn("no checkpoint yet (stopped before step 30); starting it again from step 0", said[0])
        # And from the command line, with the config.json it left.
        with interrupt_at(20), self.assertRaises(KeyboardInterrupt):
            run_experiment(config, cut, log=quiet, force=True)
        r = run_script("run_experiment.py", "--resume", "--out", str(cut))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("starting it again from step 0", r.stdout)
        self.assertEqual((cut / "metrics.csv").read_bytes(), (whole / "metrics.csv").read_bytes())

    def test_stale_temporary_files_are_removed(self):
        config = tiny_config("output.curves=false", "output.checkpoint_interval=10")
        run = self.tmp / "tmpfiles"
        with interrupt_at(15), self.assertRaises(KeyboardInterrupt):
            run_experiment(config, run, log=quiet)
        (run / ".checkpoint.npz.abc.tmp").write_bytes(b"half a checkpoint")  # what a kill leaves
        run_experiment(config, run, log=quiet, resume=True)
        self.assertEqual(list(run.glob(".*.tmp")), [])


class TrainLonger(unittest.TestCase):
    """--resume with a larger training.steps trains a finished run on from its final state, and
    gives the bytes of a run given the larger budget from the start."""

    def setUp(self):
        self.tmp = temp_dir(self)

    def test_a_finished_run_trained_longer_is_the_run_with_the_larger_budget(self):
        variants = {"mlp": [], "mlp, its last step off the schedule": ["training.steps=1050"],
                    "mlp, minibatch, measures": ["training.batch_size=16", "output.measures=all"],
                    "transformer, dropout, minibatch": ["model.type=transformer", "model.d_model=8",
                                                        "model.n_heads=2", "model.dropout=0.1",
                                                        "training.batch_size=16"]}
        for what, extra in variants.items():
            with self.subTest(what):
                base = ["training.steps=1000", "training.eval_interval=100", "output.curves=false",
                        "output.checkpoint_interval=300", *extra]
                short, whole = self.tmp / f"{what}-short", self.tmp / f"{what}-whole"
                run_experiment(tiny_config(*base), short, log=quiet)
                said = []
                longer = run_experiment(tiny_config(*base, "training.steps=2000"), short, log=said.append,
                                        resume=True)
                run_experiment(tiny_config(*base, "training.steps=2000"), whole, log=quiet)
                assert_same_run(self, whole, short)
                self.assertEqual(longer["steps"], 2000)
                self.assertRegex(said[0], r"resumed at step 10[05]0 with training.steps 10[05]0 -> 2000")
                stored = json.loads((short / "config.json").read_text())
                self.assertEqual(stored["training"]["steps"], 2000)
                self.assertEqual(stored["meta"]["changed_on_resume"][0]["training.steps"][1], 2000)

    def test_the_command_line_trains_the_run_on_from_its_own_config(self):
        out = self.tmp / "cli"
        args = ["--preset", "mod_add_grokking", "--no-curves"]
        for kv in [*TINY, "training.steps=300"]:  # d_hidden 16, where the defaults say 256
            args += ["--override", kv]
        self.assertEqual(run_script("run_experiment.py", *args, "--out", str(out)).returncode, 0)
        r = run_script("run_experiment.py", "--resume", "--out", str(out))
        self.assertEqual(r.returncode, 2)
        self.assertIn("holds a finished run of 300 steps (summary.json); nothing to resume; to train it longer "
                      "give more steps, e.g. --override training.steps=600", r.stderr)
        r = run_script("run_experiment.py", "--resume", "--override", "training.steps=600", "--out", str(out))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("completed after 600 steps", r.stdout)
        r = run_script("run_experiment.py", "--resume", "--override", "training.steps=900",
                       "--override", "optimizer.weight_decay=0.5", "--out", str(out))
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("at optimizer.weight_decay (1.0 there, 0.5 here), which changes results", r.stderr)
        whole = self.tmp / "whole"
        args[args.index("training.steps=300")] = "training.steps=600"
        self.assertEqual(run_script("run_experiment.py", *args, "--out", str(whole)).returncode, 0)
        assert_same_run(self, whole, out)

    def test_another_evaluation_interval_from_the_checkpoint_on(self):
        run = self.tmp / "interval"
        with interrupt_at(35), self.assertRaises(KeyboardInterrupt):
            run_experiment(tiny_config("output.checkpoint_interval=30"), run, log=quiet)
        run_experiment(tiny_config("output.checkpoint_interval=30", "training.eval_interval=5"), run, log=quiet,
                       resume=True)
        steps = [int(line.split(",")[0]) for line in (run / "metrics.csv").read_text().splitlines()[1:]]
        self.assertEqual(steps, [1, 2, 3, 4, 5, 7, 8, 10, 20, 30, 35, 40])  # 5 apart from 30 on

    def test_a_diverged_run_is_not_trained_longer(self):
        run = self.tmp / "diverged"
        summary = run_experiment(tiny_config("optimizer.lr=1e6", "optimizer.warmup_steps=1"), run, log=quiet)
        self.assertEqual(summary["status"], "diverged")
        with self.assertRaisesRegex(ConfigError, "holds a run that diverged at step .*; it cannot be trained longer"):
            run_experiment(tiny_config("optimizer.lr=1e6", "optimizer.warmup_steps=1", "training.steps=80"), run,
                           log=quiet, resume=True)


class Damaged(unittest.TestCase):
    """A damaged checkpoint is detected, never trusted: resume goes back to the previous good one,
    or refuses in one line; the same for the other files a resume reads."""

    def setUp(self):
        self.tmp = temp_dir(self)
        self.config = tiny_config("output.curves=false", "output.checkpoint_interval=10")
        self.whole = self.tmp / "whole"
        run_experiment(self.config, self.whole, log=quiet)

    def cut(self, name) -> Path:
        run = self.tmp / name
        with interrupt_at(35), self.assertRaises(KeyboardInterrupt):
            run_experiment(self.config, run, log=quiet)
        return run

    def test_the_previous_checkpoint_is_kept_beside_the_latest(self):
        run = self.cut("kept")
        self.assertEqual(load_checkpoint(run / "checkpoint.npz")[0]["step"], 30)
        self.assertEqual(load_checkpoint(run / "checkpoint.prev.npz")[0]["step"], 20)

    def test_a_truncated_or_bit_flipped_checkpoint_falls_back_to_the_previous_one(self):
        def truncate(path):
            data = path.read_bytes()
            path.write_bytes(data[:len(data) // 2])

        def flip_a_bit(path):  # in the middle of the arrays: the zip's CRC-32 sees it
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0x10
            path.write_bytes(bytes(data))

        def change_a_weight(path):  # a valid zip with one value changed: only the checksum sees it
            with np.load(path) as npz:
                arrays = {k: npz[k] for k in npz.files}
            name = next(k for k in arrays if k.startswith("param."))
            arrays[name] = arrays[name].copy()
            arrays[name].flat[0] += 1
            np.savez(path, **arrays)

        for damage, reason in ((truncate, "cannot read checkpoint"), (flip_a_bit, "cannot read checkpoint"),
                               (change_a_weight, "does not match its checksum")):
            with self.subTest(damage.__name__):
                run = self.cut(damage.__name__)
                damage(run / "checkpoint.npz")
                said = []
                run_experiment(self.config, run, log=said.append, resume=True)
                assert_same_run(self, self.whole, run)
                self.assertIn(reason, said[0])
                self.assertIn("resuming from the previous checkpoint, of step 20", said[0])

    def test_a_kill_between_the_renames_of_a_save_resumes_from_the_previous_one(self):
        run = self.cut("between")
        (run / "checkpoint.npz").unlink()
        run_experiment(self.config, run, log=quiet, resume=True)
        assert_same_run(self, self.whole, run)

    def test_nothing_good_to_resume_from_is_one_line_exit_2(self):
        def both_checkpoints(run):
            for name in ("checkpoint.npz", "checkpoint.prev.npz"):
                (run / name).write_bytes((run / name).read_bytes()[:100])

        def config_json(run):
            (run / "config.json").write_text('{"task": {"p": 1')

        def split_json(run):
            (run / "split.json").write_text('{"train": [1, 2, 3], "val": []}')

        def metrics_csv(run):  # a row before the checkpoint's step turned to garbage
            lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
            lines[5] = "5,0.1,x\n"
            (run / "metrics.csv").write_text("".join(lines))

        for damage, said in ((both_checkpoints, "and so is the previous one"), (config_json, "config.json' is damaged"),
                             (split_json, "is not the split this run's config draws"),
                             (metrics_csv, "lacks rows the checkpoint at step 30 expects")):
            with self.subTest(damage.__name__):
                run = self.cut(damage.__name__)
                damage(run)
                r = run_script("run_experiment.py", "--preset", "mod_add_grokking", "--resume", "--out", str(run),
                               *[a for kv in TINY + ["output.curves=false", "output.checkpoint_interval=10"]
                                 for a in ("--override", kv)])
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertIn(said, r.stderr)
                self.assertIn("--force", r.stderr)
                self.assertFalse((run / "summary.json").exists())


class KillResume(unittest.TestCase):
    """The command line as a user meets it: kill -9 a run midway, then --resume it."""

    def test_kill_9_midway_then_resume_gives_the_same_bytes(self):
        tmp = temp_dir(self)
        steps = 8000
        args = ["--preset", "mod_add_grokking", "--no-curves"]
        for kv in [*TINY, f"training.steps={steps}", "training.eval_interval=100",
                   "output.checkpoint_interval=300"]:
            args += ["--override", kv]
        killed, whole = tmp / "killed", tmp / "whole"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        proc = subprocess.Popen([sys.executable, str(ROOT / "run_experiment.py"), *args, "--out", str(killed)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                rows = (killed / "metrics.csv").read_text().splitlines() if (killed / "metrics.csv").exists() else []
                if len(rows) > 2 and int(rows[-2].split(",")[0]) >= steps // 2:
                    break
                time.sleep(0.01)
            self.assertIsNone(proc.poll(), "the run ended before it could be killed; raise steps")
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
            proc.stderr.close()
        self.assertFalse((killed / "summary.json").exists())  # nothing looks finished
        self.assertLess(load_checkpoint(killed / "checkpoint.npz")[0]["step"], steps)

        r = run_script("run_experiment.py", "--resume", "--out", str(killed))  # its own config.json
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"completed after {steps} steps", r.stdout)
        r = run_script("run_experiment.py", *args, "--out", str(whole))
        self.assertEqual(r.returncode, 0, r.stderr)
        Resume.assertSameRun(self, whole, killed)
        self.assertEqual(list(killed.glob(".*.tmp")), [])

    def test_resume_without_a_checkpoint_is_one_line_exit_2(self):
        out = temp_dir(self) / "none"
        r = run_script("run_experiment.py", "--resume", "--out", str(out))
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("nothing to resume", r.stderr)
        self.assertFalse(out.exists())
        r = run_script("run_experiment.py", "--preset", "mod_add_grokking", "--resume", "--out", str(out))
        self.assertEqual(r.returncode, 2)
        self.assertIn("has no checkpoint", r.stderr)
        self.assertFalse(out.exists())


if __name__ == "__main__":
    unittest.main()
