"""Rollout storage: preallocated (T, N, ...) tensors, N = envs x agents, plus GAE.

`valid[t, n]` marks transitions an agent really took (it was standing); fainted agents waiting
for their env to reset, and agents a curriculum stage leaves out, are excluded from the loss.
`dones[t, n]` means the agent's episode ended with transition t (faint or tick limit); time-limit
truncation is treated as terminal, as in CleanRL (documented in docs/guides/training.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet.world.events import allocate_events


@dataclass
class Rollout:
    codes: torch.Tensor  # (T, N, V, V) uint8
    features: torch.Tensor  # (T, N, F)
    masks: torch.Tensor  # (T, N, K) bool
    actions: torch.Tensor  # (T, N) int64
    logprobs: torch.Tensor  # (T, N)
    logits: torch.Tensor  # (T, N, K) behaviour logits (masked), for the exact KL
    entropy: torch.Tensor  # (T, N) behaviour entropy
    values: torch.Tensor  # (T, N)
    rewards: torch.Tensor  # (T, N)
    dones: torch.Tensor  # (T, N) bool
    valid: torch.Tensor  # (T, N) bool
    # the world's events of each tick (townlet.world.events declares them), for telemetry
    events: dict[str, torch.Tensor]

    @classmethod
    def allocate(
        cls,
        ticks: int,
        n: int,
        window: int,
        features: int,
        actions: int,
        device: torch.device | str = "cpu",
        envs: int = 1,
    ) -> Rollout:
        def z(*shape, dtype=torch.float32):
            return torch.zeros((ticks, n, *shape), dtype=dtype, device=device)

        return cls(
            codes=z(window, window, dtype=torch.uint8),
            features=z(features),
            masks=z(actions, dtype=torch.bool),
            actions=z(dtype=torch.int64),
            logprobs=z(),
            logits=z(actions),
            entropy=z(),
            values=z(),
            rewards=z(),
            dones=z(dtype=torch.bool),
            valid=z(dtype=torch.bool),
            events=allocate_events(ticks, envs, n // envs, device),
        )

    @property
    def ticks(self) -> int:
        return int(self.actions.shape[0])


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), both (T, N). `dones[t]`: the episode ended with transition t."""
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(next_value)
    ticks = rewards.shape[0]
    for t in reversed(range(ticks)):
        nextvalues = next_value if t == ticks - 1 else values[t + 1]
        nextnonterminal = 1.0 - dones[t].float()
        delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
        lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
        advantages[t] = lastgaelam
    return advantages, advantages + values
