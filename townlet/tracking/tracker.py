"""One tracked job: `with open_tracker(cfg, "train", run_dir) as tracker: ...`.

`tracking=mlflow` (default) uses an embedded SQLite store at the project root
(`sqlite:///<root>/mlruns.db`, artifacts in `<root>/mlartifacts`) — no server. The environment
variable TOWNLET_TRACKING_URI replaces that default (tests and CI point it at a temporary
store). `tracking=mlflow_server tracking.uri=http://host:5000` logs to a shared server;
`tracking=off` logs nothing. MLflow is imported only when a run is tracked (it costs ~3 s).
A job that raises is ended FAILED with the exception as a tag.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from townlet.tracking.params import flatten
from townlet.util.version import git_commit

URI_ENV = "TOWNLET_TRACKING_URI"
PARENT_FILE = ".mlflow_parent_run"


class Tracker:
    """What entry points and the trainer call; the base class tracks nothing."""

    run_id: str | None = None
    uri: str | None = None  # the tracking store, for links from the run's files back to it

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        pass

    def log_metric_steps(self, rows: list[tuple[dict[str, Any], int, int]]) -> None:
        """Several steps' metrics, each row (metrics, step, time in ms), in one write where
        the store allows it."""

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass


NullTracker = Tracker


def default_uri(paths: Any = None) -> str:
    """$TOWNLET_TRACKING_URI, else the embedded store named by the `paths` group (default:
    ./mlruns.db in the directory the job starts from)."""
    if os.environ.get(URI_ENV):
        return os.environ[URI_ENV]
    root = Path(paths.root if paths is not None else ".").resolve()
    name = Path(paths.tracking_db if paths is not None else "mlruns.db")
    return f"sqlite:///{name if name.is_absolute() else root / name}"


def resolve_uri(tracking: Any, paths: Any = None) -> str:
    if tracking.backend == "mlflow_server":
        if not tracking.uri:
            raise ValueError("tracking=mlflow_server needs tracking.uri=http://host:port")
        return tracking.uri
    return tracking.uri or default_uri(paths)


def artifact_root(uri: str) -> str | None:
    """A file artifact root beside a SQLite store (a server chooses its own)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()
    return None


EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
"""MLflow 3's UI opens an experiment without this tag in its GenAI (traces) view; with it, in
the model-training view (runs, charts), which is what a training run is."""


def experiment_id(client, name: str, uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.tags.get("mlflow.experimentKind") is None:  # made by an older version
            client.set_experiment_tag(found.experiment_id, *next(iter(EXPERIMENT_KIND.items())))
        return found.experiment_id
    root = artifact_root(uri)
    try:
        return client.create_experiment(
            name, artifact_location=f"{root}/{name}" if root else None, tags=EXPERIMENT_KIND
        )
    except Exception:  # created meanwhile by a parallel job
        return client.get_experiment_by_name(name).experiment_id


def _numeric(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float))
        and not isinstance(v, bool)
        and v == v
        and abs(v) != float("inf")
    }


@contextlib.contextmanager
def writes_finish_first() -> Iterator[None]:
    """Ctrl-C during a write to the store takes effect when the write is done: interrupted
    inside a SQLite transaction, the store kept its lock, and marking the run KILLED then
    failed with `database is locked` (seen under load). Main thread only (where signals are
    delivered); elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


class MlflowTracker(Tracker):
    def __init__(self, client, run_id: str, uri: str | None = None) -> None:
        self.client, self.run_id, self.uri = client, run_id, uri

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.log_metric_steps([(metrics, step or 0, int(time.time() * 1000))])

    def log_metric_steps(self, rows: list[tuple[dict[str, Any], int, int]]) -> None:
        from mlflow.entities import Metric

        found = [
            Metric(k[:250], v, stamp, step)
            for metrics, step, stamp in rows
            for k, v in _numeric(metrics).items()
        ]
        with writes_finish_first():
            for i in range(0, len(found), 1000):  # MLflow's limit for one batch
                self.client.log_batch(self.run_id, metrics=found[i : i + 1000])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        with writes_finish_first():
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path)
            elif path.is_file():
                self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        with writes_finish_first():
            for key, value in tags.items():
                self.client.set_tag(self.run_id, key, str(value)[:8000])


class MetricBatches:
    """Epoch metrics gathered and written every `every_sec` seconds in one batch, each kept
    with its step and the time it was made. With one write per epoch the default town's
    epochs spent 30 ms on work outside their phases, batched 22 ms (SQLite transactions of
    about 90 metrics; measured 2026-12-07); `flush` writes what is left (the trainer calls it
    when it stops, however it stops). A killed job loses at most the last `every_sec` seconds
    from the store, never from the run's own telemetry."""

    def __init__(
        self,
        tracker: Tracker,
        every_sec: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tracker, self.every_sec, self.clock = tracker, every_sec, clock
        self.rows: list[tuple[dict[str, Any], int, int]] = []
        self.last = clock()

    def add(self, metrics: dict[str, Any], step: int) -> None:
        self.rows.append((metrics, step, int(time.time() * 1000)))
        if self.clock() - self.last >= self.every_sec:
            self.flush()

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        self.last = self.clock()
        if rows:
            self.tracker.log_metric_steps(rows)


def _hydra_context() -> dict[str, str]:
    """Overrides and sweep of the running Hydra job, when there is one."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get()
    except (ImportError, ValueError):
        return {}
    context = {"hydra.overrides": " ".join(hydra_cfg.overrides.task)}
    if str(hydra_cfg.mode) == "RunMode.MULTIRUN":
        context["sweep_dir"] = str(Path(hydra_cfg.sweep.dir).resolve())
        context["job_num"] = str(hydra_cfg.job.num)
    return context


def run_name(entry_point: str, cfg: DictConfig, context: dict[str, str], run_dir: Path) -> str:
    """`train town ppo=fast seed=3 14-23-11`: what ran, what was changed, and when (the run
    directory's name), so runs are told apart in MLflow's list without opening them."""
    changed = [
        o
        for o in context.get("hydra.overrides", "").split()
        if not o.startswith(("hydra.", "scenario=", "tracking", "paths."))
    ]
    overrides = " ".join(changed)
    if len(overrides) > 60:
        overrides = overrides[:57] + "..."
    job = f" #{context['job_num']}" if "job_num" in context else ""
    parts = [entry_point, str(cfg.scenario.name), overrides, Path(run_dir).name + job]
    return " ".join(part for part in parts if part)


@contextlib.contextmanager
def open_tracker(cfg: DictConfig, entry_point: str, run_dir: Path) -> Iterator[Tracker]:
    """A tracked run for one job (or a no-op tracker with tracking=off)."""
    tracking = cfg.tracking
    if tracking.backend == "off":
        yield Tracker()
        return
    from mlflow import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    from townlet.config.hashing import config_hash

    uri = resolve_uri(tracking, cfg.get("paths"))
    client = MlflowClient(tracking_uri=uri)
    experiment = experiment_id(client, tracking.experiment or entry_point, uri)
    context = _hydra_context()
    tags = {
        "entry_point": entry_point,
        "scenario": str(cfg.scenario.name),
        "run_dir": str(Path(run_dir).resolve()),
        "config_hash": config_hash(cfg),
        MLFLOW_GIT_COMMIT: git_commit(),
        MLFLOW_RUN_NAME: run_name(entry_point, cfg, context, run_dir),
        **{k: v for k, v in context.items() if k != "sweep_dir"},
    }
    if "sweep_dir" in context:
        tags["sweep_id"] = context["sweep_dir"]
        parent = Path(context["sweep_dir"]) / PARENT_FILE
        if parent.is_file():
            tags[MLFLOW_PARENT_RUN_ID] = parent.read_text().strip()
    run = client.create_run(experiment, tags=tags)
    tracker = MlflowTracker(client, run.info.run_id, uri)
    from mlflow.entities import Param

    params = [Param(k, v) for k, v in flatten(cfg).items()]
    for i in range(0, len(params), 100):
        client.log_batch(run.info.run_id, params=params[i : i + 100])
    hydra_dir = Path(run_dir) / ".hydra"
    if hydra_dir.is_dir():  # the whole composed config, beside the scalar params
        tracker.log_artifact(hydra_dir, ".hydra")
    try:
        yield tracker
    except KeyboardInterrupt:
        client.set_tag(run.info.run_id, "interrupted", "true")
        client.set_terminated(run.info.run_id, status="KILLED")
        raise
    except BaseException as error:
        client.set_tag(run.info.run_id, "error", f"{type(error).__name__}: {error}"[:8000])
        client.set_terminated(run.info.run_id, status="FAILED")
        raise
    client.set_terminated(run.info.run_id, status="FINISHED")


def log_report_run(
    experiment: str,
    tags: dict[str, str],
    metrics: dict[str, float],
    artifacts: list[Path],
    uri: str | None = None,
) -> str:
    """One finished MLflow run holding a report's figures (e.g. `townlet populations`) in the
    store `uri` (default: $TOWNLET_TRACKING_URI, else ./mlruns.db); returns its run id."""
    from mlflow import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

    uri = uri or default_uri()
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(
        experiment_id(client, experiment, uri), tags={**tags, MLFLOW_GIT_COMMIT: git_commit()}
    )
    tracker = MlflowTracker(client, run.info.run_id, uri)
    tracker.log_metrics(metrics, step=0)
    for path in artifacts:
        tracker.log_artifact(path)
    client.set_terminated(run.info.run_id, status="FINISHED")
    return run.info.run_id
