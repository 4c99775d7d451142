"""The PPO maths against hand-computed cases: GAE, the clipped losses, the categorical KL, and
the custom embedding backward against torch's own gradient, the fused map layer against the
plain modules."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from townlet.policy.network import CODE_VOCAB, ActorCritic, CodeEmbedding, _CodeLookup
from townlet.policy.ppo import categorical_kl, clipped_policy_loss, narrow_log_softmax, value_loss
from townlet.policy.rollout import compute_gae


def test_gae_matches_a_hand_computed_case_with_an_episode_end():
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [1.0], [0.2]])
    dones = torch.tensor([[False], [True], [False]])  # the episode ends with transition 1
    next_value = torch.tensor([0.4])
    advantages, returns = compute_gae(rewards, values, dones, next_value, gamma, lam)
    d2 = 2.0 + gamma * 0.4 - 0.2  # bootstraps from next_value
    d1 = 0.0 - 1.0  # terminal: no bootstrap
    d0 = 1.0 + gamma * 1.0 - 0.5
    a2 = d2
    a1 = d1  # the episode boundary cuts the trace
    a0 = d0 + gamma * lam * a1
    assert advantages.squeeze(1).tolist() == pytest.approx([a0, a1, a2])
    assert returns.squeeze(1).tolist() == pytest.approx([a0 + 0.5, a1 + 1.0, a2 + 0.2])


def test_clipped_policy_loss_takes_the_pessimistic_side():
    clip = 0.2
    # Positive advantage, ratio far above 1 + clip: the gain is capped at (1 + clip) * A.
    assert float(clipped_policy_loss(torch.tensor([2.0]), torch.tensor([1.5]), clip)) == (
        pytest.approx(-2.0 * 1.2)
    )
    # Negative advantage, ratio far below 1 - clip: the clipped term is worse, so it counts.
    assert float(clipped_policy_loss(torch.tensor([-1.0]), torch.tensor([0.5]), clip)) == (
        pytest.approx(1.0 * 0.8)
    )
    # Negative advantage, ratio above 1 + clip: the unclipped (worse) term counts.
    assert float(clipped_policy_loss(torch.tensor([-1.0]), torch.tensor([1.5]), clip)) == (
        pytest.approx(1.5)
    )
    # Inside the trust region nothing is clipped; the result is a mean over the batch.
    loss = clipped_policy_loss(torch.tensor([1.0, -2.0]), torch.tensor([1.1, 0.9]), clip)
    assert float(loss) == pytest.approx((-1.1 + 1.8) / 2)


def test_value_loss_plain_and_clipped():
    new, old, returns = torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([3.0])
    assert float(value_loss(new, old, returns, None)) == pytest.approx(0.5 * 1.0)
    # Clipped value 1.2 is further from the return (error 1.8) than 2.0 is: the max takes it.
    assert float(value_loss(new, old, returns, 0.2)) == pytest.approx(0.5 * 1.8**2)
    # When the clipped value is closer, the plain error counts.
    far = torch.tensor([5.0])
    assert float(value_loss(far, old, returns, 0.2)) == pytest.approx(0.5 * 2.0**2)


def test_categorical_kl_is_exact_and_ignores_masked_actions():
    old = torch.tensor([[math.log(0.5), math.log(0.5), -1e9]])
    new = torch.tensor([[math.log(0.25), math.log(0.75), -1e9]])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert float(categorical_kl(old, new)[0]) == pytest.approx(expected, abs=1e-6)
    assert float(categorical_kl(old, old)[0]) == pytest.approx(0.0, abs=1e-7)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 300), actions=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_narrow_log_softmax_equals_log_softmax(rows, actions, seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, actions, generator=generator) * 5
    logits[:, 0] = torch.where(logits[:, 1] > 0, -1e9, logits[:, 0])  # masked actions too
    ours = narrow_log_softmax(logits)
    assert ours.shape == logits.shape
    assert torch.allclose(ours, torch.log_softmax(logits, -1), atol=1e-5, rtol=1e-6)


def test_code_embedding_gradient_equals_torch_embedding_gradient():
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(0, CODE_VOCAB, (6, 5, 5), generator=generator, dtype=torch.int64)
    codes[0, 0, :3] = 7  # repeated codes must sum their gradients
    ours = CodeEmbedding(3)
    reference = torch.nn.Parameter(ours.weight.detach().clone())
    upstream = torch.randn(6, 5, 5, 3, generator=generator)
    (ours(codes.to(torch.uint8)) * upstream).sum().backward()
    (torch.nn.functional.embedding(codes, reference) * upstream).sum().backward()
    assert torch.allclose(ours.weight.grad, reference.grad, atol=1e-6)


def test_code_lookup_passes_gradcheck():
    weight = torch.randn(10, 2, dtype=torch.float64, requires_grad=True)
    codes = torch.tensor([[1, 3, 3], [9, 0, 1]])
    assert torch.autograd.gradcheck(lambda w: _CodeLookup.apply(w, codes), (weight,))


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 2600), seed=st.integers(0, 2**16))
def test_fused_map_layer_equals_embedding_then_linear_bit_for_bit(rows, seed):
    """The fused map layer forms its embedding gradient in chunks (`GRAD_CHUNK`); its output
    and every gradient must equal the plain modules' exactly, a last partial chunk included."""
    generator = torch.Generator().manual_seed(seed)
    net = ActorCritic(window=5, num_features=3, num_actions=4, hidden=8, embedding=3)
    codes = torch.randint(0, CODE_VOCAB, (rows, 5, 5), generator=generator).to(torch.uint8)
    upstream = torch.randn(rows, 8, generator=generator)
    params = (net.embed.weight, net.map_fc.weight, net.map_fc.bias)

    def gradients(output: torch.Tensor) -> list[torch.Tensor]:
        return [output.detach(), *torch.autograd.grad((output * upstream).sum(), params)]

    fused = gradients(net.read_map(codes))
    plain = gradients(net.map_fc(net.embed(codes).flatten(1)))
    assert all(torch.equal(a, b) for a, b in zip(fused, plain, strict=True))


def test_masked_logits_are_the_full_forward_passes_logits():
    generator = torch.Generator().manual_seed(3)
    net = ActorCritic(window=5, num_features=3, num_actions=4, hidden=8, embedding=3)
    codes = torch.randint(0, CODE_VOCAB, (32, 5, 5), generator=generator).to(torch.uint8)
    features = torch.randn(32, 3, generator=generator)
    mask = torch.rand(32, 4, generator=generator) > 0.3
    mask[:, 0] = True
    action, *_, logits = net.get_action_and_value(codes, features, mask, deterministic=True)
    alone = net.masked_logits(codes, features, mask)
    assert torch.equal(alone, logits)
    assert torch.equal(alone.argmax(-1), action)
    assert bool((alone[~mask] == -1e9).all())
