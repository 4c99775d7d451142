"""PPO training: it learns, its telemetry is complete, and a killed run resumes exactly."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from conftest import train_killed_and_resumed

from townlet.policy.checkpoint import CheckpointError, load_checkpoint
from townlet.policy.train import train
from townlet.scenarios import load_config
from townlet.telemetry.schema import CURRENT_VERSION, required_names

ROOT = Path(__file__).resolve().parents[1]
KITCHEN = ["scenario=kitchen_breakfast", "ppo=fast"]


def read_records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "telemetry" / "ppo.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_ppo_beats_a_random_policy_by_a_clear_margin(tmp_path):
    result = train(load_config([*KITCHEN, "train.total_ticks=1280"]), tmp_path)
    learned = result.evaluation["policy_deterministic"]["return_mean"]
    random = result.evaluation["random"]["return_mean"]
    assert learned > random + 0.4, result.evaluation
    records = read_records(tmp_path)
    assert records[-1]["episodic_return"] > records[0]["episodic_return"] + 0.3


def test_every_telemetry_key_is_present_and_finite(tmp_path):
    train(load_config([*KITCHEN, "train.total_ticks=128", "ppo.num_envs=8"]), tmp_path)
    records = read_records(tmp_path)
    assert len(records) == 4
    for record in records:
        assert record["telemetry_version"] == float(CURRENT_VERSION) == 1.1
        for key in required_names(CURRENT_VERSION):
            assert key in record, key
            if key == "data_mode":
                assert record[key] == "rollout"
            else:
                assert isinstance(record[key], (int, float)) and math.isfinite(record[key]), key
        assert record["transitions"] > 0 and record["updates"] == 3 * 2
        assert 0.0 <= record["kl_divergence"] <= record["kl_divergence_max"] + 1e-9
        # one completion counter per affordance type of the catalogue, and no others
        counters = {k for k in record if k.startswith("events.completed.")}
        catalogue = load_config(KITCHEN).world.affordances
        assert counters == {f"events.completed.{t}" for t in catalogue}
        assert "explained_variance" in record
    assert [r["log_stream_offset"] for r in records] == [1, 2, 3, 4]  # as the original
    assert [r["cycle_id"] for r in records] == [1, 2, 3, 4]
    completions = sum(r[k] for r in records for k in r if k.startswith("events.completed."))
    assert completions > 0, "completions in the rollout are counted"


@pytest.mark.slow
def test_log_frequency_and_rotation(tmp_path):
    train(
        load_config(
            [
                *KITCHEN,
                "train.total_ticks=192",
                "ppo.num_envs=4",
                "telemetry.log_frequency=2",
                "telemetry.max_entries=2",
            ]
        ),
        tmp_path,
    )
    folder = tmp_path / "telemetry"
    current = [json.loads(x)["epoch"] for x in (folder / "ppo.jsonl").read_text().splitlines()]
    older = [json.loads(x)["epoch"] for x in (folder / "ppo.jsonl.1").read_text().splitlines()]
    assert older == [2, 4] and current == [6]
    assert json.loads((folder / "ppo.jsonl").read_text())["log_stream_offset"] == 3


def test_checkpoints_hold_what_resume_needs_and_reject_other_configs(tmp_path):
    train(
        load_config(
            [*KITCHEN, "train.total_ticks=64", "ppo.num_envs=4", "train.checkpoint_every=1"]
        ),
        tmp_path,
    )
    data = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    assert data["epoch"] == 2 and data["names"]["actions"][5] == "INTERACT"
    assert {"model", "optimizer", "generators", "world", "curriculum"} <= set(data)
    assert (tmp_path / "checkpoints" / "epoch_000001.pt").exists()
    with pytest.raises(CheckpointError, match="incompatible config: checkpoint agents"):
        train(
            load_config(
                [
                    "scenario=queue_conflict",
                    "ppo=fast",
                    "train.total_ticks=64",
                    "ppo.num_envs=4",
                    f"train.resume={tmp_path / 'checkpoints' / 'latest.pt'}",
                ]
            ),
            tmp_path / "other",
        )
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable checkpoint"):
        train(load_config([*KITCHEN, f"train.resume={tmp_path / 'junk.pt'}"]), tmp_path / "junk")


def run_args(run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "experiments/train.py",
        *KITCHEN,
        "ppo.num_envs=16",
        "train.total_ticks=1280",
        "train.progress=false",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


@pytest.mark.slow
def test_a_killed_run_resumes_without_repeating_or_skipping(tmp_path):
    reference, killed_dir = train_killed_and_resumed(run_args, tmp_path, kill_after=8, total=40)
    records, expected = read_records(killed_dir), read_records(reference)
    assert [r["epoch"] for r in records] == list(range(1, 41)), "no epoch repeated or skipped"
    for mine, theirs in zip(records, expected, strict=True):
        for key in (
            "loss_total",
            "kl_divergence",
            "episodic_return",
            "steps",
            "queue_conflict_events",
        ):
            assert mine[key] == theirs[key], (mine["epoch"], key)
    final = load_checkpoint(killed_dir / "checkpoints" / "latest.pt")["model"]
    for name, tensor in load_checkpoint(tmp_path / "reference" / "checkpoints" / "latest.pt")[
        "model"
    ].items():
        assert torch.equal(final[name], tensor), name


def test_an_epoch_without_finished_episodes_reports_no_fake_return(tmp_path):
    train(
        load_config([*KITCHEN, "ppo.num_envs=4", "ppo.rollout_ticks=16", "train.total_ticks=80"]),
        tmp_path,
    )
    records = read_records(tmp_path)
    finished = [r["episodes_finished"] for r in records]
    assert finished == [0, 4, 0, 4, 0], "kitchen episodes (30 ticks) end in epochs 2 and 4"
    assert "episodic_return" not in records[0], "no episode has ended yet: no return at all"
    assert records[2]["episodic_return"] == records[1]["episodic_return"] != 0.0
    assert records[2]["episodes_in_window"] == 4 and records[3]["episodes_in_window"] == 8
    for record in records[1:]:
        assert 0.0 <= record["survival_rate"] <= 1.0
