"""Optuna sweeps that scale out, with real processes: trials launched in parallel batches through
a launcher, pruning that stops bad trials early (PRUNED in Optuna, tagged in MLflow), and the
study continued by a re-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
SHORT = [
    "scenario=kitchen_breakfast",
    "ppo=fast",
    "ppo.num_envs=4",
    "ppo.rollout_ticks=16",
    "train.total_ticks=96",  # 6 epochs
    "train.eval_every=1",
    "train.eval_episodes=2",
]


def sweep(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOWNLET_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns.db'}"}
    return subprocess.run(
        [sys.executable, "experiments/train.py", "-m", *SHORT, *overrides],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def mlflow_runs(tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("train")
    return [
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("mlflow.parentRunId")
    ]


def test_trials_run_in_parallel_batches_through_the_launcher(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    done = sweep(
        tmp_path,
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="ppo_kitchen_breakfast", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert all(len(t.intermediate_values) == 5 for t in study.trials), "every evaluation told"
    runs = sorted(mlflow_runs(tmp_path), key=lambda r: r.info.start_time)
    assert len(runs) == 4
    first, second = runs[0].info, runs[1].info  # the first batch: its two jobs overlap in time
    assert first.start_time < second.end_time and second.start_time < first.end_time
    # a re-run continues the study
    again = sweep(
        tmp_path,
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={tmp_path / 'sweep2'}",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(optuna.load_study(study_name="ppo_kitchen_breakfast", storage=storage).trials) == 6


def test_a_pruned_trial_stops_early_and_is_pruned_not_failed(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    done = sweep(
        tmp_path,
        f"hydra.searchpath=[file://{ROOT / 'benchmarks' / 'conf'}]",
        "hparams_search=bad_half",  # seed 6 draws good, good, bad, good; median pruner
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="bad_half", storage=storage)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"], states
    pruned = study.trials[2]
    assert pruned.params["world.reward.survival"] == -0.05
    # one evaluation is protected (warmup), the second is below the median: stopped at epoch 2
    assert sorted(pruned.intermediate_values) == [1, 2]
    job = tmp_path / "sweep" / "2"
    assert json.loads((job / "pruned.json").read_text())["epoch"] == 2
    assert len((job / "evaluation_history.jsonl").read_text().splitlines()) == 2  # not 6
    assert len((job / "telemetry" / "ppo.jsonl").read_text().splitlines()) == 2
    [tagged] = [r for r in mlflow_runs(tmp_path) if r.data.tags.get("pruned") == "true"]
    assert tagged.info.status == "FINISHED" and tagged.data.tags["pruned_epoch"] == "2"
    assert tagged.data.tags["run_dir"] == str(job.resolve())
    table = done.stdout[done.stdout.index("best first:") :]
    assert "\tpruned@2\t" in table and "train.trial." not in table


def test_a_parallel_study_on_a_postgresql_server_through_submitit(tmp_path):
    from postgres import postgres_server

    with postgres_server(("optuna", "mlflow")) as urls:
        env = {**os.environ, "TOWNLET_TRACKING_URI": urls["mlflow"]}
        done = subprocess.run(  # from a temporary folder: a database store puts artifacts
            [  # in ./mlruns, which from the checkout's root was the checkout
                sys.executable,
                str(ROOT / "experiments" / "train.py"),
                "-m",
                *SHORT,
                "hparams_search=optuna",
                "hydra.sweeper.n_trials=4",
                "hydra.sweeper.n_jobs=2",
                f"hydra.sweeper.storage={urls['optuna']}",
                "hydra/launcher=submitit_local",
                f"hydra.sweep.dir={tmp_path / 'sweep'}",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        study = optuna.load_study(study_name="ppo_kitchen_breakfast", storage=urls["optuna"])
        assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
        assert all(len(t.intermediate_values) == 5 for t in study.trials)
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=urls["mlflow"])
        runs = client.search_runs([client.get_experiment_by_name("train").experiment_id])
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
        assert len(children) == 4 and all(r.info.status == "FINISHED" for r in children)
        assert len({r.data.tags["mlflow.parentRunId"] for r in children}) == 1
        # each job ran in its own submitit process
        assert len(list((tmp_path / "sweep" / ".submitit").glob("*/*_result.pkl"))) == 4
        assert any((tmp_path / "mlruns").rglob("evaluation.json"))  # not in the checkout
