"""One writer per run directory, and a full disk: two processes on one --out never mix two runs'
files, --force leaves nothing of the run it replaces, a killed holder blocks nobody, two sweeps on
one directory share the work, and a run that runs out of space says so in one line and stays
resumable."""

import contextlib
import csv
import dataclasses
import errno
import importlib.util
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest
from pathlib import Path
from unittest import mock

from grokking import artifacts, loggers, rundir
from grokking.cli import make_figures_main, make_report_main, run_experiment_main
from grokking.config import OutputConfig
from grokking.errors import ConfigError
from grokking.experiment import run_experiment
from grokking.measures import MEASURES_CSV
from grokking.plotting import read_metrics
from grokking.sweeps import FAULT_ENV, disk_full_after_first_checkpoint, run_suite

from helpers import ROOT, TINY, assert_same_run, quiet, run_script, start_script, temp_dir, tiny_config

LONG = [*TINY, "training.steps=100000", "training.eval_interval=100", "output.checkpoint_interval=200"]


def overrides(kvs):
    return [arg for kv in kvs for arg in ("--override", kv)]



def wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stop(proc, sig=signal.SIGKILL):
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    proc.communicate()


HOLD = """
import sys, time
sys.path.insert(0, sys.argv[2])
from grokking import rundir
with rundir.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def hold_in_subprocess(out: Path, seconds: float):
    """A process that holds ``out`` for ``seconds``, started and holding when this returns."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out), str(ROOT / "src"), str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    return proc


class Lock(unittest.TestCase):
    def test_a_second_holder_is_refused_at_once_naming_the_first(self):
        out = temp_dir(self)
        holder = hold_in_subprocess(out, 30)
        try:
            t0 = time.monotonic()
            with self.assertRaises(rundir.RunDirBusy) as cm:
                with rundir.hold(out):
                    pass
            self.assertLess(time.monotonic() - t0, 1)
            self.assertIn(f"pid {holder.pid}", str(cm.exception))
        finally:
            stop(holder)
        with rundir.hold(out) as waited:  # the kernel released the killed holder's lock
            self.assertFalse(waited)
            with rundir.hold(out):  # re-entrant within a process
                pass
            self.assertTrue((out / rundir.LOCK).exists())
        self.assertFalse((out / rundir.LOCK).exists())

    def test_waiting_takes_the_directory_when_the_holder_lets_go(self):
        out = temp_dir(self)
        holder = hold_in_subprocess(out, 1.0)
        try:
            t0 = time.monotonic()
            with rundir.hold(out, wait=True) as waited:
                self.assertTrue(waited)
                self.assertGreater(time.monotonic() - t0, 0.8)  # held only once the holder let go
        finally:
            stop(holder)

    def test_without_kernel_locks_a_dead_holder_on_this_host_is_taken_over(self):
        out = temp_dir(self)
        no_locks = OSError(errno.ENOLCK, "No locks available")
        with mock.patch.object(rundir.fcntl, "flock", side_effect=no_locks):
            dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                  capture_output=True, text=True).stdout.strip()
            (out / rundir.LOCK).write_text(f"host {rundir.socket.gethostname()}, pid {dead}, since then")
            with rundir.hold(out):
                self.assertIn(f"pid {os.getpid()}", (out / rundir.LOCK).read_text())
            self.assertFalse((out / rundir.LOCK).exists())
            # a live holder (here: this test's parent) is refused, with the file to delete if it is gone
            (out / rundir.LOCK).write_text(f"host {rundir.socket.gethostname()}, pid {os.getppid()}, since then")
            with self.assertRaises(rundir.RunDirBusy) as cm:
                with rundir.hold(out):
                    pass
            self.assertIn(f"if that process is gone, delete {str(out / rundir.LOCK)!r}", str(cm.exception))


class TwoRunsOneDirectory(unittest.TestCase):
    """The issue's race: a run in progress, then another command aimed at its directory."""

    def test_a_live_run_is_never_replaced_even_with_force(self):
        out = temp_dir(self) / "x"
        first = start_script("run_experiment.py", "--preset", "perm_s5_grokking", *overrides(LONG),
                             "--no-curves", "--out", str(out))
        try:
            wait_for(lambda: (out / "metrics.csv").exists(), "the first run's metrics.csv")
            config_before = (out / "config.json").read_bytes()
            for extra in ([], ["--force"], ["--resume"]):
                r = run_script("run_experiment.py", "--preset", "mod_add_grokking", *overrides(TINY),
                               "--no-curves", *extra, "--out", str(out))
                self.assertEqual(r.returncode, 2, (extra, r.stderr))
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertIn(f"is in use by another run (host {rundir.socket.gethostname()}, pid {first.pid}",
                              r.stderr)
            self.assertEqual((out / "config.json").read_bytes(), config_before)
            self.assertIsNone(first.poll())
        finally:
            stop(first, signal.SIGINT)
        self.assertEqual(first.returncode, 130)
        # kill -9 of the holder, then the next command takes over without a manual step
        killed = temp_dir(self) / "killed"
        proc = start_script("run_experiment.py", "--preset", "mod_add_grokking", *overrides(LONG),
                            "--no-curves", "--out", str(killed))
        wait_for(lambda: (killed / "checkpoint.npz").exists(), "a checkpoint")
        stop(proc)
        self.assertTrue((killed / rundir.LOCK).exists())  # left behind, but nobody holds it
        r = run_script("run_experiment.py", "--preset", "mod_add_grokking", *overrides(TINY), "--no-curves",
                       "--force", "--out", str(killed))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads((killed / "config.json").read_text())["training"]["steps"], 40)
        self.assertFalse((killed / rundir.LOCK).exists())

    def test_a_refused_run_leaves_no_directory_behind(self):
        out = temp_dir(self) / "new"
        with self.assertRaises(ConfigError):
            run_experiment(tiny_config("optimizer.lr=-1"), out, log=quiet)
        self.assertFalse(out.exists())


class Force(unittest.TestCase):
    """--force replaces the run in a directory whole: nothing of the old run survives beside the new."""

    def test_a_run_without_measures_leaves_no_measures_of_the_run_before(self):
        # The old measures.csv (to step 60) stayed beside the new metrics.csv (to step 30), and the
        # figures and the report joined the two.
        out = temp_dir(self) / "run"
        run_experiment(tiny_config("output.measures=all", "training.steps=60", "output.curves=false"), out,
                       log=quiet)
        self.assertTrue((out / MEASURES_CSV).exists())
        run_experiment(tiny_config("training.steps=30", "output.curves=false"), out, log=quiet, force=True)
        self.assertFalse((out / MEASURES_CSV).exists())
        self.assertEqual(read_metrics(out / "metrics.csv")["step"][-1], 30)

    def test_it_clears_everything_a_run_with_every_output_and_the_tools_wrote(self):
        # Every output a run has, on: a new one must be turned on here, so that --force is shown to
        # clear what it writes.
        self.assertEqual([f.name for f in dataclasses.fields(OutputConfig)],
                         ["curves", "progress", "checkpoint_interval", "loggers", "snapshots", "measures"])
        trackers = [name for name, (module, _) in loggers.EXTRAS.items() if importlib.util.find_spec(module)]
        if "wandb" in trackers:
            import wandb

            self.addCleanup(wandb.teardown)  # its background service, now rather than at exit
        tmp = temp_dir(self)
        out = tmp / "run"
        config = tiny_config("output.curves=true", "output.checkpoint_interval=10", "output.measures=all",
                             "output.snapshots=log:3", f"output.loggers={','.join(trackers)}")
        with mock.patch.dict("os.environ", {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp)}), \
                contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run_experiment(config, out, log=quiet)
            # the tools' outputs at their defaults, which are inside the run directory
            self.assertEqual(make_figures_main([str(out)]), 0)
            self.assertEqual(make_report_main([str(out)]), 0)
        (out / ".metrics.csv.killed.tmp").write_text("")  # what a kill mid-write leaves
        written = {path.name for path in out.iterdir()}
        self.assertLessEqual({MEASURES_CSV, "curves.png", "figures", "report.html", "snapshots", *trackers}, written)
        artifacts.prepare_out_dir(out, force=True)
        self.assertEqual(sorted(path.name for path in out.iterdir()), [])

    def test_a_directory_without_a_run_keeps_its_own_figures(self):
        out = temp_dir(self) / "mine"
        (out / "figures").mkdir(parents=True)
        run_experiment(tiny_config("output.curves=false"), out, log=quiet)
        self.assertTrue((out / "figures").is_dir())


def sweep_rows(out: Path) -> dict:
    with open(out / "sweep_summary.csv") as fh:
        return {row["seed"]: row for row in csv.DictReader(fh)}


SWEEP = """
import json, sys
sys.path.insert(0, sys.argv[1])
from grokking.sweeps import run_suite
rows = run_suite(["mod_add_grokking"], [0, 1, 2, 3], sys.argv[2], overrides=json.loads(sys.argv[3]),
                 curves=False, workers=1, log=lambda *_: None)
print(json.dumps({str(r["seed"]): [r["status"], r["action"]] for r in rows}))
"""


class TwoSweepsOneDirectory(unittest.TestCase):
    def test_two_sweeps_share_the_work_and_both_summaries_hold_every_run(self):
        tmp = temp_dir(self)
        kvs = json.dumps([*TINY, "training.steps=3000", "training.eval_interval=500"])
        sweeps = [subprocess.Popen([sys.executable, "-c", SWEEP, str(ROOT / "src"), str(tmp / "sweep"), kvs],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for _ in range(2)]
        outcomes = []
        for proc in sweeps:
            out, err = proc.communicate(timeout=240)
            self.assertEqual(proc.returncode, 0, err)
            outcomes.append(json.loads(out))
        for seed in "0123":
            statuses = sorted(o[seed][0] for o in outcomes)
            actions = sorted(o[seed][1] for o in outcomes)
            self.assertEqual(statuses, ["completed", "completed"])
            # trained once, by one sweep; the other skipped it (finished before it looked) or took its result
            self.assertIn(actions, (["skipped", "trained"], ["finished elsewhere", "trained"]), seed)
        self.assertTrue(any(o[s][1] == "finished elsewhere" for o in outcomes for s in o),
                        f"the sweeps never overlapped on a run: {outcomes}")
        rows = sweep_rows(tmp / "sweep")  # whichever sweep ended last wrote it, whole
        self.assertEqual([rows[s]["status"] for s in "0123"], ["completed"] * 4)
        r = subprocess.run([sys.executable, "-c", SWEEP, str(ROOT / "src"), str(tmp / "alone"), kvs],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        for seed in "0123":
            run = tmp / "sweep" / "mod_add_grokking" / f"seed_{seed}"
            assert_same_run(self, run, tmp / "alone" / "mod_add_grokking" / f"seed_{seed}")
            self.assertFalse((run / rundir.LOCK).exists())


class DiskFull(unittest.TestCase):
    """Out of space: one line saying what, where and how to go on; the directory stays resumable."""

    def test_the_command_line_says_one_line_and_resume_finishes_the_same_run(self):
        tmp = temp_dir(self)
        args = ["--preset", "mod_add_grokking", "--no-curves",
                *overrides([*TINY, "training.steps=100", "output.checkpoint_interval=20"])]
        err = io.StringIO()
        with disk_full_after_first_checkpoint(), contextlib.redirect_stderr(err):
            code = run_experiment_main([*args, "--out", str(tmp / "full")])
        self.assertEqual(code, 1)
        self.assertEqual(err.getvalue().count("\n"), 1, err.getvalue())
        self.assertIn(f"could not write {tmp / 'full' / 'checkpoint.npz'}: No space left on device; "
                      "the run is kept at its checkpoint of step 20", err.getvalue())
        self.assertFalse((tmp / "full" / "summary.json").exists())
        self.assertEqual(list((tmp / "full").glob(".*")), [])  # no temporary file, no lock
        with contextlib.redirect_stdout(io.StringIO()):  # each run's one line
            self.assertEqual(run_experiment_main(["--resume", "--out", str(tmp / "full")]), 0)
            self.assertEqual(run_experiment_main([*args, "--out", str(tmp / "whole")]), 0)
        assert_same_run(self, tmp / "full", tmp / "whole")

    def test_a_sweep_records_the_run_as_failed_without_retrying_and_resumes_it_later(self):
        tmp = temp_dir(self)
        kvs = [*TINY, "training.steps=100", "output.checkpoint_interval=20"]
        with mock.patch.dict(os.environ, {FAULT_ENV: "mod_add_grokking/seed_1:disk-full"}):
            rows = run_suite(["mod_add_grokking"], [0, 1], tmp / "sweep", overrides=kvs, curves=False,
                             workers=1, retries=1, log=quiet)
        self.assertEqual([r["status"] for r in rows], ["completed", "failed"])
        self.assertEqual(rows[1]["attempts"], 1)  # a retry from scratch would discard the checkpoint
        self.assertIn("WriteFailed: could not write", rows[1]["error"])
        self.assertIn("kept at its checkpoint of step 20", rows[1]["error"])
        rows = run_suite(["mod_add_grokking"], [0, 1], tmp / "sweep", overrides=kvs, curves=False,
                         workers=1, log=quiet)
        self.assertEqual([(r["status"], r["action"]) for r in rows],
                         [("completed", "skipped"), ("completed", "resumed")])
        run_suite(["mod_add_grokking"], [1], tmp / "whole", overrides=kvs, curves=False, workers=1, log=quiet)
        assert_same_run(self, tmp / "sweep" / "mod_add_grokking" / "seed_1",
                        tmp / "whole" / "mod_add_grokking" / "seed_1")

    def test_a_real_small_filesystem(self):
        """A tmpfs too small for a second checkpoint, then grown: the kernel's own ENOSPC."""
        tmp = temp_dir(self)
        args = ["--preset", "mod_add_grokking", "--no-curves",
                *overrides(["training.steps=200", "output.checkpoint_interval=50", "output.progress=false"])]
        r = run_script("run_experiment.py", *args, "--out", str(tmp / "whole"))
        self.assertEqual(r.returncode, 0, r.stderr)
        need = sum((tmp / "whole" / f).stat().st_size for f in ("config.json", "split.json", "metrics.csv"))
        ckpt = (tmp / "whole" / "checkpoint.npz").stat().st_size
        mnt = tmp / "small"
        mnt.mkdir()
        size_kb = (need + ckpt * 3 // 2) // 1024  # room for one checkpoint, not for its replacement beside it
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)],
                                 capture_output=True, text=True) if shutil.which("mount") else None
        if mounted is None or mounted.returncode != 0:
            self.skipTest("cannot mount a tmpfs here (needs root); the injected tests above cover the logic")
        self.addCleanup(subprocess.run, ["umount", str(mnt)], capture_output=True)
        r = run_script("run_experiment.py", *args, "--out", str(mnt / "run"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn(f"could not write {mnt / 'run' / 'checkpoint.npz'}: No space left on device; "
                      "the run is kept at its checkpoint of step 50: free space, then resume it", r.stderr)
        self.assertEqual(list((mnt / "run").glob(".*")), [])
        subprocess.run(["mount", "-o", f"remount,size={4 * size_kb}k", str(mnt)], check=True)
        r = run_script("run_experiment.py", "--resume", "--out", str(mnt / "run"))
        self.assertEqual(r.returncode, 0, r.stderr)
        assert_same_run(self, mnt / "run", tmp / "whole")


if __name__ == "__main__":
    unittest.main()
