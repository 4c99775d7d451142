"""Recordings that prove themselves: state hashes per tick, self-sufficient headers, and
`townlet recordings verify`, which re-simulates an episode and names where it diverges."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES

from townlet.capture import capture
from townlet.policy.train import train
from townlet.recording import RecordingIndex
from townlet.recording.format import Episode
from townlet.recording.verify import verify_episode
from townlet.scenarios import load_config
from townlet.world.constants import ACTION_NAMES
from townlet.world.state_hash import unassigned_fields

ROOT = Path(__file__).resolve().parents[1]


def recorded(tmp_path, scenario="queue_conflict", seed=0) -> Episode:
    folder = tmp_path / f"{scenario}_{seed}"
    capture(load_config([f"scenario={scenario}", "capture.record=true", f"seed={seed}"]), folder)
    return RecordingIndex.for_run(folder).load(0)


def test_every_state_field_is_in_a_hashed_part():
    assert unassigned_fields() == set()


def test_a_capture_recording_verifies_and_carries_what_resimulation_needs(tmp_path):
    episode = recorded(tmp_path)
    header = episode.header
    assert header["world_config"]["ticks_per_day"] == 240 and header["scenario_config"]["name"]
    assert header["code"]["townlet"] and "state" in header["start"]
    result = verify_episode(episode)
    assert result.verified and result.steps == episode.steps, result.line()
    assert result.line() == f"episode 0: verified {episode.steps} steps"


def test_hashes_repeat_with_the_seed_and_change_with_another(tmp_path):
    first = recorded(tmp_path / "a", "town", seed=0).columns["state_hash"]
    again = recorded(tmp_path / "b", "town", seed=0).columns["state_hash"]
    other = recorded(tmp_path / "c", "town", seed=1).columns["state_hash"]
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_a_changed_action_or_rule_diverges_at_the_right_tick_naming_the_part(tmp_path):
    episode = recorded(tmp_path)
    actions, positions = episode.columns["actions"].copy(), episode.columns["positions"]
    t = next(t for t in range(episode.steps - 1) if (positions[t + 1, 0] != positions[t, 0]).any())
    actions[t, 0] = ACTION_NAMES.index("WAIT")  # agent 0 stays where it walked at tick t
    moved = Episode(episode.header, {**episode.columns, "actions": actions})
    result = verify_episode(moved)
    assert result.verified is False and result.divergent_step == t + 1, result.line()
    assert "positions" in result.parts, result.parts
    world = dict(episode.header["world_config"])
    world["meters"] = {k: dict(v) for k, v in world["meters"].items()}
    world["meters"]["hygiene"]["decay"] *= 2  # one rule: hygiene decays twice as fast
    changed = Episode({**episode.header, "world_config": world}, episode.columns)
    result = verify_episode(changed)
    assert result.verified is False and result.divergent_step == 1
    assert "meters" in result.parts and "positions" not in result.parts, result.parts


def test_version_one_files_are_unverifiable_not_failures(tmp_path):
    index = RecordingIndex(FIXTURES / "metrics.db", FIXTURES / "recordings", create=False)
    row = index.list(limit=1)[0]
    result = verify_episode(index.load(row["episode_id"]))
    assert result.verified is None and "version-1" in result.line()


@pytest.mark.slow
def test_episodes_recorded_from_a_batch_verify_alone_and_the_command_reports(tmp_path):
    overrides = [
        "ppo.num_envs=8",
        "ppo.rollout_ticks=16",
        "train.total_ticks=480",
        "train.eval_episodes=2",
        "train.anneal=[]",
        "recording=periodic",
        "recording.periodic=1",
        "train.progress=false",
    ]
    train(load_config(overrides), tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "townlet", "recordings", "verify", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines and all("verified" in line for line in lines), lines
    assert "0 diverged" in done.stderr
