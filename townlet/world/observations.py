"""Observations: an egocentric window of symbolic map codes plus a named feature vector.

The map is one uint8 code per cell (terrain * 4 + occupant, see `constants`), built once per
tick for every env and read for every agent with a single flat gather. Dense one-hot channels
are derived from codes only by consumers that need them (`dense_channels`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet.config.schema import WorldConfig
from townlet.world.calendar import CALENDAR_FEATURES, Calendar
from townlet.world.constants import (
    ARRIVAL_KINDS,
    MAX_CODE,
    NUM_ACTIONS,
    OCCUPANT_KINDS,
    OCCUPANT_OTHER,
    OCCUPANT_SELF,
    SHIFT_STATE_NAMES,
    TERRAIN_FIRST_AFFORDANCE,
    TERRAIN_FLOOR,
    TERRAIN_WALL,
    Action,
    ShiftPhase,
    ShiftState,
    dense_channel_names,
)
from townlet.world.interactions import can_start_here
from townlet.world.layout import Layout
from townlet.world.lookup import rows
from townlet.world.outages import out_now
from townlet.world.rivalry import rivalry_summary
from townlet.world.social import chat_partners, familiarity_in_view
from townlet.world.state import WorldState
from townlet.world.windows import WindowTables, draw_windows, pair_offsets

CLOCK_FEATURES: tuple[str, ...] = (
    "time_sin",
    "time_cos",
    "shift_starts_in",
    *(f"shift_{name}" for name in SHIFT_STATE_NAMES),
    "has_job",
)
# Then the place features of the agent's cell (`Layout.cell_feature_names`: position, at work,
# offsets and path distances to its workplace and bed, offsets to the nearest of each kind),
# then the shift slack, then the tail below, constant (1, 0, 0, ...) while nobody is engaged,
# fainted or rivalrous.
SHIFT_SLACK = "shift_slack"
SLACK_TICKS = 20.0
"""The shift slack: (ticks until the shift's last on-time tick - walking ticks to work) /
SLACK_TICKS, clipped to [-1, 1]; 1 once arrived or without a job. `shift_starts_in` is a
fraction of the day, so one tick moved it by 0.004 and the default run's policy left one tick
too late for a shift it could reach (one agent of four late every day, measured 2026-12-06)."""
STATUS_FEATURES: tuple[str, ...] = (
    "alive",
    "in_queue",
    "interacting",
    "interaction_progress",
    "rivalry_max",
    "rivalry_avoid_count",
    "familiarity_max",
)

# Shift state by (phase, arrived): the arrival only matters while the shift runs.
_SHIFT_BY_PHASE_ARRIVED = {
    ShiftPhase.BEFORE: (ShiftState.PRE_SHIFT,) * ARRIVAL_KINDS,
    ShiftPhase.ON_TIME_WINDOW: (ShiftState.PRE_SHIFT, ShiftState.ON_TIME, ShiftState.LATE),
    ShiftPhase.LATE_WINDOW: (ShiftState.ABSENT, ShiftState.ON_TIME, ShiftState.LATE),
    ShiftPhase.AFTER: (ShiftState.POST_SHIFT,) * ARRIVAL_KINDS,
    ShiftPhase.NO_JOB: (ShiftState.NO_JOB,) * ARRIVAL_KINDS,
}
# The status tail while nobody is engaged, fainted or rivalrous: alive, everything else 0.
_IDLE_STATUS = tuple(float(name == "alive") for name in STATUS_FEATURES)


@dataclass
class Observation:
    """Per-agent observations; every tensor has leading (E, A) dims."""

    map_codes: torch.Tensor  # (E, A, V, V) uint8
    features: torch.Tensor  # (E, A, F) float32
    action_mask: torch.Tensor  # (E, A, NUM_ACTIONS) bool


def shift_state_codes(phase: torch.Tensor, arrived: torch.Tensor) -> torch.Tensor:
    """ShiftState per agent from its shift phase and arrival (used by tests and consumers)."""
    table = torch.tensor(
        [s for p in sorted(_SHIFT_BY_PHASE_ARRIVED) for s in _SHIFT_BY_PHASE_ARRIVED[p]]
    )
    return table.to(phase.device)[phase * ARRIVAL_KINDS + arrived]


class ObservationBuilder:
    """Builds observations for a batched world; holds the small lookup tables it needs."""

    def __init__(
        self,
        layout: Layout,
        world: WorldConfig,
        device: torch.device,
        calendar: Calendar | None = None,
    ) -> None:
        self.layout = layout
        # a multi-day town's weekday, working days and rent (none in a one-day town)
        self.calendar = calendar if calendar is not None and calendar.feature_names else None
        self.rivalry_threshold = world.rivalry.avoid_threshold
        self.social_config = world.social
        outage_names = tuple(f"outage_{name}" for name in layout.utility_names)
        self.feature_names = (
            *layout.meter_names,
            *CLOCK_FEATURES,
            *outage_names,
            *layout.hours_names,
            *layout.cell_feature_names,
            *(self.calendar.feature_names if self.calendar is not None else ()),
            SHIFT_SLACK,
            *STATUS_FEATURES,
        )
        first = self.feature_names.index(outage_names[0]) if outage_names else 0
        self._outage_columns = slice(first, first + len(outage_names))
        self.channel_names = dense_channel_names(layout.affordance_types)
        self.windows = WindowTables(layout, device)
        phases, arrivals = len(ShiftPhase), ARRIVAL_KINDS
        states = shift_state_codes(
            torch.arange(phases).repeat_interleave(arrivals), torch.arange(arrivals).repeat(phases)
        )
        one_hot = torch.zeros(len(states), len(SHIFT_STATE_NAMES) + 1)
        for row, state in enumerate(states.tolist()):
            if state != ShiftState.NO_JOB:
                one_hot[row, state] = 1.0
                one_hot[row, -1] = 1.0  # has_job
        # One row per (agent, tick of day, arrived): clock features, the shift one-hot, outages.
        # Built on the CPU from the layout (which may live on another device), then moved.
        phase = layout.shift_phase.cpu()
        shift_rows = one_hot[(phase * arrivals).unsqueeze(1) + torch.arange(arrivals)]
        clock_rows = layout.clock_features.cpu().unsqueeze(1).expand(-1, arrivals, -1)
        outages = layout.outage_active.cpu().repeat(layout.num_agents, 1)  # (A * tpd, U)
        outage_rows = outages.unsqueeze(1).expand(-1, arrivals, -1)
        # Opening hours are posted: an agent may know whether the cafe is open without walking
        # there (without them the scratch policy waited at the closed cafe all night, measured
        # 2026-12-07).
        hours = layout.hours_open.cpu().repeat(layout.num_agents, 1)  # (A * tpd, H)
        hours_rows = hours.unsqueeze(1).expand(-1, arrivals, -1)
        width = len(CLOCK_FEATURES) + len(outage_names) + len(layout.hours_names)
        self._clock_shift = (
            torch.cat((clock_rows, shift_rows, outage_rows, hours_rows), dim=-1)
            .reshape(-1, width)
            .to(device)
        )
        self._social = layout.num_agents > 1
        self._idle_tail = torch.tensor(_IDLE_STATUS, device=device)
        self._zero = torch.zeros((), device=device)
        self._dense_table = self._build_dense_table().to(device)
        self._wait_only = torch.zeros(NUM_ACTIONS, dtype=torch.bool, device=device)
        self._wait_only[Action.WAIT] = True

    # ------------------------------------------------------------------ map codes
    def map_codes(
        self,
        state: WorldState,
        instance_state: torch.Tensor | None,
        all_alive: bool,
        offsets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(E, A, V, V) uint8 window codes around every agent (`offsets`: `pair_offsets`,
        computed here when there are several agents and the caller has none)."""
        e, a = state.pos.shape
        if a > 1 and offsets is None:
            offsets = pair_offsets(state, self.windows.origin)
        codes = draw_windows(self.windows, self.layout, state, instance_state, offsets, all_alive)
        v = self.layout.window
        return codes.view(e, a, v, v)

    @staticmethod
    def instance_state(state: WorldState, num_instances: int) -> torch.Tensor:
        """(E, N) uint8: 0 idle, 1 occupied, 2 someone queued."""
        e = state.pos.shape[0]
        flags = torch.zeros(e, num_instances + 1, dtype=torch.uint8, device=state.pos.device)
        flags.scatter_(1, state.using + 1, 1)
        flags.scatter_(1, state.queued + 1, 2)
        return flags[:, 1:]

    # ------------------------------------------------------------------ features
    def features(
        self,
        state: WorldState,
        clock: torch.Tensor,
        engaged: bool,
        rivalry_active: bool,
        all_alive: bool,
        social_active: bool = False,
        offsets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(E, A, F) float32 named features; idle parts are filled without computing them
        (`offsets`: this state's `pair_offsets`, when the caller has them)."""
        layout = self.layout
        e, a = state.pos.shape
        parts = [
            state.meters,
            rows(self._clock_shift, clock * ARRIVAL_KINDS + state.arrived),
            rows(layout.cell_features, layout.agent_cell_base + state.pos),
            self.shift_slack(state, clock).unsqueeze(-1),
        ]
        if self.calendar is not None:  # a day off has no shift to be late for
            since_midnight = state.tick + state.start_offset + layout.start_tick
            calendar = self.calendar.features(since_midnight, state.meters, a)
            works_today = calendar[..., CALENDAR_FEATURES.index("works_today")] > 0
            parts[3] = torch.where(works_today.unsqueeze(-1), parts[3], 1.0)
            parts.insert(3, calendar)
        if all_alive and not engaged and not rivalry_active and not social_active:
            idle = torch.cat((*parts, self._idle_tail.expand(e, a, -1)), dim=-1)
            return self._random_outages(idle, state)
        zero = self._zero.expand(e, a)
        in_queue = interacting = progress = zero
        if engaged:
            interacting = state.using >= 0
            duration = torch.take(layout.inst_duration, state.using.clamp(min=0))
            in_queue = state.queued >= 0
            progress = torch.where(interacting, state.progress / duration, 0.0)
        riv_max = avoid = zero
        if rivalry_active:
            riv_max, avoid = rivalry_summary(state.rivalry, self.rivalry_threshold)
        familiarity = zero
        if social_active:
            familiarity = familiarity_in_view(state, layout, all_alive, offsets)
        # in STATUS_FEATURES' order; one stack (it promotes to float32) instead of a write per
        # column
        status = (state.alive, in_queue, interacting, progress, riv_max, avoid, familiarity)
        out = torch.cat((*parts, torch.stack(status, dim=-1)), dim=-1)
        return self._random_outages(out, state)

    def _random_outages(self, out: torch.Tensor, state: WorldState) -> torch.Tensor:
        """A utility out by a random outage raises its `outage_<utility>` flag in that env."""
        if self.layout.random_outages:
            columns = self._outage_columns
            random = out_now(state).unsqueeze(1).to(out.dtype)  # (E, 1, U)
            out[..., columns] = torch.maximum(out[..., columns], random)
        return out

    def shift_slack(self, state: WorldState, clock: torch.Tensor) -> torch.Tensor:
        """(E, A) the shift slack feature (see SLACK_TICKS)."""
        layout = self.layout
        walk = torch.take(layout.job_ticks, layout.agent_cell_base + state.pos)
        slack = (torch.take(layout.shift_deadline_in, clock) - walk) / SLACK_TICKS
        return torch.where(state.arrived == 0, slack.clamp_(-1.0, 1.0), 1.0)

    # ------------------------------------------------------------------ masks
    def action_mask(
        self,
        state: WorldState,
        tod_cells: torch.Tensor,
        engaged: bool,
        all_alive: bool,
        offsets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(E, A, NUM_ACTIONS) bool: blocked moves and pointless INTERACTs are masked
        (INTERACT is allowed where something can be used, or someone is near to chat with who
        has not chatted with this agent for the cooldown)."""
        layout = self.layout
        mask = torch.take(layout.walkable, state.pos.unsqueeze(-1) + layout.move_delta)
        here = can_start_here(state, layout, tod_cells)
        if engaged:
            here |= torch.maximum(state.using, state.queued) >= 0
        if self._social:
            here |= chat_partners(state, layout, self.social_config, all_alive, offsets).any(-1)
        mask[..., Action.INTERACT] = here
        if all_alive:
            return mask
        return torch.where(state.alive.unsqueeze(-1), mask, self._wait_only)

    # ------------------------------------------------------------------ dense form
    def _build_dense_table(self) -> torch.Tensor:
        """(MAX_CODE + 1, C) float32: the dense channels of every possible code."""
        types = self.layout.affordance_types
        table = torch.zeros(MAX_CODE + 1, len(self.channel_names))
        occupied, queued = len(types) + 1, len(types) + 2
        other, me = len(types) + 3, len(types) + 4
        for code in range(MAX_CODE + 1):
            terrain, occupant = divmod(code, OCCUPANT_KINDS)
            if terrain == TERRAIN_WALL:
                table[code, 0] = 1.0
            elif terrain >= TERRAIN_FIRST_AFFORDANCE:
                type_index, st = divmod(terrain - TERRAIN_FIRST_AFFORDANCE, 3)
                if type_index < len(types):
                    table[code, 1 + type_index] = 1.0
                    table[code, occupied] = float(st >= 1)
                    table[code, queued] = float(st == 2)
            table[code, other] = float(occupant in (OCCUPANT_OTHER, OCCUPANT_KINDS - 1))
            table[code, me] = float(occupant >= OCCUPANT_SELF)
        return table

    def dense_channels(self, map_codes: torch.Tensor) -> torch.Tensor:
        """(..., V, V) codes -> (..., C, V, V) float32 named one-hot channels."""
        dense = self._dense_table[map_codes.long()]
        return dense.movedim(-1, -3)

    def codes_from_dense(self, dense: torch.Tensor) -> torch.Tensor:
        """The inverse of `dense_channels`: (..., C, V, V) -> (..., V, V) uint8 codes.

        Exact for every code the world produces (used to train on captured samples)."""
        types = len(self.layout.affordance_types)
        dense = dense > 0.5
        wall, kinds = dense[..., 0, :, :], dense[..., 1 : 1 + types, :, :]
        occupied, queued = dense[..., 1 + types, :, :], dense[..., 2 + types, :, :]
        other, me = dense[..., 3 + types, :, :], dense[..., 4 + types, :, :]
        state = occupied.long() + queued.long()
        affordance = TERRAIN_FIRST_AFFORDANCE + 3 * kinds.long().argmax(-3) + state
        terrain = torch.where(kinds.any(-3), affordance, TERRAIN_FLOOR)
        terrain = torch.where(wall, TERRAIN_WALL, terrain)
        occupant = other.long() + OCCUPANT_SELF * me.long()
        return (terrain * OCCUPANT_KINDS + occupant).to(torch.uint8)
