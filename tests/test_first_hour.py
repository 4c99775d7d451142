"""Issue 16 (first slice): long jobs talk without a terminal, end with what a user needs, and
leave `outputs/latest`; tools write no logs where they start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["experiment=smoke", "scenario=kitchen_breakfast", "tracking=off"]


def townlet(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TOWNLET_TRACKING_URI"}
    return subprocess.run(
        [sys.executable, "-m", "townlet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.mark.slow
def test_training_without_a_terminal_logs_progress_and_ends_with_the_run_summary(tmp_path):
    done = townlet(
        "train", *SMOKE, f"paths.root={tmp_path}", "train.progress_every_sec=0", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    latest = tmp_path / "outputs" / "latest"
    assert latest.is_symlink() and (latest / "checkpoints" / "latest.pt").is_file()
    log = (latest / "train.log").read_text()
    for epoch in (1, 2, 3):
        assert f"epoch {epoch}/3 (rollout), steps " in log, log
    assert "steps/s" in log and "eta " in log
    out = done.stdout
    for part in (
        "files: checkpoints/latest.pt",
        "return_mean",
        "on_time_rate",
        "next:",
        "townlet evaluate",
        "telemetry summary",
        "curriculum stage reached",
    ):
        assert part in out, out

    again = townlet(
        "train",
        *SMOKE,
        f"paths.root={tmp_path}",
        f"hydra.run.dir={latest.resolve()}",
        "train.resume=true",
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "the run is complete (3 epochs)" in (latest / "train.log").read_text()

    # resuming from a checkpoint path without scenario=: the checkpoint's scenario is used
    moved = townlet(
        "train",
        "experiment=smoke",
        "tracking=off",
        f"paths.root={tmp_path}",
        f"hydra.run.dir={tmp_path / 'moved'}",
        f"train.resume={latest.resolve() / 'checkpoints' / 'latest.pt'}",
        cwd=tmp_path,
    )
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert "resuming a 'kitchen_breakfast' checkpoint: scenario=kitchen_breakfast" in moved.stderr


@pytest.mark.slow
def test_export_and_serve_write_no_log_file_where_they_start(tmp_path):
    missing = tmp_path.parent / f"{tmp_path.name}-missing" / "run"
    for args in (("export", "episode_id=1"), ("serve",)):
        done = townlet(*args, f"run_dir={missing}", cwd=tmp_path)
        assert done.returncode != 0 and done.stderr.startswith("error: "), done.stderr
    assert not list(tmp_path.iterdir()), "no export.log or serve.log in the working directory"
    assert not missing.parent.exists(), "a failed export creates no folders"


def test_tracked_params_are_scalars_and_run_names_say_what_changed(tmp_path):
    from townlet.scenarios import load_config
    from townlet.tracking.params import flatten
    from townlet.tracking.tracker import run_name

    params = flatten(load_config())
    assert params["ppo.learning_rate"] and params["train.bc.noise"] == "[0.0, 0.05, 0.1, 0.2]"
    blobs = [k for k, v in params.items() if v.startswith(("[{", "[["))]
    assert not blobs, blobs
    assert params["scenario.agents"] == "4 entries (.hydra/config.yaml)"
    context = {"hydra.overrides": "scenario=town ppo=fast seed=3 hydra.run.dir=x", "job_num": "2"}
    name = run_name("train", load_config(), context, tmp_path / "14-23-11")
    assert name == "train town ppo=fast seed=3 14-23-11 #2"
