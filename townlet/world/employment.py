"""Employment: daily shifts at a workplace; on time, late, absent; wages while present.

An agent on its workplace tile by the end of the grace period is on time; arriving later is
late; a shift that ends without arrival is absent (the events telemetry counts). The penalties
fall when the agent can still act on them: the late penalty at the grace deadline, the absence
penalty a little for each tick after the grace deadline that it is not at work, before
arriving or after leaving (before commit 537cce9, 2026-11-30, lateness was charged on
arrival, which punished arriving, and absence 70 ticks later, too late to teach anything;
charging only until arrival was measured to teach "arrive on time, then leave for the
cafe"). Wage is paid per tick present during the shift after arriving, so a late worker earns
less.

Coworkers (agents with the same workplace) stand in for each other: at the grace deadline an
on-time coworker at work covers a late colleague (the late penalty is cut by
`social.help_discount`, the helper earns `social.help_reward` and the two grow familiar), and on
the last tick of a shift a coworker who worked it takes over an absent colleague's shift
(`social.takeover_wage` more money). One helper per colleague: the first eligible in agent order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet.config.schema import SocialConfig
from townlet.util.event_codes import ShiftEvent
from townlet.world.layout import Layout
from townlet.world.state import WorldState


@dataclass
class ShiftOutcome:
    """What the employment phase produced; wage, late and absent are None in a tick in which
    no shift ran in any env."""

    event: torch.Tensor  # (E, A) int64 ShiftEvent
    wage: torch.Tensor | None  # (E, A) float32 money earned (a takeover's included)
    late: torch.Tensor | None  # (E, A) float32 late penalty charged this tick (after any help)
    absent: torch.Tensor | None  # (E, A) float32 absence penalty charged this tick
    helped: torch.Tensor | None = None  # (E, A) bool: a coworker covered this lateness
    help_bonus: torch.Tensor | None = None  # (E, A) float32 reward for covering
    took_over: torch.Tensor | None = None  # (E, A) int64 colleagues' shifts taken over


def clock_index(layout: Layout, tod: torch.Tensor) -> torch.Tensor:
    """Flat index into the per-(agent, tick-of-day) tables."""
    return layout.agent_tod_base + tod.unsqueeze(1)


def work(
    state: WorldState,
    layout: Layout,
    clock: torch.Tensor,
    all_alive: bool = False,
    social: SocialConfig | None = None,
    works: torch.Tensor | None = None,
) -> ShiftOutcome:
    """Update arrivals in place and return this tick's shift events, wages and penalties.
    `works` (E, A) marks whose job runs today (None: everyone's); the others are off."""
    in_shift = torch.take(layout.shift_in_progress, clock)
    if works is not None:
        in_shift = in_shift & works
    arrived = torch.where(in_shift, state.arrived, 0)
    present = state.pos == layout.job_cell
    if not all_alive:
        present &= state.alive
    arriving = present & in_shift & (arrived == 0)
    arrival = torch.where(arriving, torch.take(layout.shift_arrival_kind, clock), 0)
    arrived = arrived + arrival
    state.arrived = arrived
    wage = torch.where(present & (arrived > 0), layout.wage, 0.0)
    absent = torch.take(layout.shift_last_tick, clock) & (arrived == 0)
    if not all_alive:
        absent &= state.alive
    late_charge = torch.take(layout.late_charge, clock)
    absence_charge = torch.take(layout.absence_charge, clock)
    if works is not None:
        absent &= works
        late_charge, absence_charge = late_charge * works, absence_charge * works
    event = torch.where(absent, ShiftEvent.ABSENT, arrival)
    late = torch.where(arrived != ShiftEvent.ON_TIME, late_charge, 0.0)
    absence = torch.where(present, 0.0, absence_charge)
    if not all_alive:
        late, absence = late * state.alive, absence * state.alive
    outcome = ShiftOutcome(event, wage, late, absence)
    if social is not None:  # the world passes it only where coworkers exist
        _stand_in(state, layout, social, outcome, present, absent)
    return outcome


def _stand_in(
    state: WorldState,
    layout: Layout,
    social: SocialConfig,
    shift: ShiftOutcome,
    present: torch.Tensor,
    absent: torch.Tensor,
) -> None:
    """Late help and shift takeovers between coworkers, in place on `shift` and familiarity."""
    late = shift.late > 0
    if bool(late.any()):
        on_time = present & (state.arrived == ShiftEvent.ON_TIME)
        helpers = layout.coworkers & on_time.unsqueeze(1)  # (E, late worker, coworker)
        helped = late & helpers.any(-1)
        pair = _first(helpers) & helped.unsqueeze(-1)
        shift.late = torch.where(helped, shift.late * (1.0 - social.help_discount), shift.late)
        shift.helped, shift.help_bonus = helped, social.help_reward * pair.sum(1)
        closer = social.help_familiarity_gain * (pair | pair.transpose(1, 2))
        state.familiarity = (state.familiarity + closer).clamp_(max=1.0)
    if bool(absent.any()):
        worked = present & (state.arrived > 0)
        takers = layout.coworkers & worked.unsqueeze(1)  # (E, absent worker, coworker)
        taken = absent & takers.any(-1)
        shift.took_over = (_first(takers) & taken.unsqueeze(-1)).sum(1)
        shift.wage = shift.wage + social.takeover_wage * shift.took_over


def _first(candidates: torch.Tensor) -> torch.Tensor:
    """(E, A, A) bool -> the first True of each row only (one-hot; all False rows stay so)."""
    first = candidates.float().argmax(-1)
    one_hot = torch.nn.functional.one_hot(first, candidates.shape[-1]).bool()
    return one_hot & candidates
