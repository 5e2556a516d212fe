"""output.loggers: TensorBoard event files read back with TensorBoard's own reader, and W&B's
offline run read back record by record, hold what metrics.csv holds, also across --resume."""

import contextlib
import importlib.util
import io
import json
import struct
import unittest
from pathlib import Path
from unittest import mock

from grokking import experiment
from grokking.cli import run_experiment_main
from grokking.errors import ConfigError
from grokking.experiment import run_experiment

from helpers import quiet, temp_dir, tiny_config

HAS_TB = all(importlib.util.find_spec(m) for m in ("tensorboardX", "tensorboard"))
HAS_WANDB = importlib.util.find_spec("wandb") is not None



def metrics_rows(run: Path) -> list[dict]:
    lines = (run / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, map(float, line.split(",")))) for line in lines[1:]]


def interrupted_then_resumed(config, run: Path, at_step: int):
    real = experiment.learning_rate

    def lr(step, *args):
        if step == at_step:
            raise KeyboardInterrupt
        return real(step, *args)

    with mock.patch.object(experiment, "learning_rate", lr), contextlib.suppress(KeyboardInterrupt):
        run_experiment(config, run, log=quiet)
    assert not (run / "summary.json").exists()
    return run_experiment(config, run, log=quiet, resume=True)


def tensorboard_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}, acc


def wandb_records(run_file: Path) -> list:
    """The records of a .wandb file: a 7-byte header (':W&B', a key, a version), then LevelDB-log
    chunks in 32 KiB blocks (4-byte checksum, 2-byte length, 1-byte type: full, first, middle, last)."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", data[:8]
    records, pos, pending, block = [], 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the end of a block too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full, last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_history(run_dir: Path):
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    out = {"history": {}, "config": {}, "summary": {}, "ids": set(), "names": set()}
    for f in files:
        for r in wandb_records(f):
            kind = r.WhichOneof("record_type")
            if kind == "history":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
                out["history"][int(items["_step"])] = items
            elif kind == "run":
                out["ids"].add(r.run.run_id)
                out["names"].add(r.run.display_name)
                for item in r.run.config.update:
                    out["config"][item.key] = json.loads(item.value_json)
            elif kind == "summary":
                for item in r.summary.update:
                    out["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out, files


@unittest.skipUnless(HAS_TB, "tensorboardX and tensorboard are not installed (pip install -e '.[tensorboard]')")
class TensorBoard(unittest.TestCase):
    def test_events_read_back_hold_the_metrics_hparams_and_summary_also_after_resume(self):
        tmp = temp_dir(self)
        config = tiny_config("output.loggers=tensorboard", "training.steps=60", "output.checkpoint_interval=20",
                             "output.curves=false")
        summary = run_experiment(config, tmp / "whole", log=quiet)
        interrupted_then_resumed(config, tmp / "resumed", at_step=45)  # rows 50 and 60 logged twice
        for run in (tmp / "whole", tmp / "resumed"):
            scalars, acc = tensorboard_scalars(run / "tensorboard")
            rows = metrics_rows(run)
            for column in ("train_acc", "val_acc", "train_loss", "weight_norm"):
                self.assertEqual([s for s, _ in scalars[column]], [int(r["step"]) for r in rows], (run, column))
                for (_, value), row in zip(scalars[column], rows):
                    self.assertAlmostEqual(value, row[column], delta=1e-6 * max(1, abs(row[column])))
            self.assertAlmostEqual(scalars["summary/best_val_acc"][-1][1], summary["best_val_acc"], places=6)
            hparams = acc.PluginTagToContent("hparams")
            self.assertIn("_hparams_/session_start_info", hparams)
            start = hparams["_hparams_/session_start_info"].decode("latin-1")
            self.assertIn("task.operation", start)
            self.assertIn("x+y", start)

    def test_force_replaces_the_old_log_directory(self):
        run = temp_dir(self) / "run"
        config = tiny_config("output.loggers=tensorboard", "training.steps=20", "output.curves=false")
        run_experiment(config, run, log=quiet)
        run_experiment(tiny_config("output.loggers=tensorboard", "training.steps=10", "output.curves=false"),
                       run, log=quiet, force=True)
        scalars, _ = tensorboard_scalars(run / "tensorboard")
        self.assertEqual(scalars["val_acc"][-1][0], 10)  # nothing of the first run's 20 steps


@unittest.skipUnless(HAS_WANDB, "wandb is not installed (pip install -e '.[wandb]')")
class WeightsAndBiases(unittest.TestCase):
    @classmethod
    def tearDownClass(cls):
        # Stop W&B's background service now: at exit it would be handed unittest's sys.exit(False),
        # a bool, which its protobuf message refuses with a warning.
        import wandb

        wandb.teardown()

    def test_offline_run_holds_the_metrics_config_and_summary_and_resume_keeps_its_id(self):
        tmp = temp_dir(self)
        config = tiny_config("output.loggers=wandb", "training.steps=60", "output.checkpoint_interval=20",
                             "output.curves=false")
        with mock.patch.dict("os.environ", {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp)}):
            summary = interrupted_then_resumed(config, tmp / "run", at_step=45)
        logged, files = wandb_history(tmp / "run")
        self.assertEqual(len(files), 2)  # one offline run directory per session
        self.assertEqual(len(logged["ids"]), 1)  # of one run
        self.assertEqual(len(logged["names"]), 1)
        self.assertTrue(next(iter(logged["names"])).endswith("seed 0"), logged["names"])
        rows = metrics_rows(tmp / "run")
        self.assertEqual(sorted(logged["history"]), [int(r["step"]) for r in rows])
        for row in rows:
            self.assertEqual(logged["history"][int(row["step"])]["val_acc"], row["val_acc"])
        self.assertEqual(logged["config"]["task"]["operation"], "x+y")
        self.assertEqual(logged["summary"]["best_val_acc"], summary["best_val_acc"])


class Choosing(unittest.TestCase):
    def test_unknown_or_missing_loggers_are_one_line_and_exit_2_before_anything_is_written(self):
        with self.assertRaisesRegex(ConfigError, "unknown logger 'mlflow'; choose from tensorboard, wandb"):
            tiny_config("output.loggers=mlflow")
        out = temp_dir(self) / "run"
        real = importlib.util.find_spec
        missing = mock.patch.object(importlib.util, "find_spec",
                                    lambda name, *a: None if name == "tensorboardX" else real(name, *a))
        err = io.StringIO()
        with missing, contextlib.redirect_stderr(err):
            code = run_experiment_main(["--preset", "mod_add_grokking", "--override", "output.loggers=tensorboard",
                                        "--out", str(out)])
        self.assertEqual(code, 2)
        self.assertEqual(err.getvalue().count("\n"), 1, err.getvalue())
        self.assertIn("output.loggers=tensorboard needs the tensorboardX package: pip install -e '.[tensorboard]'",
                      err.getvalue())
        self.assertFalse(out.exists())


if __name__ == "__main__":
    unittest.main()
