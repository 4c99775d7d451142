"""Serve a run's recordings and trained policy to the browser viewer.

python experiments/serve.py run_dir=outputs/2026-11-21/10-00-00 [serve.port=8766]
python experiments/serve.py runs_root=outputs
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from townlet.config import register_configs
from townlet.recording import RecordingError
from townlet.serve.catalog import Catalog
from townlet.serve.server import ServeOptions, TownletServer, run_forever

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    if bool(cfg.run_dir) == bool(cfg.runs_root):
        print("error: give exactly one of run_dir=PATH or runs_root=PATH", file=sys.stderr)
        sys.exit(2)
    live = None
    options = cfg.serve
    limits = {
        "max_episode_bytes": int(options.max_episode_mb * 2**20),
        "cache_bytes": int(options.cache_mb * 2**20),
    }
    try:
        if not (0 < options.max_episode_mb < 2**20 and 0 < options.cache_mb < 2**30):
            raise ValueError("serve.max_episode_mb and serve.cache_mb must be positive and finite")
        if cfg.run_dir:
            run = Path(cfg.run_dir)
            if not run.is_dir():
                raise ValueError(f"run_dir {run} does not exist")
            catalog = Catalog.for_run(run, **limits)
            if (run / "checkpoints" / "latest.pt").is_file():
                from townlet.serve.live import LiveFactory

                live = LiveFactory(run, record=options.record_live)
        else:
            catalog = Catalog.for_root(Path(cfg.runs_root), **limits)
            for line in catalog.skipped:
                print(f"warning: {line}", file=sys.stderr)
        server = TownletServer(
            catalog,
            ServeOptions(
                options.host,
                options.port,
                options.step_delay,
                options.token,
                tuple(options.allowed_origins),
            ),
            live,
        )
    except (ValueError, RecordingError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_forever(server))


if __name__ == "__main__":
    main()
