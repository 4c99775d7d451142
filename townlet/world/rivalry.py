"""Rivalry decays every tick; contention raises it (see interactions)."""

from __future__ import annotations

import torch

from townlet.config.schema import RivalryConfig
from townlet.world.state import WorldState


def decay_rivalry(state: WorldState, config: RivalryConfig) -> None:
    state.rivalry.mul_(1.0 - config.decay)


def rivalry_summary(rivalry: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per agent: the strongest rivalry it holds, and how many agents it should avoid."""
    return rivalry.amax(-1), (rivalry > threshold).sum(-1)
