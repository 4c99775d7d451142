"""Random utility outages (`scenario.random_outages`): per env, drawn from the episode's own
key each tick a utility is up, so the same seed gives the same outages in training, a capture,
a recording and its re-simulation. While one lasts, the utility's affordances admit nobody
(like a scheduled outage) and agents see its `outage_<utility>` flag."""

from __future__ import annotations

import torch

from townlet.world.draws import uniform
from townlet.world.layout import Layout
from townlet.world.state import WorldState

OUTAGE_KEY = 0x0C7A_6E5D_2B41_9F17
"""Salts the episode key for outage draws, so they are not the queue's or fatigue's draws."""


def draw_outages(state: WorldState, layout: Layout, live: torch.Tensor) -> torch.Tensor:
    """Advance each random outage one tick and begin new ones in the `live` (E,) envs, in
    place; returns (E,) int64 the outages that began. `outage_left` counts the ticks still
    closed from the next one on."""
    left = (state.outage_left - 1).clamp(min=0)
    draws = uniform(state.rng_key ^ OUTAGE_KEY, state.tick, len(layout.utility_names))
    begin = (left == 0) & (draws < layout.random_chance) & live.unsqueeze(1)
    state.outage_left = torch.where(begin, layout.random_ticks, left)
    return begin.sum(-1)


def out_now(state: WorldState) -> torch.Tensor:
    """(E, U) bool: the utilities a random outage holds out this tick."""
    return state.outage_left > 0


def closed_here(state: WorldState, layout: Layout) -> torch.Tensor:
    """(E, A) bool: the instance on the agent's tile is closed by a random outage."""
    closed = (out_now(state).float() @ layout.utility_instances.float()) > 0  # (E, N)
    tile = torch.take(layout.tile_instance, state.pos)
    return closed.gather(1, tile.clamp(min=0)) & (tile >= 0)
