"""The scripts users run, run as subprocesses exactly as users run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_training_leaves_a_complete_run_directory(tmp_path):
    done = subprocess.run(
        [sys.executable, "experiments/train.py", "experiment=smoke", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    records = [
        json.loads(line) for line in (tmp_path / "telemetry" / "ppo.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert (tmp_path / "checkpoints" / "latest.pt").exists()
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert {"policy_deterministic", "policy_sampled", "random", "scripted"} <= set(evaluation)
    assert (tmp_path / ".hydra" / "config.yaml").exists()
    assert "evaluation return per agent-episode" in done.stdout


@pytest.mark.slow
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
    for verb, override, words in (
        ("show", "scenario=nope", ["scenario/nope", "village"]),
        ("names", "world.nokey=3", ["world.nokey"]),
    ):
        refused = subprocess.run(
            [sys.executable, "-m", "townlet.cli", verb, override],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 2 and len(lines) == 1, refused.stderr  # no traceback
        assert all(word in lines[0] for word in words), lines
