"""Main job: `python experiments/train.py [overrides]` trains PPO on the configured scenario.

Leaves telemetry, checkpoints and evaluation in the Hydra run directory and returns the
deterministic policy's evaluation return (what sweepers optimise).

The job itself is `townlet.apps.train_job` (also `townlet train ...`).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from townlet.apps import train_job
from townlet.scenarios.lint import preflight


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return train_job(cfg)


if __name__ == "__main__":
    preflight(sys.argv[1:])
    main()
