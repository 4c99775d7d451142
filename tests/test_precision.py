"""ppo.precision: bf16 autocast runs the network's matmuls in bf16, keeps the weights, the
optimizer state and every output the algorithm reads in fp32, and stays deterministic."""

from __future__ import annotations

import pytest
import torch

from townlet.config.choices import Precision
from townlet.policy.network import ActorCritic
from townlet.policy.precision import precision_scope
from townlet.policy.train import train
from townlet.scenarios import load_config

KITCHEN = ["scenario=kitchen_breakfast", "ppo=fast", "tracking=off", "recording=off"]


def _net_and_inputs():
    torch.manual_seed(0)
    net = ActorCritic(window=5, num_features=7, num_actions=6, hidden=32, embedding=4)
    codes = torch.randint(0, 20, (64, 5, 5), dtype=torch.uint8)
    features = torch.rand(64, 7)
    mask = torch.ones(64, 6, dtype=torch.bool)
    return net, codes, features, mask


def test_bf16_runs_the_matmuls_in_bf16_and_returns_fp32():
    net, codes, features, mask = _net_and_inputs()
    with precision_scope(Precision.fp32, torch.device("cpu")):
        full = net.get_action_and_value(codes, features, mask, deterministic=True)
        hidden_fp32 = net.hidden(codes, features)
    with precision_scope(Precision.bf16, torch.device("cpu")):
        half = net.get_action_and_value(codes, features, mask, deterministic=True)
        hidden_bf16 = net.hidden(codes, features)
    assert hidden_fp32.dtype == torch.float32 and hidden_bf16.dtype == torch.bfloat16
    for out in half[1:]:  # log-prob, entropy, value, logits: what PPO reads stays fp32
        assert out.dtype == torch.float32
    assert not torch.equal(full[4], half[4]), "bf16 changed nothing: autocast did not apply"
    assert torch.allclose(full[4], half[4], atol=0.05)


def test_bf16_gradients_reach_fp32_weights():
    net, codes, features, mask = _net_and_inputs()
    with precision_scope("bf16", torch.device("cpu")):
        _, logprob, _, value, _ = net.get_action_and_value(codes, features, mask)
        (value.mean() - logprob.mean()).backward()
    for name, param in net.named_parameters():
        assert param.dtype == torch.float32, name
        assert param.grad is not None and param.grad.dtype == torch.float32, name
        assert torch.isfinite(param.grad).all(), name


def test_an_unknown_precision_is_an_error_naming_the_key():
    with pytest.raises(Exception, match="ppo.precision"):
        load_config([*KITCHEN, "ppo.precision=fp8"])


def test_bf16_training_is_deterministic_and_differs_from_fp32(tmp_path):
    overrides = [*KITCHEN, "train.total_ticks=128", "ppo.num_envs=8"]

    def weights(name: str, precision: str) -> dict[str, torch.Tensor]:
        train(load_config([*overrides, f"ppo.precision={precision}"]), tmp_path / name)
        return torch.load(tmp_path / name / "checkpoints" / "latest.pt", weights_only=False)[
            "model"
        ]

    first, second, fp32 = weights("a", "bf16"), weights("b", "bf16"), weights("c", "fp32")
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], fp32[k]) for k in first)
