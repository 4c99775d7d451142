"""Capture files: contracts, options, determinism, and a suite through `-m`."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from townlet.capture import capture
from townlet.scenarios import load_config
from townlet.world import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {
    "map": np.float32,
    "features": np.float32,
    "actions": np.int64,
    "old_log_probs": np.float32,
    "value_preds": np.float32,
    "rewards": np.float32,
    "action_masks": np.bool_,
    "dones": np.bool_,
}


def run(tmp_path, *overrides, name="employment_punctuality", sub="run"):
    return capture(load_config([f"scenario={name}", *overrides]), tmp_path / sub)


def test_samples_follow_the_replay_contract(tmp_path):
    result = run(tmp_path)
    out = tmp_path / "run"
    manifest = json.loads((out / "rollout_sample_manifest.json").read_text())
    assert [s["sample"] for s in manifest["samples"]] == [
        "rollout_sample_eve_000.npz",
        "rollout_sample_lou_000.npz",
    ]
    for row in manifest["samples"]:
        arrays = np.load(out / row["sample"])
        t = row["timesteps"]
        assert set(arrays.files) == set(FIELDS)
        for name, dtype in FIELDS.items():
            assert arrays[name].dtype == dtype, name
        meta = json.loads((out / row["meta"]).read_text())
        c, v = len(meta["map_channel_names"]), 9
        assert arrays["map"].shape == (t, c, v, v)
        assert arrays["features"].shape == (t, len(meta["feature_names"]))
        assert arrays["value_preds"].shape == (t + 1,) and arrays["value_preds"][-1] == 0
        assert meta["action_names"]["5"] == "INTERACT" and meta["seed"] == 5
        assert meta["scenario"] == "employment_punctuality" and len(meta["config_hash"]) == 16
        # Monte Carlo values: v_t = r_t + gamma * v_{t+1}
        np.testing.assert_allclose(
            arrays["value_preds"][:-1],
            arrays["rewards"] + 0.99 * arrays["value_preds"][1:],
            rtol=1e-5,
            atol=1e-6,
        )
        assert arrays["dones"][-1] and not arrays["dones"][:-1].any()
        assert "log(1) = 0" in meta["old_log_probs"]
    # observation t is the one action t was chosen from: eve starts at x=3 and walks right
    eve = np.load(out / "rollout_sample_eve_000.npz")
    names = result.world.names.features
    xs = eve["features"][:5, names.index("pos_x")] * 7
    assert xs.round().tolist() == [3, 4, 5, 6, 7]
    assert eve["actions"][:4].tolist() == [4, 4, 4, 4]  # RIGHT from each of those tiles
    metrics = json.loads((out / "rollout_sample_metrics.json").read_text())
    sample = metrics["samples"]["rollout_sample_eve_000.npz"]
    for key in (
        "timesteps",
        "reward_sum",
        "reward_mean",
        "log_prob_mean",
        "value_pred_mean",
        "action_counts.RIGHT",
        "completions.Bed",
        "contention_events",
        "contention_intensity",
        "rivalry_max_mean",
        "rivalry_max_max",
        "on_time_ticks",
        "late_ticks",
        "absent_ticks",
        "wage_earned",
        "faints",
    ):
        assert key in sample, key
    assert sample["action_counts.RIGHT"] == 4


def test_same_seed_gives_byte_identical_arrays(tmp_path):
    run(tmp_path, name="queue_conflict", sub="a")
    run(tmp_path, name="queue_conflict", sub="b")
    for path in sorted((tmp_path / "a").glob("*.npz")):
        first, second = np.load(path), np.load(tmp_path / "b" / path.name)
        for name in FIELDS:
            assert first[name].tobytes() == second[name].tobytes(), (path.name, name)


def test_agent_prefix_compress_and_ticks_options(tmp_path):
    run(
        tmp_path,
        "capture.agent=lou",
        "capture.prefix=late",
        "capture.compress=true",
        "capture.ticks=12",
    )
    out = tmp_path / "run"
    assert sorted(p.name for p in out.glob("*.npz")) == ["late_lou_000.npz"]
    assert (out / "late_manifest.json").exists() and (out / "late_metrics.json").exists()
    with zipfile.ZipFile(out / "late_lou_000.npz") as archive:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in archive.infolist())
    arrays = np.load(out / "late_lou_000.npz")
    assert arrays["actions"].shape == (12,)
    plain = run(tmp_path, "capture.ticks=12", sub="plain")
    assert plain.files
    np.testing.assert_array_equal(
        arrays["map"], np.load(tmp_path / "plain" / "rollout_sample_lou_000.npz")["map"]
    )
    with pytest.raises(ConfigError, match="capture.agent: unknown agent 'zed'"):
        run(tmp_path, "capture.agent=zed", sub="bad")


def test_auto_seed_agents_adds_placeholders_only_when_asked(tmp_path):
    with pytest.raises(ConfigError, match="spawns no agents"):
        run(tmp_path, "scenario.agents=[]", name="queue_conflict", sub="none")
    result = run(
        tmp_path,
        "scenario.agents=[]",
        "capture.auto_seed_agents=true",
        "capture.auto_seed_count=2",
        name="queue_conflict",
        sub="seeded",
    )
    assert result.files == [
        "rollout_sample_placeholder_0_000.npz",
        "rollout_sample_placeholder_1_000.npz",
    ]


def test_script_errors_name_scenario_agent_and_key(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        run(tmp_path, "scenario.agents.0.script.0.target=jacuzzi", name="queue_conflict")
    message = str(excinfo.value)
    assert "scenario 'queue_conflict'" in message and "agent 'ada'" in message
    assert "script[0].target" in message and "jacuzzi" in message


@pytest.mark.slow
def test_capture_multirun_writes_one_run_dir_per_scenario(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "experiments/capture.py",
            "-m",
            "scenario=kitchen_breakfast,queue_conflict",
            f"hydra.sweep.dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    scenarios = sorted(
        json.loads(p.read_text())["scenario"]
        for p in tmp_path.glob("*/rollout_sample_manifest.json")
    )
    assert scenarios == ["kitchen_breakfast", "queue_conflict"]


def test_a_typo_in_a_scenario_file_names_scenario_agent_and_key(tmp_path):
    from townlet.scenarios.build import CONF_DIR
    from townlet.scenarios.lint import preflight

    conf = tmp_path / "conf"
    (conf / "scenario").mkdir(parents=True)
    (conf / "config.yaml").write_text((CONF_DIR / "config.yaml").read_text())
    text = (CONF_DIR / "scenario" / "queue_conflict.yaml").read_text()
    (conf / "scenario" / "typo.yaml").write_text(
        text.replace("id: bea\n      pos", "id: bea\n      poss")
    )
    with pytest.raises(SystemExit) as excinfo:
        preflight(["scenario=typo"], conf_dir=conf)
    assert excinfo.value.code == 2
    done = subprocess.run(
        [
            sys.executable,
            "experiments/capture.py",
            "scenario=queue_conflict",
            "scenario.agents.0.jobb=x",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "jobb" in done.stderr


def test_preflight_message_names_everything(capsys, tmp_path):
    from townlet.scenarios.lint import lint_scenario

    problems = lint_scenario(
        {
            "scenario": {
                "name": "cafe_rush",
                "agents": [
                    {"id": "zoe", "pos": [0, 0], "script": [{"do": "wait", "tiks": 3}]},
                    {"id": "yan", "poss": [1, 0]},
                ],
            }
        },
        "scenario/cafe_rush.yaml",
    )
    assert problems == [
        "scenario 'cafe_rush' (scenario/cafe_rush.yaml): agent 'zoe' (agents[0]): script[0]: "
        "unknown key 'tiks' (known: do, target, pos, ticks, hour)",
        "scenario 'cafe_rush' (scenario/cafe_rush.yaml): agent 'yan' (agents[1]): "
        "unknown key 'poss' (known: id, pos, meters, job, bed, script, day_off_script)",
    ]


@pytest.mark.slow
def test_capture_with_a_trained_policy_records_its_real_log_probs_and_values(tmp_path):
    import torch

    from townlet.policy.checkpoint import load_checkpoint
    from townlet.policy.network import ActorCritic
    from townlet.policy.train import train

    train(
        load_config(
            ["scenario=kitchen_breakfast", "ppo=fast", "ppo.num_envs=4", "train.total_ticks=64"]
        ),
        tmp_path / "train",
    )
    checkpoint = tmp_path / "train" / "checkpoints" / "latest.pt"
    result = run(tmp_path, f"capture.policy={checkpoint}", name="kitchen_breakfast")
    meta = json.loads((tmp_path / "run" / "rollout_sample_ann_000.json").read_text())
    assert meta["behaviour_policy"] == f"checkpoint:{checkpoint}"
    arrays = np.load(tmp_path / "run" / "rollout_sample_ann_000.npz")
    assert (arrays["old_log_probs"] < 0).all(), "a stochastic policy's log-probabilities"
    data = load_checkpoint(checkpoint)
    net = ActorCritic(**data["network_shape"])
    net.load_state_dict(data["model"])
    codes = result.world.observer.codes_from_dense(torch.from_numpy(arrays["map"]))
    with torch.no_grad():
        _, logp, _, value, _ = net.get_action_and_value(
            codes,
            torch.from_numpy(arrays["features"]),
            torch.from_numpy(arrays["action_masks"]),
            action=torch.from_numpy(arrays["actions"]),
        )
    np.testing.assert_allclose(arrays["old_log_probs"], logp.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(arrays["value_preds"][:-1], value.numpy(), rtol=1e-5, atol=1e-6)
    assert arrays["action_masks"][np.arange(len(codes)), arrays["actions"]].all()
