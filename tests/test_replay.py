"""PPO on captures (replay) and alternating with rollouts (mixed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from townlet.capture import capture
from townlet.config.errors import ConfigError
from townlet.policy.replay import ReplayError, ReplayStream, SampleRef
from townlet.policy.train import train
from townlet.scenarios import load_config


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    root = tmp_path_factory.mktemp("captures")
    for seed in (1, 2, 3):
        capture(load_config(["scenario=kitchen_breakfast", f"seed={seed}"]), root / f"s{seed}")
    return root


def records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "telemetry" / "ppo.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_replay_trains_on_captures_and_reports_baselines(captures, tmp_path):
    train(
        load_config(
            [
                "scenario=kitchen_breakfast",
                "ppo=fast",
                "train.source=replay",
                f"train.capture_dir={captures}",
                "train.replay_chunk=2",
                "train.total_ticks=320",
            ]
        ),
        tmp_path,
    )
    rows = records(tmp_path)
    assert {r["data_mode"] for r in rows} == {"replay"}
    metrics = {}
    for path in captures.rglob("rollout_sample_metrics.json"):
        metrics.update(
            {
                f"{path.parent.name}/{k}": v
                for k, v in json.loads(path.read_text())["samples"].items()
            }
        )
    for row in rows:
        assert row["baseline_sample_count"] == 2
        assert row["transitions"] == 60, "two 30-step samples"
        assert row["baseline_log_prob_mean"] == 0.0, "the script is deterministic"
    sums = [m["reward_sum"] for m in metrics.values()]
    pairs = [a + b for i, a in enumerate(sums) for b in sums[i + 1 :]]
    for row in rows:
        assert any(abs(row["baseline_reward_sum"] - p) < 1e-4 for p in pairs), "two real samples"
        assert row["baseline_reward_sum_mean"] == pytest.approx(row["baseline_reward_sum"] / 2)
    # six samples, chunks of two: a cycle is three epochs
    assert [r["cycle_id"] for r in rows[:7]] == [1, 1, 1, 2, 2, 2, 3]
    assert rows[-1]["loss_value"] < rows[0]["loss_value"], "the critic learns the captured returns"


def test_mixed_alternates_rollout_and_replay(captures, tmp_path):
    train(
        load_config(
            [
                "scenario=kitchen_breakfast",
                "ppo=fast",
                "ppo.num_envs=4",
                "train.source=mixed",
                f"train.capture_dir={captures}",
                "train.total_ticks=128",
            ]
        ),
        tmp_path,
    )
    rows = records(tmp_path)
    assert [r["data_mode"] for r in rows] == ["rollout", "replay", "rollout", "replay"]
    assert "baseline_sample_count" in rows[1] and "baseline_sample_count" not in rows[0]


def test_replay_needs_compatible_captures(captures, tmp_path):
    with pytest.raises(ValueError, match="train.capture_dir"):
        train(load_config(["scenario=kitchen_breakfast", "train.source=replay"]), tmp_path)
    with pytest.raises(ReplayError, match="no capture manifests"):
        train(
            load_config(
                [
                    "scenario=kitchen_breakfast",
                    "train.source=replay",
                    f"train.capture_dir={tmp_path / 'empty'}",
                ]
            ),
            tmp_path,
        )
    narrow = tmp_path / "narrow"
    capture(load_config(["scenario=kitchen_breakfast", "world.observation.window=7"]), narrow)
    with pytest.raises(ReplayError, match="captured with a 7-wide window; this config observes 9"):
        train(
            load_config(
                ["scenario=kitchen_breakfast", "train.source=replay", f"train.capture_dir={narrow}"]
            ),
            tmp_path,
        )


def test_stream_groups_by_length_covers_each_sample_once_and_is_seeded():
    refs = [SampleRef(Path(f"s{i}.npz"), 10 if i % 3 else 20, {}) for i in range(10)]
    stream = ReplayStream(refs, chunk=3, seed=5)
    seen = []
    chunk, started = stream.next_chunk()
    assert started
    while True:
        assert len({r.timesteps for r in chunk}) == 1, "one shape per chunk"
        seen += [r.path.name for r in chunk]
        chunk, started = stream.next_chunk()
        if started:
            break
    assert sorted(seen) == sorted(r.path.name for r in refs)

    def order(seed):
        stream = ReplayStream(refs, chunk=3, seed=seed)
        return [[r.path.name for r in stream.next_chunk()[0]] for _ in range(8)]

    assert order(5) == order(5), "a seeded order"
    assert order(5) != order(6)


@pytest.mark.parametrize(
    ("source", "modes"), [("replay", ["replay", "replay"]), ("mixed", ["replay", "rollout"])]
)
def test_an_anneal_schedules_ppo_phases_learn_from_train_source(captures, tmp_path, source, modes):
    """`train.source=replay` beside an anneal schedule first failed its first PPO epoch, then was
    silently ignored (its PPO phases rolled out); now BC passes come first and the PPO phases
    learn from the captures the source names."""
    train(
        load_config(
            [
                "scenario=kitchen_breakfast",
                "ppo=fast",
                "ppo.num_envs=8",
                f"train.source={source}",
                f"train.capture_dir={captures}",
                "train.anneal=[{mode:bc,epochs:1},{mode:ppo,epochs:2}]",
                "train.anneal_threshold=0.0",
                "tracking=off",
                "recording=off",
            ]
        ),
        tmp_path,
    )
    assert [r["data_mode"] for r in records(tmp_path)] == ["bc", *modes]


def test_cloning_only_beside_an_anneal_schedule_is_refused_at_composition():
    with pytest.raises(ConfigError, match=r"^train.source=bc clones .* set train.anneal=\[\]"):
        load_config(["scenario=town", "train.source=bc"])
    load_config(["scenario=town", "train.source=bc", "train.anneal=[]"])  # clones only
