"""Main job: `python experiments/train.py [overrides]`.

Until the PPO loop lands it runs the batched town under a random policy and writes
`summary.json` into the Hydra run directory. Returns the mean episode return (for sweepers).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from townlet.config import register_configs
from townlet.scenarios.lint import preflight
from townlet.simulate import describe, simulate

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    summary = simulate(cfg, output_dir)
    print(describe(summary))
    print(f"run directory: {output_dir}")
    return summary["mean_episode_return"]


if __name__ == "__main__":
    preflight(sys.argv[1:])
    main()
