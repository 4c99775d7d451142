"""Serve a run's recordings and trained policy to the browser viewer.

python experiments/serve.py run_dir=outputs/2026-11-21/10-00-00 [serve.port=8766]
python experiments/serve.py runs_root=outputs

The job itself is `townlet.apps.serve_job` (also `townlet serve ...`).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from townlet.apps import serve_job


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    serve_job(cfg)


if __name__ == "__main__":
    main()
