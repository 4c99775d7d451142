"""Map windows read from per-cell tables equal drawing each env's grid and gathering windows.

The reference below is the definition of a window (terrain, instance state, who stands where,
SELF at the centre); `townlet.world.windows` computes the same codes without drawing the grid.
Hypothesis picks the states: several agents on one tile, fainted agents (drawn nowhere, alone
or together), instances idle, busy or queued.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from townlet.scenarios import build_world, load_config
from townlet.world.constants import OCCUPANT_KINDS, OCCUPANT_OTHER, OCCUPANT_SELF
from townlet.world.windows import pair_offsets

WORLDS = {
    name: build_world(load_config([f"scenario={name}"]), num_envs=3, seed=0)
    for name in ("town", "village", "kitchen_breakfast")
}


def reference_windows(world, pos, alive, instance_state):
    """Draw every env's whole grid, then gather each agent's window from it."""
    layout = world.layout
    e, a = pos.shape
    grid = layout.base_codes.expand(e, -1).clone()
    if instance_state is not None:
        codes = (layout.inst_idle_code + instance_state.long()) * OCCUPANT_KINDS
        grid[:, layout.inst_cell] = codes.to(torch.uint8)
    index = (pos.unsqueeze(-1) + layout.window_offsets).view(e, -1)
    center = layout.window * layout.window // 2
    if a == 1:
        grid.scatter_(1, pos, grid.gather(1, pos) + OCCUPANT_SELF)
        return grid.gather(1, index).view(e, a, -1)
    drawn = torch.where(alive, pos, layout.sink_cell)
    grid.scatter_(1, drawn, grid.gather(1, drawn) + OCCUPANT_OTHER)
    window = grid.gather(1, index).view(e, a, -1)
    shared = (drawn.unsqueeze(2) == drawn.unsqueeze(1)).sum(-1) > 1
    window[:, :, center] ^= (OCCUPANT_OTHER | OCCUPANT_SELF) - shared.to(torch.uint8)
    return window


@st.composite
def states(draw):
    name = draw(st.sampled_from(sorted(WORLDS)))
    world = WORLDS[name]
    layout = world.layout
    e, a = world.state.pos.shape
    walkable = layout.walkable[:-1].nonzero().squeeze(1).tolist()
    # few distinct tiles, so agents often share one
    tiles = draw(st.lists(st.sampled_from(walkable), min_size=1, max_size=3))
    pos = torch.tensor(draw(st.lists(st.sampled_from(tiles), min_size=e * a, max_size=e * a)))
    alive = torch.tensor(draw(st.lists(st.booleans(), min_size=e * a, max_size=e * a)))
    n = len(layout.instance_names)
    instance_state = None
    if n and draw(st.booleans()):
        flags = draw(st.lists(st.integers(0, 2), min_size=e * n, max_size=e * n))
        instance_state = torch.tensor(flags, dtype=torch.uint8).view(e, n)
    return world, pos.view(e, a), alive.view(e, a), instance_state


@settings(max_examples=150, deadline=None)
@given(states())
def test_windows_equal_the_drawn_grid(case):
    world, pos, alive, instance_state = case
    state = world.state.clone()
    state.pos, state.alive = pos, alive
    offsets = pair_offsets(state, world.observer.windows.origin) if pos.shape[1] > 1 else None
    all_alive = bool(alive.all())
    got = world.observer.map_codes(state, instance_state, all_alive, offsets)
    want = reference_windows(world, pos, alive, instance_state)
    assert torch.equal(got.view(want.shape), want)
    # the observer computes the offsets itself when it is not handed them
    assert torch.equal(world.observer.map_codes(state, instance_state, all_alive), got)
