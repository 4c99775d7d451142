"""Capture a scenario: `python experiments/capture.py scenario=queue_conflict [capture.*=...]`.

Runs the scenario under its script and writes replay samples, a manifest and per-sample
metrics into the Hydra run directory; `-m scenario=a,b,...` captures a suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from townlet.capture import capture, describe, track_capture
from townlet.config import register_configs
from townlet.config.errors import ConfigError
from townlet.scenarios.build import typed
from townlet.scenarios.lint import preflight
from townlet.tracking import open_tracker

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        typed(cfg)  # a config error is one line before any tracked run starts
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    with open_tracker(cfg, "capture", run_dir) as tracker:
        result = capture(cfg, run_dir)
        track_capture(result, tracker)
    print(describe(result))


if __name__ == "__main__":
    preflight(sys.argv[1:])
    main()
