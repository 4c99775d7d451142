"""The sweeper's typed config, registered as `hydra/sweeper=townlet_optuna`.

No postponed annotations here: Hydra executes plugin modules without registering them in
sys.modules, which dataclasses would need to resolve string annotations."""

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore


@dataclass
class TownletOptunaSweeperConf:
    _target_: str = "hydra_plugins.townlet_optuna_sweeper.sweeper.TownletOptunaSweeper"
    study_name: str = "townlet"
    storage: str | None = None
    """e.g. sqlite:///optuna.db; the study persists there and a re-run continues it."""
    direction: str = "maximize"
    n_trials: int = 10
    """Trials run by this invocation (added to those already in the study)."""
    seed: int = 0
    n_jobs: int = 1
    """Trials asked at once and launched as one batch through the configured launcher
    (basic runs them one after another; joblib, submitit_local and submitit_slurm in parallel)."""
    pruner: str = "none"
    """none | median | hyperband: jobs report each periodic evaluation (train.eval_every) and
    stop early when the pruner says so (PRUNED in Optuna, tagged pruned in MLflow)."""
    startup_trials: int = 2
    """median: trials that must finish before any is pruned."""
    warmup_evaluations: int = 1
    """median: evaluations each trial gets before it can be pruned."""
    max_evaluations: int = 10
    """hyperband: the evaluations of a full run (total epochs / train.eval_every)."""
    params: dict[str, str] = field(default_factory=dict)
    """Search space in Hydra's sweep syntax: interval(a, b), tag(log, interval(a, b)),
    choice(x, y), range(a, b)."""


ConfigStore.instance().store(
    group="hydra/sweeper", name="townlet_optuna", node=TownletOptunaSweeperConf, provider="townlet"
)
