"""Map windows: every agent's egocentric V x V codes, read from per-cell tables.

The fixed terrain of every cell's window is tabulated once, so an agent's window starts as one
row copy; what changes during an episode is added only where it is: each instance's state at
the slot its tile falls in, each standing agent at its slot in the others' windows. The codes
are the same, code for code, as drawing each env's whole grid and gathering every agent's
window from it, which this replaced: the per-cell gather indices alone (E x A x V^2 int64)
cost more than the whole window does now (measured 2026-12-07, town 1024 x 4, one thread:
0.68 ms a tick before, see `benchmarks/world_step.py`).
"""

from __future__ import annotations

import torch

from townlet.world.constants import OCCUPANT_KINDS, OCCUPANT_OTHER, OCCUPANT_SELF
from townlet.world.layout import Layout
from townlet.world.lookup import entries
from townlet.world.state import WorldState


class WindowTables:
    """Per-cell windows of terrain codes and the window slot of every relative offset."""

    def __init__(self, layout: Layout, device: torch.device) -> None:
        cells = layout.base_codes.numel()  # the padded grid and its sink
        slots = layout.window * layout.window
        offsets = layout.window_offsets.cpu()
        index = (torch.arange(cells).unsqueeze(1) + offsets).clamp_(0, cells - 1)
        base = layout.base_codes.cpu()[index]
        # one extra slot per window takes what falls outside it (never read)
        self.base = torch.cat((base, torch.zeros(cells, 1, dtype=torch.uint8)), 1).to(device)
        slot = torch.full((2 * cells + 1,), slots, dtype=torch.int64)
        slot[offsets + cells] = torch.arange(slots)
        self.slot_by_offset = slot.to(device)  # indexed by (target - viewer) + origin
        # (cells, N): the slot each instance's tile takes in the window around each cell
        inst_cell = layout.inst_cell.cpu()
        self.inst_slots = slot[inst_cell - torch.arange(cells).unsqueeze(1) + cells].to(device)
        self.origin, self.slots, self.center = cells, slots, slots // 2
        idle = layout.inst_idle_code.cpu() * OCCUPANT_KINDS
        if not torch.equal(layout.base_codes.cpu()[layout.inst_cell.cpu()].long(), idle):
            raise ValueError("an instance's tile does not show its idle code")


def pair_offsets(state: WorldState, origin: int) -> torch.Tensor:
    """(E, A, A) int64: where j stands relative to i in flat padded cells, plus `origin` so it
    indexes the offset tables (`WindowTables.slot_by_offset`, the layout's pair tables)."""
    return state.pos.unsqueeze(1) - state.pos.unsqueeze(2) + origin


def draw_windows(
    tables: WindowTables,
    layout: Layout,
    state: WorldState,
    instance_state: torch.Tensor | None,
    offsets: torch.Tensor | None,
    all_alive: bool,
) -> torch.Tensor:
    """(E, A, V * V) uint8 window codes; `offsets` are `pair_offsets` (None for lone agents)."""
    e, a = state.pos.shape
    window = tables.base.index_select(0, state.pos.reshape(-1)).view(e, a, -1)
    if instance_state is not None:  # busy or queued instances: + their state x OCCUPANT_KINDS
        inst_slots = tables.inst_slots.index_select(0, state.pos.reshape(-1)).view(e, a, -1)
        codes = (instance_state * OCCUPANT_KINDS).unsqueeze(1)
        window.scatter_add_(2, inst_slots, codes.expand(e, a, -1))
    center = window[:, :, tables.center]
    if offsets is None:  # a lone agent: SELF, nobody can share its tile
        center += OCCUPANT_SELF
        return window[..., : tables.slots].contiguous()
    slots = entries(tables.slot_by_offset, offsets)
    same_tile = offsets == tables.origin
    if not all_alive:  # the fainted are drawn nowhere (they share the sink with each other)
        alive = state.alive
        slots = torch.where(alive.unsqueeze(1), slots, tables.slots)
        both = alive.unsqueeze(1) & alive.unsqueeze(2)
        same_tile = torch.where(both, same_tile, ~(alive.unsqueeze(1) | alive.unsqueeze(2)))
    # OTHER on every standing agent's tile (an agent's own included); writing the same value
    # twice where two agents share a tile keeps it exact
    window.scatter_(2, slots, window.gather(2, slots) | OCCUPANT_OTHER)
    # at its own centre an agent's OTHER becomes SELF (2), or SELF+OTHER (3) when another agent
    # shares its tile: XOR with 3 or 2 respectively
    shared = same_tile.sum(-1) > 1
    center ^= (OCCUPANT_OTHER | OCCUPANT_SELF) - shared.to(torch.uint8)
    return window[..., : tables.slots].contiguous()
