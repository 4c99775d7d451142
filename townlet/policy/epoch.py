"""What one epoch produced: its data (`EpochData`) and its update (`UpdateResult`), the two
halves the epoch record is assembled from."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from townlet.policy.ppo import Batch


@dataclass
class EpochData:
    """What one epoch's data source produced, ready for the update and the record."""

    mode: str  # rollout | replay
    batch: Batch
    rewards: torch.Tensor  # per transition of the batch
    entropy: torch.Tensor  # the behaviour policy's entropy per transition
    events: dict[str, float]  # world event counters of the data
    agent_steps: int
    acting_sec: float
    new_cycle: bool
    finished_returns: list[float] = field(default_factory=list)
    finished_lengths: list[float] = field(default_factory=list)
    survival: list[float] = field(default_factory=list)
    background_returns: list[float] = field(default_factory=list)  # under a population
    baseline: dict[str, float] | None = None  # the capture's own figures (replay)


@dataclass
class UpdateResult:
    """The PPO update of one epoch."""

    stats: dict[str, float]  # from `ppo_update` (empty when the batch was)
    kl: float  # KL(behaviour || updated policy) over the batch
    lr: float
    seconds: float
