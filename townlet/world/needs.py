"""Needs: meters decay each tick, completions and wages move them, a critical meter at 0 faints."""

from __future__ import annotations

import torch

from townlet.world.layout import Layout
from townlet.world.state import WorldState


def update_meters(
    state: WorldState,
    layout: Layout,
    decay: torch.Tensor,
    completion_delta: torch.Tensor | None,
    wage: torch.Tensor | None,
    all_alive: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply `decay` (M,), effects and wage in place; return (meter change (E,A,M), fainted (E,A)),
    with fainted None when provably nobody fainted."""
    old = state.meters
    new = old - decay
    if completion_delta is not None:
        new += completion_delta
    if wage is not None:
        new[..., layout.money_index] += wage
    new.clamp_(0.0, 1.0)
    if not all_alive:  # the fainted are frozen
        new = torch.where(state.alive.unsqueeze(-1), new, old)
    state.meters = new
    # Non-critical meters are lifted above 0 so one min finds any critical meter at 0.
    lifted = new + layout.noncritical_offset
    if all_alive and float(lifted.amin()) > 0.0:
        return new - old, None
    fainted = (lifted <= 0.0).any(-1) & state.alive
    state.alive = state.alive & ~fainted
    return new - old, fainted
