"""MLflow tracking read back with MlflowClient: runs, sweeps, failures, Optuna, and the UI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from townlet.util.net import free_port

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("TOWNLET_TRACKING_URI", uri)
    return uri


def client(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def runs(uri, experiment="train"):
    mlflow = client(uri)
    found = mlflow.get_experiment_by_name(experiment)
    return [] if found is None else mlflow.search_runs([found.experiment_id])


def script(*args, timeout=600):
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def test_a_training_job_is_one_run_with_params_tags_metrics_and_artifacts(store, tmp_path):
    done = script(
        "experiments/train.py",
        "experiment=smoke",
        "recording=periodic",
        "recording.periodic=1",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert done.returncode == 0, done.stderr
    [run] = runs(store)
    assert run.info.status == "FINISHED"
    assert run.data.params["ppo.num_envs"] == "4" and run.data.params["scenario.name"] == "town"
    assert run.data.params["world.meters.energy.decay"] == "0.0025"
    assert run.data.params["scenario.agents"] == "4 entries (.hydra/config.yaml)", "no blobs"
    tags = run.data.tags
    assert tags["mlflow.runName"].startswith("train town experiment=smoke recording=periodic")
    assert tags["entry_point"] == "train" and tags["scenario"] == "town"
    assert tags["run_dir"] == str((tmp_path / "run").resolve()) and len(tags["config_hash"]) == 16
    assert "experiment=smoke" in tags["hydra.overrides"] and tags["mlflow.source.git.commit"]
    history = client(store).get_metric_history(run.info.run_id, "losses/loss_total")
    assert [m.step for m in history] == [1, 2, 3]
    assert "eval/policy_deterministic/return_mean" in run.data.metrics
    assert "charts/lr" in run.data.metrics and "charts/episodic_return" not in run.data.metrics
    assert "events/shift_on_time_events" in run.data.metrics
    # a series that never changes is a parameter, not a chart (no curriculum here)
    assert "charts/curriculum_stage" not in run.data.metrics
    assert not any(name.endswith("anneal_bc_threshold") for name in run.data.metrics)
    artifacts = {a.path for a in client(store).list_artifacts(run.info.run_id)}
    assert {".hydra", "telemetry", "evaluation.json", "recordings_summary.json"} <= artifacts
    telemetry = {a.path for a in client(store).list_artifacts(run.info.run_id, "telemetry")}
    assert telemetry == {"telemetry/ppo.jsonl", "telemetry/ppo.png"}
    experiment = client(store).get_experiment_by_name("train")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development", (
        "without it MLflow 3 opens the experiment in its GenAI traces view"
    )


def test_recordings_and_their_run_point_at_each_other(store, tmp_path):
    done = script(
        "experiments/train.py",
        "experiment=smoke",
        "scenario=kitchen_breakfast",  # an episode ends every 30 ticks
        "recording=periodic",
        "recording.periodic=1",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert done.returncode == 0, done.stderr
    [run] = runs(store)
    tags = run.data.tags
    from townlet.recording import RecordingIndex
    from townlet.serve.frames import EpisodeFrames

    index = RecordingIndex.for_run(tmp_path / "run", create=False)
    rows = index.list(limit=None, order="episode")
    assert tags["recordings.count"] == str(len(rows)) and len(rows) > 0
    assert tags["recordings.episodes"].split(",") == [str(r["episode_id"]) for r in rows]
    episode = index.load(rows[0]["episode_id"])
    links = episode.header["links"]
    assert links["mlflow_run_id"] == run.info.run_id and links["tracking_uri"] == store
    assert links["run_dir"] == str((tmp_path / "run").resolve())
    source = EpisodeFrames(episode, "run").source
    assert source["mlflow_run_id"] == run.info.run_id and source["config_hash"]


def test_a_capture_logs_golden_metrics_and_drift(store, tmp_path):
    done = script(
        "experiments/capture.py", "scenario=queue_conflict", f"hydra.run.dir={tmp_path / 'cap'}"
    )
    assert done.returncode == 0, done.stderr
    [run] = runs(store, "capture")
    assert run.data.tags["golden"] == "match" and run.data.metrics["golden.drifted"] == 0
    assert run.data.metrics["ada.completions.Shower"] == 1
    artifacts = {a.path for a in client(store).list_artifacts(run.info.run_id)}
    assert {"golden_comparison.txt", "rollout_sample_metrics.json", ".hydra"} <= artifacts


def test_a_crashed_job_ends_failed_with_the_exception(store, tmp_path):
    done = script(
        "experiments/train.py",
        "experiment=smoke",
        "train.source=replay",
        f"train.capture_dir={tmp_path / 'nowhere'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert done.returncode != 0
    [run] = runs(store)
    assert run.info.status == "FAILED"
    assert (
        run.data.tags["error"].startswith("ReplayError")
        and "no capture manifests" in run.data.tags["error"]
    )


def test_a_four_job_joblib_sweep_has_one_parent_and_four_children(store, tmp_path):
    done = script(
        "experiments/train.py",
        "-m",
        "experiment=smoke",
        "ppo.learning_rate=1e-3,3e-4",
        "scenario=kitchen_breakfast,queue_conflict",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert done.returncode == 0, done.stderr
    found = runs(store)
    parents = [r for r in found if r.data.tags.get("sweep") == "parent"]
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert all(r.info.status == "FINISHED" for r in found)
    assert {
        (c.data.params["ppo.learning_rate"], c.data.params["scenario.name"]) for c in children
    } == {
        ("0.001", "kitchen_breakfast"),
        ("0.001", "queue_conflict"),
        ("0.0003", "kitchen_breakfast"),
        ("0.0003", "queue_conflict"),
    }
    assert len({c.data.tags["sweep_id"] for c in children}) == 1
    # the sweep ends with every job's objective, best first, and where its run is
    table = done.stdout[done.stdout.index("sweep of 4 job(s), best first:") :].splitlines()[1:6]
    assert table[0].split("\t") == ["job", "objective", "overrides", "run"]
    objectives = [float(line.split("\t")[1]) for line in table[1:]]
    assert objectives == sorted(objectives, reverse=True)
    best = parents[0]
    assert best.data.metrics["best_objective"] == pytest.approx(objectives[0], abs=1e-4)
    assert best.data.tags["best_job"].split(": ")[1] == table[1].split("\t")[2]
    assert (tmp_path / "sweep" / "sweep_summary.tsv").read_text().splitlines()[1:5] == table[1:]


def test_an_optuna_sweep_records_its_best_trial_and_continues(store, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = [
        "experiments/train.py",
        "-m",
        "hparams_search=optuna",
        "experiment=smoke",
        "scenario=kitchen_breakfast",
        "hydra.sweeper.n_trials=3",
        f"hydra.sweeper.storage={storage}",
    ]
    done = script(*args, f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert done.returncode == 0, done.stderr
    import optuna

    study = optuna.load_study(study_name="ppo_kitchen_breakfast", storage=storage)
    assert len(study.trials) == 3
    best = json.loads((tmp_path / "sweep" / "optuna_best.json").read_text())
    assert best["best_value"] == study.best_value
    [parent] = [r for r in runs(store) if r.data.tags.get("sweep") == "parent"]
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert parent.data.params["best.ppo.learning_rate"] == str(
        study.best_params["ppo.learning_rate"]
    )
    # a trial whose config is refused is recorded as failed and the study goes on (one line
    # each, no sweep-ending exit); a re-run continues the study
    again = script(
        *args,
        "hydra.sweeper.n_trials=2",
        "train.source=replay",
        f"hydra.sweep.dir={tmp_path / 's2'}",
    )
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="ppo_kitchen_breakfast", storage=storage)
    assert len(study.trials) == 5
    assert [t.state.name for t in study.trials[3:]] == ["FAIL", "FAIL"]


def test_the_mlflow_ui_serves_the_store(store, tmp_path):
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "ui",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            store,
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, status = time.time() + 120, None
        while time.time() < deadline and status != 200:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    status = response.status
            except OSError:
                time.sleep(0.5)
        assert status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_epoch_metrics_are_written_in_batches_with_their_steps_and_times(store):
    from townlet.tracking.tracker import MetricBatches, MlflowTracker

    mlflow = client(store)
    experiment = mlflow.create_experiment("batches")
    run = mlflow.create_run(experiment)
    now = [0.0]
    batches = MetricBatches(MlflowTracker(mlflow, run.info.run_id), 10.0, lambda: now[0])

    def history() -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in mlflow.get_metric_history(run.info.run_id, "loss")]

    for step in (1, 2, 3):
        batches.add({"loss": float(step), "note": "not a number"}, step)
        time.sleep(0.002)  # each row keeps the time it was made
    assert history() == [], "nothing is written before the interval"
    now[0] = 10.0
    batches.add({"loss": 4.0}, 4)
    assert history() == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]
    batches.add({"loss": 5.0}, 5)
    batches.flush()
    written = mlflow.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in written] == [1, 2, 3, 4, 5]
    assert len({m.timestamp for m in written[:3]}) == 3
