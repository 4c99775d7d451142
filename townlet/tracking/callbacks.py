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

from townlet.tracking.sweep_parent import URI_FILE
from townlet.tracking.sweep_summary import sweep_rows, sweep_table
from townlet.tracking.tracker import PARENT_FILE, experiment_id, resolve_uri

SUMMARY_FILE = "sweep_summary.tsv"


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
        (sweep_dir / URI_FILE).write_text(uri)  # for tools that add to the parent later

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = sweep_rows(sweep_dir) if sweep_dir.is_dir() else []
        scored = [row for row in rows if row.objective is not None]
        if scored:  # training sweeps: every job's objective, best first, and where it is
            table = sweep_table(rows)
            (sweep_dir / SUMMARY_FILE).write_text(table + "\n")
            print(f"\nsweep of {len(rows)} job(s), best first:\n{table}", flush=True)
        parent = sweep_dir / PARENT_FILE
        if config.tracking.backend == "off" or not parent.is_file():
            return
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=resolve_uri(config.tracking, config.get("paths")))
        run_id = parent.read_text().strip()
        if scored:
            best = scored[0]
            client.log_metric(run_id, "best_objective", float(best.objective))
            client.set_tag(run_id, "best_job", f"{best.job}: {best.overrides}"[:5000])
            client.log_artifact(run_id, str(sweep_dir / SUMMARY_FILE))
        best = parent.parent / "optuna_best.json"  # written by the Optuna sweeper, when used
        if best.is_file():
            found = json.loads(best.read_text())
            client.log_metric(run_id, "best_value", float(found["best_value"]))
            for key, value in found["best_params"].items():
                client.log_param(run_id, f"best.{key}", value)
            client.log_artifact(run_id, str(best))
        client.set_terminated(run_id, "FINISHED")
