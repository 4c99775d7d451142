"""Employment: daily shifts at a workplace; on time, late, absent; wages while present.

An agent on its workplace tile by the end of the grace period is on time; arriving later is
late; a shift that ends without arrival is absent (the events telemetry counts). The penalties
fall when the agent can still act on them: the late penalty at the grace deadline, the absence
penalty a little for each tick after the grace deadline that it is not at work, before
arriving or after leaving (round one charged lateness on arrival, which punished arriving, and
absence 70 ticks later, too late to teach anything; charging only until arrival was measured to
teach "arrive on time, then leave for the cafe"). Wage is paid per tick present during the shift
after arriving, so a late worker earns less.
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
    late: torch.Tensor  # (E, A) float32 late penalty charged this tick
    absent: torch.Tensor  # (E, A) float32 absence penalty charged this tick


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
    late = torch.where(arrived != ShiftEvent.ON_TIME, layout.late_charge[clock], 0.0)
    absence = torch.where(present, 0.0, layout.absence_charge[clock])
    if not all_alive:
        late, absence = late * state.alive, absence * state.alive
    return ShiftOutcome(event, wage, late, absence)
