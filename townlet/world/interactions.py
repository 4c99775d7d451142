"""Affordances and their FIFO queues: progress, completion, admission, queueing, contention.

With `interaction_effects: per_tick` an interaction pays its effects a share per tick (moving
off aborts it, keeping what it earned) and its cost on admission; before commit 537cce9
(2026-11-30) everything was paid on completion, so a 20-tick Bed was never completed by an
exploring agent and never learned.

Order within a tick: interactions in progress advance and may complete (freeing slots), then
candidates are admitted in ticket order — agents already queued first, then this tick's new
requesters in a seeded random order — up to the free slots (and the stock left). Requesters
that find no slot join the queue: a contention event whose intensity is their place in line,
which raises rivalry with every agent ahead of them (users and earlier queuers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet.config.schema import RivalryConfig
from townlet.world.constants import Action
from townlet.world.draws import uniform
from townlet.world.layout import Layout
from townlet.world.lookup import rows
from townlet.world.outages import closed_here
from townlet.world.state import WorldState


@dataclass
class InteractionOutcome:
    started: torch.Tensor  # (E, A) int64 type index or -1
    completed: torch.Tensor  # (E, A) int64 type index or -1
    meter_delta: torch.Tensor  # (E, A, M) effects and costs earned or paid this tick
    contention: torch.Tensor  # (E, A) bool
    intensity: torch.Tensor  # (E, A) float32
    nothing_to_use: torch.Tensor  # (E, A) bool: INTERACTed where nothing could be started


def can_start_here(state: WorldState, layout: Layout, tod_cells: torch.Tensor) -> torch.Tensor:
    """(E, A) bool: the agent's tile holds an interactable affordance, open now, that it can
    afford. The action mask and the admission rule both use this, so they cannot disagree.
    `tod_cells` is (E, 1): tick of day times the padded cell count (the table's row offset)."""
    ok = torch.take(layout.open_here, state.pos + tod_cells)
    if layout.random_outages:
        ok &= ~closed_here(state, layout)
    if layout.money_index >= 0:
        ok &= state.meters[..., layout.money_index] >= torch.take(layout.cost_here, state.pos)
    return ok


def interact(
    state: WorldState,
    layout: Layout,
    actions: torch.Tensor,
    tod_cells: torch.Tensor,
    rivalry: RivalryConfig,
) -> InteractionOutcome:
    """Advance all interactions and queues one tick, in place."""
    using = state.using
    busy = using >= 0
    state.progress += busy
    used_inst = using.clamp(min=0)
    done_now = busy & (state.progress >= torch.take(layout.inst_duration, used_inst))
    completed = torch.where(done_now, torch.take(layout.inst_type, used_inst), -1)
    if layout.effects_per_tick:
        meter_delta = rows(layout.inst_rate, used_inst) * busy.unsqueeze(-1)
    else:
        meter_delta = rows(layout.inst_delta, used_inst) * done_now.unsqueeze(-1)
    using = torch.where(done_now, -1, using)
    state.progress = torch.where(done_now, 0, state.progress)

    tile = torch.take(layout.tile_instance, state.pos)
    ok = can_start_here(state, layout, tod_cells) & state.alive
    wants = (actions == Action.INTERACT) & ok & (using < 0) & (state.queued < 0) & ~done_now
    is_candidate = ((state.queued >= 0) & ok) | wants
    cand = torch.where(is_candidate, tile, -1)

    ticket = _new_tickets(state, wants)

    same = (cand.unsqueeze(2) == cand.unsqueeze(1)) & is_candidate.unsqueeze(1)
    ahead = same & (ticket.unsqueeze(1) < ticket.unsqueeze(2))
    rank = ahead.sum(-1)

    n = layout.inst_cell.numel()
    occupancy = torch.zeros(using.shape[0], n + 1, dtype=torch.int64, device=using.device)
    occupancy.scatter_add_(1, using + 1, torch.ones_like(using))
    slots = torch.minimum(layout.inst_capacity - occupancy[:, 1:], state.stock)
    cand_inst = cand.clamp(min=0)
    slot_here = slots.gather(1, cand_inst)
    admitted = is_candidate & (rank < slot_here)
    joined = wants & ~admitted

    state.using = torch.where(admitted, cand, using)
    state.queued = torch.where(admitted, -1, torch.where(joined, cand, state.queued))
    state.ticket = ticket
    state.stock.scatter_add_(1, cand_inst, -admitted.long())
    if layout.effects_per_tick:  # the price is paid on starting, the effects while it lasts
        price = rows(layout.inst_start_delta, cand_inst)
        meter_delta = meter_delta + price * admitted.unsqueeze(-1)
    started = torch.where(admitted, torch.take(layout.inst_type, cand_inst), -1)
    intensity = (rank - slot_here.clamp(min=0) + 1).float() * joined

    if bool(joined.any()):
        users = state.using.unsqueeze(1) == cand.unsqueeze(2)
        rivals = (users | ahead) & joined.unsqueeze(2)
        raised = rivalry.gain * (rivals | rivals.transpose(1, 2))
        state.rivalry = (state.rivalry + raised).clamp_(max=1.0)
    nothing_to_use = (actions == Action.INTERACT) & ~ok
    return InteractionOutcome(started, completed, meter_delta, joined, intensity, nothing_to_use)


def _new_tickets(state: WorldState, wants: torch.Tensor) -> torch.Tensor:
    """(E, A) float64 queue tickets: the tick plus half a seeded draw for the agents that ask
    to use something now, the held ticket for the others."""
    tie_break = uniform(state.rng_key, state.tick, wants.shape[1])
    new_ticket = state.tick.unsqueeze(1).to(torch.float64) + 0.5 * tie_break
    return torch.where(wants, new_ticket, state.ticket)
