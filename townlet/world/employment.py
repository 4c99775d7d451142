"""Employment: daily shifts at a workplace; on time, late, absent; wages while present.

An agent on its workplace tile by the end of the grace period is on time; arriving later is
late (one-off penalty); a shift that ends without arrival is absent (one-off penalty). Wage is
paid per tick present during the shift after arriving, so a late worker earns less.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet.world.constants import ShiftEvent
from townlet.world.layout import Layout, ShiftPhase
from townlet.world.state import WorldState


@dataclass
class ShiftOutcome:
    phase: torch.Tensor  # (E, A) int64 ShiftPhase
    event: torch.Tensor  # (E, A) int64 ShiftEvent
    wage: torch.Tensor  # (E, A) float32 money earned
    penalty: torch.Tensor  # (E, A) float32 reward penalty


def clock_index(layout: Layout, tod: torch.Tensor) -> torch.Tensor:
    """Flat index into the per-(agent, tick-of-day) tables."""
    return layout.agent_tod_base + tod.unsqueeze(1)


def work(state: WorldState, layout: Layout, clock: torch.Tensor) -> ShiftOutcome:
    """Update arrivals in place and return this tick's shift events, wages and penalties."""
    phase = layout.shift_phase[clock]
    in_shift = (phase == ShiftPhase.ON_TIME_WINDOW) | (phase == ShiftPhase.LATE_WINDOW)
    arrived = state.arrived * in_shift
    present = (state.pos == layout.job_cell) & state.alive
    arriving = in_shift & present & (arrived == 0)
    on_time = arriving & (phase == ShiftPhase.ON_TIME_WINDOW)
    late = arriving & ~on_time
    arrived = arrived + on_time + 2 * late
    state.arrived = arrived
    wage = (in_shift & present & (arrived > 0)) * layout.wage
    absent = layout.shift_last_tick[clock] & (arrived == 0) & state.alive
    event = on_time * ShiftEvent.ON_TIME + late * ShiftEvent.LATE + absent * ShiftEvent.ABSENT
    penalty = late * layout.late_penalty + absent * layout.absent_penalty
    return ShiftOutcome(phase, event, wage, penalty)
