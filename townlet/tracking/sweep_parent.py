"""A sweep's parent MLflow run, found from its folder: the callback leaves the run id and the
tracking URI there at the sweep's start, so tools run later (`townlet report`) can add to it."""

from __future__ import annotations

from pathlib import Path

from townlet.tracking.tracker import PARENT_FILE

URI_FILE = ".mlflow_tracking_uri"


def log_to_parent(sweep_dir: Path, files: list[Path], metrics: dict[str, float]) -> str | None:
    """Log files and metrics to the sweep's parent run; its id, or None without one."""
    run_file, uri_file = Path(sweep_dir) / PARENT_FILE, Path(sweep_dir) / URI_FILE
    if not run_file.is_file() or not uri_file.is_file():
        return None
    from mlflow import MlflowClient

    run_id = run_file.read_text().strip()
    client = MlflowClient(tracking_uri=uri_file.read_text().strip())
    for path in files:
        client.log_artifact(run_id, str(path), "seed_report")
    for name, value in metrics.items():
        client.log_metric(run_id, name, float(value))
    return run_id
