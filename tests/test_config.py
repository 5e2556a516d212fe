import json
import tempfile
import unittest
from pathlib import Path

from grokking.config import PRESETS, Config, parse_override, resolve_config
from grokking.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


class Overrides(unittest.TestCase):
    def test_converted_to_the_fields_type(self):
        self.assertEqual(parse_override("training.steps=2000"), ("training", "steps", 2000))
        self.assertEqual(parse_override("training.steps=1e5"), ("training", "steps", 100000))
        self.assertEqual(parse_override("optimizer.lr=3e-3"), ("optimizer", "lr", 0.003))
        self.assertEqual(parse_override("output.curves=false"), ("output", "curves", False))
        self.assertEqual(parse_override("task.operation=x/y if y odd else x-y"),
                         ("task", "operation", "x/y if y odd else x-y"))

    def test_unknown_key_names_the_closest(self):
        with self.assertRaisesRegex(ConfigError, "optimizer.weight_decay"):
            parse_override("optimizer.weight_decy=0.1")
        with self.assertRaisesRegex(ConfigError, "training.steps"):
            parse_override("training.step=5")

    def test_values_outside_the_allowed_set_are_refused(self):
        for override, key in (("model.init=xavier", "model.init must be one of normal, uniform"),
                              ("model.positional=rotary", "model.positional"),
                              ("model.position_scale=0", "model.position_scale must be > 0"),
                              ("model.activation=gelu", "model.activation")):
            with self.subTest(override=override), self.assertRaisesRegex(ConfigError, key):
                resolve_config("mod_add_grokking", None, [override])

    def test_wrong_type(self):
        for text in ("training.steps=abc", "training.steps=2.5", "optimizer.lr=fast", "output.curves=maybe"):
            with self.subTest(text=text), self.assertRaisesRegex(ConfigError, "is not a valid"):
                parse_override(text)

    def test_malformed(self):
        for text in ("training.steps", "steps=5"):
            with self.subTest(text=text), self.assertRaisesRegex(ConfigError, "section.key=value"):
                parse_override(text)


class Precedence(unittest.TestCase):
    def test_defaults_preset_file_overrides(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "c.json"
            path.write_text(json.dumps({"optimizer": {"lr": 0.005}, "training": {"steps": 77}}))
            c = resolve_config("mod_add_baseline", path, ["training.steps=99"])
        self.assertEqual(c.optimizer.weight_decay, 0.0)  # from the preset
        self.assertEqual(c.optimizer.lr, 0.005)  # file over preset
        self.assertEqual(c.training.steps, 99)  # override over file
        self.assertEqual(c.model.dtype, Config().model.dtype)  # untouched default

    def test_presets_pair_up_differing_only_in_weight_decay(self):
        for family in ("mod_add", "perm_s5"):
            grok = resolve_config(f"{family}_grokking").to_dict()
            base = resolve_config(f"{family}_baseline").to_dict()
            self.assertGreater(grok["optimizer"].pop("weight_decay"), 0)
            self.assertEqual(base["optimizer"].pop("weight_decay"), 0)
            self.assertEqual(grok, base)

    def test_config_files_match_the_presets(self):
        for name in PRESETS:
            with self.subTest(preset=name):
                self.assertEqual(resolve_config(config_path=ROOT / "configs" / f"{name}.json"),
                                 resolve_config(name))


class BadInput(unittest.TestCase):
    def write(self, text):
        tmp = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        tmp.write(text)
        tmp.close()
        self.addCleanup(Path(tmp.name).unlink)
        return tmp.name

    def test_unknown_preset(self):
        with self.assertRaisesRegex(ConfigError, "did you mean 'mod_add_grokking'"):
            resolve_config("mod_add_grok")

    def test_malformed_json(self):
        with self.assertRaisesRegex(ConfigError, "not valid JSON.*line 1"):
            resolve_config(config_path=self.write('{"task": {'))

    def test_unknown_json_keys(self):
        with self.assertRaisesRegex(ConfigError, "unknown key 'task.modulus'"):
            resolve_config(config_path=self.write('{"task": {"modulus": 5}}'))
        with self.assertRaisesRegex(ConfigError, "unknown section 'trainer'"):
            resolve_config(config_path=self.write('{"trainer": {}}'))

    def test_wrong_json_type(self):
        with self.assertRaisesRegex(ConfigError, "training.steps.*not a valid int"):
            resolve_config(config_path=self.write('{"training": {"steps": "10"}}'))
        with self.assertRaisesRegex(ConfigError, "not a valid int"):
            resolve_config(config_path=self.write('{"training": {"steps": true}}'))

    def test_missing_file(self):
        with self.assertRaisesRegex(ConfigError, "does not exist"):
            resolve_config(config_path="/nonexistent/c.json")

    def test_values_out_of_range(self):
        cases = {
            "task.train_fraction=0": "train_fraction must be in \\(0, 1\\)",
            "task.train_fraction=1.5": "train_fraction must be in \\(0, 1\\)",
            "training.steps=0": "steps must be >= 1",
            "task.p=96": "must be prime",
            "model.activation=gelu": "relu, quadratic, tanh",
            "model.dtype=float16": "one of float32, float64",
            "optimizer.name=adagrad": "one of adamw, adam, sgd",
        }
        for override, message in cases.items():
            over = [override, "task.operation=x/y"] if "task.p" in override else [override]
            with self.subTest(override=override), self.assertRaisesRegex(ConfigError, message):
                resolve_config("mod_add_grokking", None, over)
        with self.assertRaisesRegex(ConfigError, "between 2 and 6"):
            resolve_config("perm_s5_grokking", None, ["task.n=8"])

    def test_a_runs_config_json_can_be_replayed(self):
        c = resolve_config("perm_s5_grokking")
        path = self.write(json.dumps({**c.to_dict(), "meta": {"numpy": "x"}}))
        self.assertEqual(resolve_config(config_path=path), c)


if __name__ == "__main__":
    unittest.main()
