"""Needs: meters decay each tick, completions and wages move them, a critical meter at 0 faints."""

from __future__ import annotations

import torch

from townlet.world.layout import Layout
from townlet.world.state import WorldState


def update_meters(
    state: WorldState,
    layout: Layout,
    completion_delta: torch.Tensor | None,
    wage: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply decay, effects and wage in place; return (meter change (E,A,M), fainted (E,A))."""
    old = state.meters
    new = old - layout.decay
    if completion_delta is not None:
        new += completion_delta
    if wage is not None:
        new[..., layout.money_index] += wage
    new.clamp_(0.0, 1.0)
    new = torch.where(state.alive.unsqueeze(-1), new, old)
    fainted = state.alive & ((new <= 0.0) & layout.critical).any(-1)
    state.meters = new
    state.alive = state.alive & ~fainted
    return new - old, fainted
