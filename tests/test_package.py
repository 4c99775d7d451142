"""The package stands on its own: the `townlet` command runs the entry points from any
directory, and every path a job writes comes from the `paths` group (default: the current
directory). The wheel itself is built, installed and smoke-tested by .ci/wheel_smoke.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOWNLET = str(Path(sys.executable).with_name("townlet"))


def test_the_package_finds_its_config_page_and_golden_file_without_the_checkout():
    from townlet.golden import DEFAULT_GOLDEN
    from townlet.scenarios.build import CONF_DIR
    from townlet.serve.server import STATIC

    assert (CONF_DIR / "config.yaml").is_file() and CONF_DIR.parent.name == "townlet"
    assert (STATIC / "index.html").is_file() and DEFAULT_GOLDEN.is_file()


@pytest.mark.slow
def test_townlet_train_runs_from_any_directory_and_writes_under_paths_root(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TOWNLET_TRACKING_URI"}
    done = subprocess.run(
        [
            TOWNLET,
            "train",
            "experiment=smoke",
            "scenario=kitchen_breakfast",
            f"paths.root={tmp_path}",
        ]
        + ["train.eval_episodes=1"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "outputs").glob("*/*/checkpoints/latest.pt"))
    assert len(runs) == 1, "the run directory is under paths.root"
    assert (tmp_path / "mlruns.db").is_file(), "the embedded tracking store is under paths.root"
    assert not list(elsewhere.iterdir()), "nothing is written where the command was started"


@pytest.mark.slow
def test_the_optuna_default_storage_composes_and_lives_under_paths_root(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "train.py"), "-m", "hparams_search=optuna"]
        + ["hydra.sweeper.n_trials=1", "experiment=smoke", "scenario=kitchen_breakfast"]
        + ["tracking=off", "train.eval_episodes=1", f"paths.root={tmp_path}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "optuna.db").is_file()
    shutil.rmtree(tmp_path / "multirun", ignore_errors=True)
