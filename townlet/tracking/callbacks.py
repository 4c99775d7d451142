"""A Hydra callback: one parent MLflow run per sweep; every job of it becomes a child run.

The parent is created (with the database and experiment) before any job starts, in the
launching process, and its id is written into the sweep directory, where jobs — in this
process (basic launcher) or in worker processes (joblib, submitit) — read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from townlet.tracking.tracker import PARENT_FILE, experiment_id, resolve_uri


class MlflowSweepCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.tracking.backend == "off":
            return
        from mlflow import MlflowClient
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

        uri = resolve_uri(config.tracking, config.get("paths"))
        client = MlflowClient(tracking_uri=uri)
        entry_point = Path(config.hydra.job.name).name
        experiment = experiment_id(client, config.tracking.experiment or entry_point, uri)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        run = client.create_run(
            experiment,
            tags={
                MLFLOW_RUN_NAME: f"sweep-{sweep_dir.name}",
                "sweep_id": str(sweep_dir.resolve()),
                "entry_point": entry_point,
                "sweep": "parent",
                "hydra.sweep_overrides": " ".join(config.hydra.overrides.task),
            },
        )
        (sweep_dir / PARENT_FILE).write_text(run.info.run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        parent = Path(config.hydra.sweep.dir) / PARENT_FILE
        if config.tracking.backend == "off" or not parent.is_file():
            return
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=resolve_uri(config.tracking, config.get("paths")))
        run_id = parent.read_text().strip()
        best = parent.parent / "optuna_best.json"  # written by the Optuna sweeper, when used
        if best.is_file():
            found = json.loads(best.read_text())
            client.log_metric(run_id, "best_value", float(found["best_value"]))
            for key, value in found["best_params"].items():
                client.log_param(run_id, f"best.{key}", value)
            client.log_artifact(run_id, str(best))
        client.set_terminated(run_id, "FINISHED")
