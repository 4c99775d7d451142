"""Employment: daily shifts at a workplace; on time, late, absent; wages while present.

An agent on its workplace tile by the end of the grace period is on time; arriving later is
late (one-off penalty); a shift that ends without arrival is absent (one-off penalty). Wage is
paid per tick present during the shift after arriving, so a late worker earns less.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet.world.constants import ShiftEvent
from townlet.world.layout import Layout
from townlet.world.state import WorldState


@dataclass
class ShiftOutcome:
    event: torch.Tensor  # (E, A) int64 ShiftEvent
    wage: torch.Tensor  # (E, A) float32 money earned
    penalty: torch.Tensor  # (E, A) float32 reward penalty


def clock_index(layout: Layout, tod: torch.Tensor) -> torch.Tensor:
    """Flat index into the per-(agent, tick-of-day) tables."""
    return layout.agent_tod_base + tod.unsqueeze(1)


def work(
    state: WorldState, layout: Layout, clock: torch.Tensor, all_alive: bool = False
) -> ShiftOutcome:
    """Update arrivals in place and return this tick's shift events, wages and penalties."""
    in_shift = layout.shift_in_progress[clock]
    arrived = torch.where(in_shift, state.arrived, 0)
    present = state.pos == layout.job_cell
    if not all_alive:
        present &= state.alive
    arriving = present & in_shift & (arrived == 0)
    arrival = torch.where(arriving, layout.shift_arrival_kind[clock], 0)
    arrived = arrived + arrival
    state.arrived = arrived
    wage = torch.where(present & (arrived > 0), layout.wage, 0.0)
    absent = layout.shift_last_tick[clock] & (arrived == 0)
    if not all_alive:
        absent &= state.alive
    event = torch.where(absent, ShiftEvent.ABSENT, arrival)
    penalty = layout.penalty_by_event[layout.agent_event_base + event]
    return ShiftOutcome(event, wage, penalty)
