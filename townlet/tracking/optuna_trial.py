"""The Optuna side of a sweep job: its study's storage, its pruner, and the reporter that
tells the study each periodic evaluation and stops the job when the pruner says so.

The sweeper (hydra_plugins/townlet_optuna_sweeper) and every job it launches build storage and
pruner here, from the same settings (`train.trial`), so a job in another process (joblib,
submitit, a SLURM node) decides exactly as the sweeper would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from townlet.config.schema import TrialConfig
from townlet.util.stopping import Pruned

SQLITE_BUSY_SECONDS = 60


def absolute_storage(url: str) -> str:
    """A SQLite URL made absolute (jobs may start in another folder); others unchanged."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str(Path(url[len(prefix) :]).resolve())
    return url


def open_storage(url: str) -> Any:
    """Optuna's RDB storage; for SQLite in WAL mode with a busy timeout, so parallel trials on
    one machine write without `database is locked` errors. Servers (PostgreSQL) as given."""
    import optuna

    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path, timeout=SQLITE_BUSY_SECONDS) as connection:
            connection.execute("PRAGMA journal_mode=WAL")  # persistent in the file
        return optuna.storages.RDBStorage(
            url, engine_kwargs={"connect_args": {"timeout": SQLITE_BUSY_SECONDS}}
        )
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def make_pruner(trial: TrialConfig) -> Any:
    import optuna

    if trial.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=trial.startup_trials, n_warmup_steps=trial.warmup_evaluations + 1
        )
    if trial.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(trial.max_evaluations, 1), reduction_factor=3
        )
    return optuna.pruners.NopPruner()


def trial_reporter(trial: TrialConfig) -> Callable[[int, float], None] | None:
    """`report(epoch, value)` for a job launched as an Optuna trial (None otherwise): reports
    the k-th evaluation as step k and raises `Pruned` when the trial should stop."""
    if trial.storage is None:
        return None
    import optuna

    storage = open_storage(trial.storage)
    study = optuna.load_study(study_name=trial.study, storage=storage, pruner=make_pruner(trial))
    study_id = storage.get_study_id_from_name(trial.study)
    handle = optuna.trial.Trial(
        study, storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    )
    evaluations = 0

    def report(epoch: int, value: float) -> None:
        nonlocal evaluations
        evaluations += 1
        handle.report(value, step=evaluations)
        if handle.should_prune():
            raise Pruned(epoch, value)

    return report
