"""Main job: `python experiments/train.py [overrides]` trains PPO on the configured scenario.

Leaves telemetry, checkpoints and evaluation in the Hydra run directory and returns the
deterministic policy's evaluation return (what sweepers optimise).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from townlet.config import register_configs
from townlet.config.errors import ConfigError
from townlet.policy.checkpoint import CheckpointError
from townlet.policy.replay import ReplayError
from townlet.policy.train import TrainingInterrupted, describe, train
from townlet.scenarios.build import typed
from townlet.scenarios.lint import preflight
from townlet.tracking import open_tracker

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        typed(cfg)  # a config error is one line before any tracked run starts
        with open_tracker(cfg, "train", run_dir) as tracker:
            result = train(cfg, run_dir, tracker)
    except (ConfigError, CheckpointError, ReplayError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except TrainingInterrupted as stop:
        overrides = [
            a for a in sys.argv[1:] if not a.startswith(("hydra.run.dir=", "train.resume="))
        ]
        again = " ".join(["python experiments/train.py", *overrides, f"hydra.run.dir={run_dir}"])
        print(
            f"interrupted at epoch {stop.epoch}; resume with: {again} train.resume=true",
            file=sys.stderr,
        )
        sys.exit(130)
    print(describe(result))
    return result.objective


if __name__ == "__main__":
    preflight(sys.argv[1:])
    main()
