"""Movement: one tile per tick; blocked moves are no-ops; leaving a tile leaves its queue."""

from __future__ import annotations

import torch

from townlet.world.layout import Layout
from townlet.world.state import WorldState


def move(state: WorldState, layout: Layout, actions: torch.Tensor) -> None:
    """Apply moves in place. Non-moves target the agent's own (walkable) tile, so one
    walkability test covers both blocked moves and standing still."""
    target = state.pos + torch.take(layout.move_delta, actions)
    state.pos = torch.where(torch.take(layout.walkable, target), target, state.pos)


def leave_on_move(state: WorldState, previous_pos: torch.Tensor) -> None:
    """Moving away aborts an interaction (progress lost) and leaves any queue."""
    moved = state.pos != previous_pos
    state.using = torch.where(moved, -1, state.using)
    state.queued = torch.where(moved, -1, state.queued)
    state.progress = torch.where(moved, 0, state.progress)
