"""The scripts users run, run as subprocesses exactly as users run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_train_runs_the_world_and_writes_a_summary_into_its_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "experiments/train.py",
            "train.total_ticks=300",
            "ppo.num_envs=8",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["scenario"] == "town" and summary["num_envs"] == 8
    assert summary["agent_steps"] == 300 * 8 * 4
    assert summary["episodes_finished"] >= 8, "240-tick episodes end and auto-reset"
    assert sum(v for k, v in summary["events"].items() if k.startswith("completed.")) > 0
    assert (run_dir / ".hydra" / "config.yaml").exists()
    assert "scenario town: 8 envs x 4 agents" in done.stdout


def test_experiment_overlay_applies(tmp_path):
    done = subprocess.run(
        [sys.executable, "experiments/train.py", "experiment=smoke", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["num_envs"], summary["ticks"]) == (4, 50)


def test_cli_prints_names_and_the_town():
    names = subprocess.run(
        [sys.executable, "-m", "townlet.cli", "names"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert names.returncode == 0, names.stderr
    assert json.loads(names.stdout)["agents"] == ["alice", "bob", "carol", "dave"]
    bad = subprocess.run(
        [sys.executable, "-m", "townlet.cli", "names", "scenario.agents.0.pos=[6,0]"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "agent 'alice'" in bad.stderr and "wall" in bad.stderr
