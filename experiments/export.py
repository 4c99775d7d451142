"""Export a recorded episode of a run to MP4.

python experiments/export.py run_dir=PATH episode_id=500

The job itself is `townlet.apps.export_job` (also `townlet export ...`).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from townlet.apps import export_job


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    export_job(cfg)


if __name__ == "__main__":
    main()
