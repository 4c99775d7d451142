"""Movement: one tile per tick; blocked moves are no-ops; leaving a tile leaves its queue."""

from __future__ import annotations

import torch

from townlet.world.layout import Layout
from townlet.world.state import WorldState


def move(state: WorldState, layout: Layout, actions: torch.Tensor) -> torch.Tensor:
    """Apply moves in place; return the (E, A) mask of agents that changed tile."""
    delta = layout.move_delta[actions]
    target = state.pos + delta
    moved = layout.walkable[target] & (delta != 0)
    state.pos = torch.where(moved, target, state.pos)
    return moved


def leave_on_move(state: WorldState, moved: torch.Tensor) -> None:
    """Moving away aborts an interaction (progress lost) and leaves any queue."""
    state.using = torch.where(moved, -1, state.using)
    state.queued = torch.where(moved, -1, state.queued)
    state.progress = torch.where(moved, 0, state.progress)
