"""Sweeps that scale out, as JSON lines: the wall time of an 8-trial Optuna study of short jobs
at n_jobs=1 against n_jobs=2 (joblib, 2 workers), and the share of trial-epochs pruning saves on
a study where half the search space is clearly bad (`benchmarks/conf/hparams_search/bad_half`,
median pruner, 8 trials).

Everything goes into a temporary folder (Optuna and MLflow SQLite stores).
Run: python benchmarks/sweeps.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
JOB = [
    "scenario=kitchen_breakfast",
    "ppo=fast",
    "ppo.num_envs=4",
    "ppo.rollout_ticks=16",
    "train.total_ticks=160",  # 10 epochs
    "train.eval_every=1",
    "train.eval_episodes=2",
    "train.progress=false",
]
FULL_EPOCHS = 10


def study(folder: Path, name: str, *overrides: str) -> float:
    env = {**os.environ, "TOWNLET_TRACKING_URI": f"sqlite:///{folder / 'mlruns.db'}"}
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "experiments/train.py",
            "-m",
            *JOB,
            *overrides,
            f"hydra.sweeper.storage=sqlite:///{folder / 'optuna.db'}",
            f"hydra.sweep.dir={folder / name}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return time.perf_counter() - start


def epochs_run(run_dir: Path) -> int:
    log = run_dir / "telemetry" / "ppo.jsonl"
    return len(log.read_text().splitlines()) if log.is_file() else 0


def main() -> None:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        serial = study(
            folder,
            "serial",
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=8",
            "hydra.sweeper.study_name=serial",
        )
        parallel = study(
            folder,
            "parallel",
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=8",
            "hydra.sweeper.study_name=parallel",
            "hydra.sweeper.n_jobs=2",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
        )
        print(
            json.dumps(
                {
                    "name": "sweep_8_trials_n_jobs_1",
                    "value": round(serial, 1),
                    "unit": "s",
                    "load_1min": load,
                }
            )
        )
        print(
            json.dumps(
                {
                    "name": "sweep_8_trials_n_jobs_2",
                    "value": round(parallel, 1),
                    "unit": "s",
                    "launcher": "joblib, 2 workers",
                }
            )
        )
        print(
            json.dumps(
                {
                    "name": "sweep_parallel_speedup",
                    "value": round(serial / parallel, 2),
                    "unit": "x",
                    "cores": os.cpu_count(),
                }
            )
        )
        pruned_wall = study(
            folder,
            "pruning",
            f"hydra.searchpath=[file://{ROOT / 'benchmarks' / 'conf'}]",
            "hparams_search=bad_half",
            "hydra.sweeper.n_trials=8",
        )
        trials = optuna.load_study(
            study_name="bad_half", storage=f"sqlite:///{folder / 'optuna.db'}"
        ).trials
        epochs = sum(epochs_run(folder / "pruning" / str(t.number)) for t in trials)
        full = FULL_EPOCHS * len(trials)
        states = [t.state.name for t in trials]
        print(
            json.dumps(
                {
                    "name": "pruning_trial_epochs_saved",
                    "value": round(1 - epochs / full, 3),
                    "unit": "fraction",
                    "trial_epochs": epochs,
                    "without_pruning": full,
                    "states": states,
                    "wall_s": round(pruned_wall, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
