"""Drive current Optuna from Hydra's `-m`: ask a trial, launch it as a Hydra job, tell its value.

The objective is the task function's return value (train.py returns the deterministic policy's
evaluation return). A job that raises is told to Optuna as a failed trial; the sweep goes on.
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
        **_: Any,
    ) -> None:
        self.study_name, self.storage, self.direction = study_name, storage, direction
        self.n_trials, self.seed = n_trials, seed
        self.space = {key: distribution(key, str(spec)) for key, spec in (params or {}).items()}

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            direction=self.direction,
            load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=self.seed + len(self._existing(self.storage))),
        )
        fixed = list(arguments)
        start = len(study.trials)
        for number in range(self.n_trials):
            trial = study.ask(self.space)
            overrides = fixed + [f"{key}={value}" for key, value in trial.params.items()]
            [result] = self.launcher.launch([overrides], initial_job_idx=start + number)
            if result.status == JobStatus.COMPLETED and isinstance(
                result.return_value, (int, float)
            ):
                study.tell(trial, float(result.return_value))
            else:
                log.warning("trial %d failed: %s", trial.number, result._return_value)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if complete:
            log.info("best value %s with %s", study.best_value, study.best_params)
            best = {
                "study": self.study_name,
                "best_value": study.best_value,
                "best_params": study.best_params,
                "trials": len(study.trials),
                "complete": len(complete),
            }
            sweep_dir = Path(self.config.hydra.sweep.dir)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            (sweep_dir / BEST_FILE).write_text(json.dumps(best, indent=2) + "\n")
        return study

    def _existing(self, storage: str | None) -> list:
        if storage is None:
            return []
        try:
            return optuna.load_study(study_name=self.study_name, storage=storage).trials
        except KeyError:
            return []
