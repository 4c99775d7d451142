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
from townlet.serve.catalog import Catalog
from townlet.serve.server import ServeOptions, TownletServer, run_forever

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    if bool(cfg.run_dir) == bool(cfg.runs_root):
        print("error: give exactly one of run_dir=PATH or runs_root=PATH", file=sys.stderr)
        sys.exit(2)
    live = None
    if cfg.run_dir:
        run = Path(cfg.run_dir)
        if not run.is_dir():
            print(f"error: run_dir {run} does not exist", file=sys.stderr)
            sys.exit(2)
        catalog = Catalog.for_run(run)
        if (run / "checkpoints" / "latest.pt").is_file():
            from townlet.serve.live import LiveFactory

            live = LiveFactory(run, record=cfg.serve.record_live)
    else:
        catalog = Catalog.for_root(Path(cfg.runs_root))
    options = ServeOptions(cfg.serve.host, cfg.serve.port, cfg.serve.step_delay, cfg.serve.token)
    try:
        server = TownletServer(catalog, options, live)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_forever(server))


if __name__ == "__main__":
    main()
