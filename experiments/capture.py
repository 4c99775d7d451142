"""Capture a scenario: `python experiments/capture.py scenario=queue_conflict [capture.*=...]`.

Runs the scenario under its script and writes replay samples, a manifest and per-sample
metrics into the Hydra run directory; `-m scenario=a,b,...` captures a suite.

The job itself is `townlet.apps.capture_job` (also `townlet capture ...`).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from townlet.apps import capture_job
from townlet.scenarios.lint import preflight


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    capture_job(cfg)


if __name__ == "__main__":
    preflight(sys.argv[1:])
    main()
