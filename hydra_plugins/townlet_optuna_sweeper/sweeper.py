"""Drive current Optuna from Hydra's `-m`: ask `n_jobs` trials, launch them as one batch through
the configured launcher, tell each its value, until `n_trials` are done.

The objective is the task function's return value (train.py returns the deterministic policy's
evaluation return). Each job is told its trial (`train.trial.*`), reports every periodic
evaluation to the study and stops when the pruner says so; it then returns `Pruned`, told as
PRUNED. A job that raises is told as FAIL; the sweep goes on. The study lives in `storage`
(SQLite in WAL mode locally, a database server for many machines); a re-run continues it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig

from townlet.config.schema import TrialConfig
from townlet.tracking.optuna_trial import absolute_storage, make_pruner, open_storage
from townlet.util.stopping import Pruned

log = logging.getLogger(__name__)
BEST_FILE = "optuna_best.json"  # read by townlet.tracking.callbacks for the sweep's parent run


def distribution(key: str, spec: str) -> optuna.distributions.BaseDistribution:
    """Hydra sweep syntax -> an Optuna distribution."""
    override = OverridesParser.create().parse_overrides([f"{key}={spec}"])[0]
    value = override.value()
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return optuna.distributions.IntDistribution(value.start, value.end, log=log_scale)
        return optuna.distributions.FloatDistribution(
            float(value.start), float(value.end), log=log_scale
        )
    if isinstance(value, RangeSweep):
        return optuna.distributions.CategoricalDistribution(list(override.sweep_iterator()))
    if isinstance(value, ChoiceSweep):
        return optuna.distributions.CategoricalDistribution(list(value.list))
    raise ValueError(f"hydra.sweeper.params.{key}: {spec!r} is not interval(), range() or choice()")


class TownletOptunaSweeper(Sweeper):
    def __init__(
        self,
        study_name: str,
        storage: str | None,
        direction: str,
        n_trials: int,
        seed: int,
        params: dict[str, str],
        n_jobs: int = 1,
        pruner: str = "none",
        startup_trials: int = 2,
        warmup_evaluations: int = 1,
        max_evaluations: int = 10,
        **_: Any,
    ) -> None:
        self.study_name, self.direction = study_name, direction
        self.storage = absolute_storage(storage) if storage else None
        self.n_trials, self.seed, self.n_jobs = n_trials, seed, n_jobs
        if n_jobs < 1:
            raise ValueError(f"hydra.sweeper.n_jobs: must be >= 1, got {n_jobs}")
        self.trial = TrialConfig(
            storage=self.storage,
            study=study_name,
            pruner=pruner,
            startup_trials=startup_trials,
            warmup_evaluations=warmup_evaluations,
            max_evaluations=max_evaluations,
        )
        if pruner not in ("none", "median", "hyperband"):
            raise ValueError(f"hydra.sweeper.pruner: {pruner!r} is not none, median or hyperband")
        if pruner != "none" and not self.storage:
            raise ValueError("hydra.sweeper.pruner needs hydra.sweeper.storage (jobs report there)")
        self.space = {key: distribution(key, str(spec)) for key, spec in (params or {}).items()}

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        storage = open_storage(self.storage) if self.storage else None
        study = optuna.create_study(
            study_name=self.study_name,
            storage=storage,
            direction=self.direction,
            load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=self.seed + len(self._existing(storage))),
            pruner=make_pruner(self.trial),
        )
        fixed = list(arguments)
        launched = 0
        while launched < self.n_trials:
            batch = [
                study.ask(self.space) for _ in range(min(self.n_jobs, self.n_trials - launched))
            ]
            jobs = [fixed + self._overrides(trial) for trial in batch]
            results = self.launcher.launch(jobs, initial_job_idx=len(study.trials) - len(batch))
            for trial, result in zip(batch, results, strict=True):
                self._tell(study, trial, result)
            launched += len(batch)
        self._write_best(study)
        return study

    def _overrides(self, trial: optuna.trial.Trial) -> list[str]:
        chosen = [f"{key}={value}" for key, value in trial.params.items()]
        if not self.storage:
            return chosen
        return chosen + [
            f"train.trial.storage='{self.storage}'",
            f"train.trial.study='{self.study_name}'",
            f"train.trial.number={trial.number}",
            f"train.trial.pruner={self.trial.pruner}",
            f"train.trial.startup_trials={self.trial.startup_trials}",
            f"train.trial.warmup_evaluations={self.trial.warmup_evaluations}",
            f"train.trial.max_evaluations={self.trial.max_evaluations}",
        ]

    @staticmethod
    def _tell(study: optuna.Study, trial: optuna.trial.Trial, result: Any) -> None:
        value = result.return_value if result.status == JobStatus.COMPLETED else None
        if isinstance(value, Pruned):
            log.info("trial %d pruned at epoch %d", trial.number, value.epoch)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif isinstance(value, (int, float)):
            study.tell(trial, float(value))
        else:
            log.warning("trial %d failed: %s", trial.number, result._return_value)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def _write_best(self, study: optuna.Study) -> None:
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            return
        log.info("best value %s with %s", study.best_value, study.best_params)
        states = [t.state.name for t in study.trials]
        best = {
            "study": self.study_name,
            "best_value": study.best_value,
            "best_params": study.best_params,
            "trials": len(study.trials),
            "complete": len(complete),
            "pruned": states.count("PRUNED"),
            "failed": states.count("FAIL"),
        }
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / BEST_FILE).write_text(json.dumps(best, indent=2) + "\n")

    def _existing(self, storage: Any) -> list:
        if storage is None:
            return []
        try:
            return optuna.load_study(study_name=self.study_name, storage=storage).trials
        except KeyError:
            return []
