"""The staged curriculum advances on survival and changes the town it trains in."""

from __future__ import annotations

import json

import pytest

from townlet.policy.checkpoint import load_checkpoint
from townlet.policy.train import train
from townlet.scenarios import load_config


@pytest.mark.slow
def test_stages_advance_when_agents_survive_and_change_the_town(tmp_path):
    cfg = load_config(
        [
            "scenario=kitchen_breakfast",
            "ppo=fast",
            "ppo.num_envs=8",
            "train.total_ticks=320",
            "curriculum=staged",
            "curriculum.window=8",
            "curriculum.survival_threshold=0.9",
            "curriculum.stages=[{decay_scale:0.5,agents:1},{decay_scale:1.0}]",
        ]
    )
    train(cfg, tmp_path)
    records = [
        json.loads(x) for x in (tmp_path / "telemetry" / "ppo.jsonl").read_text().splitlines()
    ]
    stages = [r["curriculum_stage"] for r in records]
    assert stages[0] == 1 and stages[-1] == 2 and stages == sorted(stages)
    first_stage = [r for r in records if r["curriculum_stage"] == 1]
    # stage 1 trains with one of the two agents: transitions are at most 32 ticks x 8 envs x 1
    assert all(r["transitions"] <= 32 * 8 for r in first_stage[1:])
    assert records[-1]["transitions"] > 32 * 8, "stage 2 brings the second agent in"
    state = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")["curriculum"]
    assert state["stage"] == 2 and len(state["transitions"]) == 1


def test_no_curriculum_stays_at_stage_one(tmp_path):
    train(
        load_config(
            ["scenario=kitchen_breakfast", "ppo=fast", "ppo.num_envs=4", "train.total_ticks=96"]
        ),
        tmp_path,
    )
    records = [
        json.loads(x) for x in (tmp_path / "telemetry" / "ppo.jsonl").read_text().splitlines()
    ]
    assert {r["curriculum_stage"] for r in records} == {1}
