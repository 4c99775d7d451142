"""The same code on a GPU: training, evaluation, capture with a policy and a live session on
`world.device=cuda`, deterministic per device. Skipped where no GPU is present (CI has none);
`benchmarks/train_sps.py --device cuda` and `benchmarks/world_step.py --device cuda` measure."""

from __future__ import annotations

import pytest
import torch

from townlet.capture import capture
from townlet.policy.checkpoint import load_policy
from townlet.policy.evaluate import evaluate_checkpoint
from townlet.policy.train import train
from townlet.scenarios import load_config
from townlet.scenarios.build import typed
from townlet.serve.live import LiveSession
from townlet.world import World

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
ON_GPU = [
    "scenario=kitchen_breakfast",
    "ppo=fast",
    "ppo.num_envs=8",
    "train.total_ticks=128",
    "train.eval_episodes=2",
    "train.progress=false",
    "recording=periodic",
    "world.device=cuda",
]


def test_a_world_steps_on_the_gpu_with_cpu_actions():
    config = typed(load_config(["scenario=town", "world.device=cuda"]))
    world = World(config.world, config.scenario, num_envs=4, seed=0)
    result = world.step(torch.zeros(4, world.layout.num_agents, dtype=torch.int64))
    assert result.reward.device.type == "cuda" and result.obs.features.device.type == "cuda"


def test_training_evaluation_capture_and_live_run_on_the_gpu(tmp_path):
    first = train(load_config(ON_GPU), tmp_path / "a")
    again = train(load_config(ON_GPU), tmp_path / "b")
    weights = [
        torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["model"]
        for run in (tmp_path / "a", tmp_path / "b")
    ]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]), "deterministic"
    assert again.evaluation == first.evaluation
    assert first.recordings and first.evaluation["policy_deterministic"]["episodes"] == 2
    checkpoint = tmp_path / "a" / "checkpoints" / "latest.pt"
    report = evaluate_checkpoint(checkpoint, ["world.device=cuda"], episodes=2, seed=5)
    assert report["policy_sampled"]["episodes"] == 2
    captured = capture(
        load_config(
            ["scenario=kitchen_breakfast", "world.device=cuda", f"capture.policy={checkpoint}"]
        ),
        tmp_path / "capture",
    )
    assert captured.samples
    config = typed(load_config(ON_GPU))
    world = World(config.world, config.scenario, num_envs=1, seed=config.seed)
    session = LiveSession(config, load_policy(checkpoint, world)[0], "a", world)
    messages = [m for _ in range(5) for m in session.step()]
    assert messages[0]["type"] == "state_update"
    session.close()
