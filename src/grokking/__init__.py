"""grokking: reproduce Power et al. (2021) on a laptop CPU, with a NumPy engine.

The library call behind every command line is ``run_experiment(config, out)``; sweeps call it once
per run. Configs come from ``resolve_config(preset, config_path, overrides)``; ``open_run(path)``
reads a run back for analysis.
"""

__version__ = "0.1.0"

from . import numerics  # noqa: E402  (first: the kernels are chosen when NumPy is imported)

numerics.pin()

from .config import Config, resolve_config  # noqa: E402
from .errors import ConfigError  # noqa: E402
from .experiment import run_experiment  # noqa: E402
from .runs import open_run  # noqa: E402

__all__ = ["Config", "ConfigError", "open_run", "resolve_config", "run_experiment", "__version__"]
