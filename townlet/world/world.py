"""The batched town: E environments x A agents stepped together with tensor ops.

`World.step` reads as the list of phases it runs: move, interact (affordances and queues),
restock, work (employment), needs, rivalry, reward, time, termination, auto-reset, observe.
Phases whose inputs are provably idle (nobody interacting or queued, no jobs, unlimited stock)
are skipped; at E=1 the cost of a step is the number of tensor operations, not their size.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

from townlet.config.schema import ScenarioConfig, WorldConfig
from townlet.util.event_codes import ChatEvent
from townlet.util.phases import PhaseClock
from townlet.world.calendar import Calendar, Today
from townlet.world.constants import (
    ACTION_NAMES,
    OCCUPANT_NAMES,
    SHIFT_STATE_NAMES,
    Action,
)
from townlet.world.employment import ShiftOutcome, clock_index, work
from townlet.world.events import StepEvents
from townlet.world.fast_path import FastPath, FastPathError
from townlet.world.interactions import interact
from townlet.world.layout import UNLIMITED_STOCK, Layout, compile_layout, hour_to_tick
from townlet.world.lookup import rows
from townlet.world.movement import leave_on_move, move
from townlet.world.needs import update_meters
from townlet.world.observations import Observation, ObservationBuilder
from townlet.world.outages import draw_outages, out_now
from townlet.world.rewards import TickOutcome, compute_reward, reward_terms
from townlet.world.rivalry import decay_rivalry
from townlet.world.social import chats, decay_familiarity, share_meals
from townlet.world.state import WorldState
from townlet.world.tunables import Tunables
from townlet.world.windows import pair_offsets


@dataclass(frozen=True)
class WorldNames:
    """Every name exported with the tensors, so artifacts are readable without the config."""

    meters: tuple[str, ...]
    actions: tuple[str, ...]
    affordance_types: tuple[str, ...]
    instances: tuple[str, ...]
    agents: tuple[str, ...]
    terrain_codes: tuple[str, ...]
    occupant_codes: tuple[str, ...]
    dense_channels: tuple[str, ...]
    features: tuple[str, ...]
    shift_states: tuple[str, ...]

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in dataclasses.asdict(self).items()}


@dataclass
class StepResult:
    """What one tick produced. With auto-reset, `obs` already belongs to the new episode."""

    obs: Observation
    reward: torch.Tensor  # (E, A) float32
    terminated: torch.Tensor  # (E, A) bool: fainted this tick
    truncated: torch.Tensor  # (E, A) bool: still standing when the tick limit hit
    env_done: torch.Tensor  # (E,) bool
    env_terminated: torch.Tensor  # (E,) bool: every agent fainted
    events: StepEvents
    episode_return: torch.Tensor  # (E, A) returns so far (final ones where env_done)
    episode_length: torch.Tensor  # (E,) ticks so far (final ones where env_done)
    terms: dict[str, torch.Tensor] | None = None  # (E, A) reward by term (track_terms only)
    final_obs: Observation | None = None  # before auto-reset, when some env ended (see World)


@dataclass
class _Used:
    """What the use-and-chat phase of a tick produced."""

    engaged: bool  # someone was using, queued or interacting
    started: torch.Tensor
    completed: torch.Tensor
    contention: torch.Tensor
    intensity: torch.Tensor
    meter_delta: torch.Tensor | None  # (E, A, M) what completions and chats paid; None: nothing
    chat: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (ChatEvent, quality, partner)


@dataclass
class _Needs:
    """What the needs phase produced: meter changes, faints, the wage after fatigue, rent."""

    meter_change: torch.Tensor
    fainted: torch.Tensor
    any_faint: bool
    wage: torch.Tensor | None
    rent_event: torch.Tensor
    rent_charge: torch.Tensor | None
    all_alive_before: bool


@dataclass
class _End:
    """The tick's end: its reward with the end-aware shaping, who ended, the returns."""

    reward: torch.Tensor
    env_done: torch.Tensor
    env_terminated: torch.Tensor
    truncated: torch.Tensor
    episode_return: torch.Tensor
    episode_length: torch.Tensor
    final_obs: Observation | None


class World:
    """A batched town built from a world config and a scenario config."""

    def __init__(
        self,
        world: WorldConfig,
        scenario: ScenarioConfig,
        num_envs: int = 1,
        seed: int = 0,
        auto_reset: bool = False,
        device: str | torch.device | None = None,
        spread_starts: bool = False,
        track_terms: bool = False,
        check_fast_path: bool | None = None,
        keep_final_obs: bool = False,
    ) -> None:
        """`spread_starts` starts each episode at a random hour within the scenario's
        `start_hour_spread` (training); `track_terms` adds the reward split by term to every
        step result (evaluation); `check_fast_path` compares the step's cached facts with the
        state after every step (default: the TOWNLET_CHECK_FAST_PATH environment variable)."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.device = torch.device(device or world.device)
        self.config, self.scenario = world, scenario
        self.layout = _layout_to(compile_layout(world, scenario), self.device)
        self.num_envs = num_envs
        self.auto_reset = auto_reset
        self.track_terms = track_terms
        self.keep_final_obs = keep_final_obs
        self.spread_ticks = (
            hour_to_tick(scenario.start_hour_spread, world.ticks_per_day) if spread_starts else 0
        )
        # training's start-state spreads (see ScenarioConfig); evaluation starts fixed
        self.meter_spread = scenario.start_meter_spread if spread_starts else 0.0
        self.anywhere = scenario.start_anywhere if spread_starts else 0.0
        self.seated = scenario.start_seated if spread_starts else 0.0
        self._interaction_weight = world.reward.interaction_shaping
        energy = (
            self.layout.meter_names.index("energy") if "energy" in self.layout.meter_names else -1
        )
        self._rest = (world.reward.rest_shaping, world.reward.rest_below, energy)
        self._resting = world.reward.rest_shaping > 0 and energy >= 0
        self._commute = world.reward.commute > 0 and bool(self.layout.has_job.any())
        self.seed = seed
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        layout = self.layout
        self._fresh = WorldState.initial(layout, num_envs, self.device)
        self._spawn_cells = layout.walkable[: layout.sink_cell].nonzero().squeeze(1)
        self._seats = _long_interactions(layout)
        # the scenario's durations and rates, which a curriculum stage may scale (set_stage)
        self._base_duration = layout.inst_duration.clone()
        self._base_rate = layout.inst_rate.clone()
        self.tunables = Tunables.compile(world, layout.meter_names, self.device)
        if check_fast_path is None:
            check_fast_path = os.environ.get("TOWNLET_CHECK_FAST_PATH", "") not in ("", "0")
        self.check_fast_path = check_fast_path
        self.calendar = Calendar(
            world, scenario, [a.job for a in scenario.agents], layout.meter_names, self.device
        )
        self.observer = ObservationBuilder(layout, world, self.device, self.calendar)
        self.phases = PhaseClock(enabled=False)  # a trainer that profiles sets its own
        self._has_jobs = bool(layout.has_job.any())
        self._social = layout.num_agents > 1  # chats, shared meals: someone to meet
        self._offsets_of: torch.Tensor | None = None  # the positions `_offsets` describe
        self._offsets = torch.empty(0)
        self._has_instances = len(layout.instance_names) > 0
        self._coworkers = bool(layout.coworkers.any())
        self._outages = bool(layout.outage_starts.any())
        self._limited_stock = bool((layout.inst_stock < UNLIMITED_STOCK).any())
        e, a = num_envs, layout.num_agents
        self._none_int = torch.full((e, a), -1, dtype=torch.int64, device=self.device)
        self._zero_int = torch.zeros((e, a), dtype=torch.int64, device=self.device)
        self._no_shift = ShiftOutcome(self._zero_int, None, None, None)  # no shift ran anywhere
        self._zero_bool = torch.zeros((e, a), dtype=torch.bool, device=self.device)
        self._zero_float = torch.zeros((e, a), dtype=torch.float32, device=self.device)
        self._nothing_used = _Used(  # a tick in which nobody used, queued or interacted
            engaged=False,
            started=self._none_int,
            completed=self._none_int,
            contention=self._zero_bool,
            intensity=self._zero_float,
            meter_delta=None,
            chat=(self._zero_int, self._zero_float, self._none_int),
        )
        self._zero_env_bool = torch.zeros(e, dtype=torch.bool, device=self.device)
        self._zero_env_int = torch.zeros(e, dtype=torch.int64, device=self.device)
        self._today: Today | None = None
        self.names = WorldNames(
            meters=layout.meter_names,
            actions=ACTION_NAMES,
            affordance_types=layout.affordance_types,
            instances=layout.instance_names,
            agents=layout.agent_ids,
            terrain_codes=layout.terrain_names,
            occupant_codes=OCCUPANT_NAMES,
            dense_channels=self.observer.channel_names,
            features=self.observer.feature_names,
            shift_states=SHIFT_STATE_NAMES,
        )
        # Observation columns by name: readers index features with these, never with offsets.
        self.feature_index = {name: i for i, name in enumerate(self.names.features)}
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    def reset(self, seed: int | None = None) -> Observation:
        """Start every env afresh; a given seed re-seeds the world's generator."""
        if seed is not None:
            self.seed = seed
            self.generator.manual_seed(seed)
        self.state = self._fresh.clone()
        self._new_episodes(None)
        self.fast = FastPath(
            engaged=bool((self.state.using >= 0).any()),
            all_alive=bool(self._fresh.alive.all()),
            rivalry_active=bool(self.layout.initial_rivalry.any()),
            social_active=bool(self.layout.initial_familiarity.any()),
        )
        self._advance_clock()
        return self.observe()

    def time_of_day(self) -> torch.Tensor:
        """(E,) tick of day of the current state."""
        return self._tod

    def outages_now(self) -> torch.Tensor:
        """(E, U) bool: the utilities out this tick (`layout.utility_names`), on schedule or
        by a random outage."""
        scheduled = rows(self.layout.outage_active, self._tod) > 0
        return scheduled | out_now(self.state) if self.layout.random_outages else scheduled

    def weekday(self) -> torch.Tensor:
        """(E,) day of the week of the current state (0 = Monday)."""
        if self._today is not None:
            return self._today.weekday
        s = self.state
        return self.calendar.today(s.tick + s.start_offset + self.layout.start_tick).weekday

    def works_today(self) -> torch.Tensor:
        """(E, A) bool: whose job runs on the current state's day (jobless agents: True)."""
        return self.calendar.works_on[:, self.weekday()].T

    def observe(self) -> Observation:
        """Observations of the current state, for every agent of every env."""
        with torch.no_grad(), self.phases.time("observation"):
            s, engaged, all_alive = self.state, self.fast.engaged, self.fast.all_alive
            inst_state = (
                ObservationBuilder.instance_state(s, len(self.layout.instance_names))
                if engaged
                else None
            )
            observer = self.observer
            # where each agent stands relative to each other: the windows, the chat mask and
            # the familiarity in view all read it
            offsets = self._pair_offsets() if self._social else None
            return Observation(
                map_codes=observer.map_codes(s, inst_state, all_alive, offsets),
                features=observer.features(
                    s,
                    self._clock,
                    engaged,
                    self.fast.rivalry_active,
                    all_alive,
                    self.fast.social_active,
                    offsets,
                ),
                action_mask=observer.action_mask(s, self._tod_cells, engaged, all_alive, offsets),
            )

    def dense_map(self, obs: Observation) -> torch.Tensor:
        """(E, A, C, V, V) float32 named channels from the observation's codes."""
        return self.observer.dense_channels(obs.map_codes)

    # ------------------------------------------------------------------ step
    def step(self, actions: torch.Tensor) -> StepResult:
        """Advance every env one tick. `actions` is (E, A) int64 action ids."""
        with torch.no_grad():
            result = self._step(actions.to(self.device))
        if self.check_fast_path:
            problems = self.fast.problems(self.state)
            if self._offsets_of is self.state.pos and not torch.equal(
                self._offsets, pair_offsets(self.state, self.observer.windows.origin)
            ):
                problems.append("pair offsets: cached for positions changed in place")
            if problems:
                raise FastPathError("fast-path facts out of sync: " + "; ".join(problems))
        return result

    def _step(self, actions: torch.Tensor) -> StepResult:
        """One tick in phases: move, use and chat, work, needs, then reward and the end."""
        s, layout, fast = self.state, self.layout, self.fast
        tod, clock, today = self._tod, self._clock, self._today
        works = today.works if today is not None else None
        alive_before = s.alive
        if not fast.all_alive:
            actions = torch.where(alive_before, actions, Action.WAIT)
        shaping = self._interaction_weight > 0
        potential_before = self._interaction_potential() if shaping and fast.engaged else None
        rest_before = self._rest_potential() if self._resting else None

        # --- movement; leaving a tile leaves its queue or interaction
        previous_pos = s.pos
        move(s, layout, actions)
        if fast.engaged:
            leave_on_move(s, previous_pos)
        used = self._use_and_chat(actions)
        if self._limited_stock and int(tod.min()) == 0:
            s.stock = torch.where((tod == 0).unsqueeze(1), layout.inst_stock, s.stock)
        shift = self._employment(clock, works)
        needs = self._needs(used.meter_delta, shift.wage, today)

        # --- reward and time
        outcome = TickOutcome(
            alive_before=alive_before,
            meter_change=needs.meter_change,
            wage=needs.wage,
            late=shift.late,
            absent=shift.absent,
            commute=self._commute_shaping(clock, works) if self._commute else None,
            fainted=needs.fainted if needs.any_faint else None,
            help=shift.help_bonus,
            rent=needs.rent_charge,
        )
        config = self.config
        reward = compute_reward(self.tunables, config.reward, outcome, needs.all_alive_before)
        terms = reward_terms(self.tunables, config.reward, outcome) if self.track_terms else None
        s.tick += 1
        fast.oldest_tick += 1
        end = self._end(reward, terms, used.engaged, potential_before, rest_before)
        outage_starts = (
            torch.take(layout.outage_starts, tod) if self._outages else self._zero_env_int
        )
        if layout.random_outages:  # for the next tick, in the envs that go on
            outage_starts = outage_starts + draw_outages(s, layout, ~end.env_done)
        events = StepEvents(
            started=used.started,
            completed=used.completed,
            contention=used.contention,
            contention_intensity=used.intensity,
            shift_event=shift.event,
            fainted=needs.fainted,
            wage=self._zero_float if needs.wage is None else needs.wage,
            chat=used.chat[0],
            chat_quality=used.chat[1],
            chat_partner=used.chat[2],
            helped=self._zero_bool if shift.helped is None else shift.helped,
            took_over=self._zero_int if shift.took_over is None else shift.took_over,
            outage_starts=outage_starts,
            rent=needs.rent_event,
            weekday=today.weekday if today is not None else None,
        )
        return StepResult(
            obs=self.observe(),
            reward=end.reward,
            terminated=needs.fainted,
            truncated=end.truncated,
            env_done=end.env_done,
            env_terminated=end.env_terminated,
            events=events,
            episode_return=end.episode_return,
            episode_length=end.episode_length,
            terms=terms,
            final_obs=end.final_obs,
        )

    def _use_and_chat(self, actions: torch.Tensor) -> _Used:
        """Affordances, queues and chats (skipped while nobody is engaged or interacts)."""
        s, fast = self.state, self.fast
        engaged = fast.engaged or int(actions.max()) == Action.INTERACT
        if engaged and not self._has_instances:  # INTERACT can only mean a chat here
            completed = self._none_int
            meter_delta = torch.zeros_like(s.meters)
            nothing_to_use = (actions == Action.INTERACT) & s.alive
            chat = self._social_life(nothing_to_use, completed, meter_delta)
            return _Used(
                engaged=True,
                started=self._none_int,
                completed=completed,
                contention=self._zero_bool,
                intensity=self._zero_float,
                meter_delta=meter_delta,
                chat=chat,
            )
        if engaged:
            outcome = interact(s, self.layout, actions, self._tod_cells, self.config.rivalry)
            if not fast.rivalry_active:
                fast.rivalry_active = bool(outcome.contention.any())
            chat = self._social_life(outcome.nothing_to_use, outcome.completed, outcome.meter_delta)
            return _Used(
                engaged=True,
                started=outcome.started,
                completed=outcome.completed,
                contention=outcome.contention,
                intensity=outcome.intensity,
                meter_delta=outcome.meter_delta,
                chat=chat,
            )
        return self._nothing_used

    def _employment(self, clock: torch.Tensor, works: torch.Tensor | None) -> ShiftOutcome:
        """Shifts (skipped while no shift runs in any env; arrivals reset after a shift)."""
        s, layout, fast = self.state, self.layout, self.fast
        if self._has_jobs and bool(torch.take(layout.shift_active_at, self._tod).any()):
            social = self.config.social if self._coworkers else None
            shift = work(s, layout, clock, fast.all_alive, social, works)
            if shift.helped is not None and not fast.social_active:
                fast.social_active = bool(shift.helped.any())
            fast.arrivals_pending_reset = True
            return shift
        if fast.arrivals_pending_reset:
            s.arrived = torch.zeros_like(s.arrived)
            fast.arrivals_pending_reset = False
        return self._no_shift

    def _needs(
        self, meter_delta: torch.Tensor | None, wage: torch.Tensor | None, today: Today | None
    ) -> _Needs:
        """Meters, fainting, the rent and the relations' decay (fatigue first: it slows work
        and may fell the tired)."""
        s, fast, calendar = self.state, self.fast, self.calendar
        all_alive_before = fast.all_alive
        if calendar.has_fatigue:
            wage = self._fatigue(wage)
        meter_change, fainted = update_meters(
            s, self.layout, self.tunables.decay, meter_delta, wage, fast.all_alive
        )
        rent_event, rent_charge = self._zero_int, None
        if today is not None and today.rent_due is not None:
            rent_charge = self._zero_float
            if bool(today.rent_due.any()):
                money = s.meters[..., calendar.money].clone()
                rent_event, rent_charge = calendar.charge_rent(s.meters, s.alive, today.rent_due)
                meter_change[..., calendar.money] += s.meters[..., calendar.money] - money
        any_faint = fainted is not None and bool(fainted.any())
        if fainted is None:
            fainted = self._zero_bool
        if any_faint:
            fast.all_alive = False
            s.using = torch.where(s.alive, s.using, -1)
            s.queued = torch.where(s.alive, s.queued, -1)
        if fast.rivalry_active:
            decay_rivalry(s, self.config.rivalry)
        if fast.social_active:
            decay_familiarity(s, self.config.social)
        return _Needs(
            meter_change, fainted, any_faint, wage, rent_event, rent_charge, all_alive_before
        )

    def _end(
        self,
        reward: torch.Tensor,
        terms: dict[str, torch.Tensor] | None,
        engaged: bool,
        potential_before: torch.Tensor | None,
        rest_before: torch.Tensor | None,
    ) -> _End:
        """Which envs ended (all fainted, or the tick limit), the shaping that needs to know,
        the returns, and the new episodes of auto-reset."""
        s, layout, fast = self.state, self.layout, self.fast
        env_terminated = self._zero_env_bool if fast.all_alive else ~s.alive.any(-1)
        if fast.oldest_tick >= layout.episode_ticks:
            env_done = env_terminated | (s.tick >= layout.episode_ticks)
        else:
            env_done = env_terminated
        if fast.all_alive and fast.oldest_tick < layout.episode_ticks:
            truncated, any_done = self._zero_bool, False
        else:
            truncated = (env_done & ~env_terminated).unsqueeze(1) & s.alive
            any_done = bool(env_done.any())
        if self._interaction_weight > 0:  # after the end is known: the last potential is 0
            change = self._interaction_shaping(potential_before, engaged, env_done, any_done)
            reward = reward + change
            if terms is not None:
                terms["interaction"] = change
        if rest_before is not None:  # as above: an episode's last potential is 0
            after = self._rest_potential()
            if any_done:
                after = torch.where(env_done.unsqueeze(1), 0.0, after)
            reward = reward + (after - rest_before)
            if terms is not None:
                terms["rest"] = after - rest_before
        s.episode_return += reward
        episode_return, episode_length = s.episode_return, s.tick
        final_obs = None
        if self.keep_final_obs and self.auto_reset and any_done:
            if engaged:
                fast.engaged = bool((torch.maximum(s.using, s.queued) >= 0).any())
            self._advance_clock()
            final_obs = self.observe()
        if self.auto_reset and any_done:
            episode_return, episode_length = episode_return.clone(), episode_length.clone()
            s.reset_where(env_done, self._fresh)
            self._new_episodes(env_done)
            fast.all_alive = bool(s.alive.all())
            fast.oldest_tick = int(s.tick.max())
        if engaged or (self.seated > 0 and any_done):  # new episodes may start seated
            fast.engaged = bool((torch.maximum(s.using, s.queued) >= 0).any())
        self._advance_clock()
        return _End(
            reward, env_done, env_terminated, truncated, episode_return, episode_length, final_obs
        )

    def _social_life(
        self, nothing_to_use: torch.Tensor, completed: torch.Tensor, meter_delta: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Chats (INTERACT with nothing to use, next to someone) and shared meals; adds the
        chats' social gains to `meter_delta` in place. Returns the chats' (event, quality,
        partner)."""
        s, layout, fast, social = self.state, self.layout, self.fast, self.config.social
        if not self._social:
            return self._zero_int, self._zero_float, self._none_int
        wants = nothing_to_use & (torch.maximum(s.using, s.queued) < 0)
        event, quality, partner = self._zero_int, self._zero_float, self._none_int
        if bool(wants.any()):
            need = (
                1.0 - s.meters[..., layout.social_index]
                if layout.social_index >= 0
                else self._zero_float
            )
            offsets = self._pair_offsets()
            talk = chats(s, layout, social, wants, need, offsets, fast.all_alive)
            event, quality, partner = talk.event, talk.quality, talk.partner
            if layout.social_index >= 0:
                meter_delta[..., layout.social_index] += talk.social_gain
            fast.social_active = fast.social_active or bool((event == ChatEvent.SUCCESS).any())
            fast.rivalry_active = fast.rivalry_active or bool((event == ChatEvent.FAILURE).any())
        if bool(((completed >= 0).sum(-1) > 1).any()):
            share_meals(s, social, completed, layout.meal_type)
            fast.social_active = fast.social_active or bool((s.familiarity > 0).any())
        return event, quality, partner

    def _pair_offsets(self) -> torch.Tensor:
        """`pair_offsets` of the current positions; the tick's chats and the observation after
        them share one (positions only change by moving and by new episodes, each of which
        makes a new `pos` tensor)."""
        pos = self.state.pos
        if self._offsets_of is not pos:
            self._offsets = pair_offsets(self.state, self.observer.windows.origin)
            self._offsets_of = pos
        return self._offsets

    def shaping_potential(self) -> torch.Tensor:
        """(E, A) the potentials the reward's shaping terms pay differences of, summed (commute
        and interaction shaping; 0 without them): a learner that discounts can make the
        shaping gamma-consistent with it (`ppo.discount_shaping`)."""
        total = torch.zeros_like(self.state.episode_return)
        if self._commute:
            total = total + self.state.commute_potential
        if self._interaction_weight > 0 and self.fast.engaged:
            total = total + self._interaction_potential()
        if self._resting:
            total = total + self._rest_potential()
        return total

    def _rest_potential(self) -> torch.Tensor:
        """(E, A) -weight x path distance to the agent's bed x energy below the threshold (see
        RewardConfig.rest_shaping); 0 for the fainted."""
        s, layout = self.state, self.layout
        weight, below, energy = self._rest
        tired = (below - s.meters[..., energy]).clamp(min=0.0)
        distance = torch.take(layout.bed_distance, layout.agent_cell_base + s.pos)
        return -weight * distance * tired * s.alive

    def _interaction_potential(self) -> torch.Tensor:
        """(E, A) weight x the weighted need gain each agent's interaction has still to pay,
        each meter's share capped by the room left in it (see RewardConfig)."""
        s, layout = self.state, self.layout
        busy = s.using >= 0
        inst = s.using.clamp(min=0)
        if layout.effects_per_tick:
            left = (torch.take(layout.inst_duration, inst) - s.progress).clamp(min=0) * busy
            remaining = rows(layout.inst_rate, inst) * left.unsqueeze(-1)
        else:
            remaining = rows(layout.inst_delta, inst) * busy.unsqueeze(-1)
        capped = torch.minimum(torch.maximum(remaining, -s.meters), 1.0 - s.meters)
        return (capped @ self.tunables.need_weights) * self._interaction_weight

    def _interaction_shaping(
        self, before: torch.Tensor | None, engaged: bool, env_done: torch.Tensor, any_done: bool
    ) -> torch.Tensor:
        """(E, A) potential after minus before; 0 after the last tick of an episode."""
        if engaged:
            after = self._interaction_potential()
        else:
            after = torch.zeros_like(self.state.episode_return)
        if any_done:
            after = torch.where(env_done.unsqueeze(1), 0.0, after)
        return after if before is None else after - before

    def _fatigue(self, wage: torch.Tensor | None) -> torch.Tensor | None:
        """Tired agents earn `wage_factor` of their wage and may faint (energy to 0, which the
        meters' update turns into a faint)."""
        s, calendar = self.state, self.calendar
        tired = calendar.tired(s.meters, s.alive)
        if not bool(tired.any()):
            return wage
        if wage is not None:
            wage = torch.where(tired, wage * calendar.fatigue[1], wage)
        collapsed = calendar.collapse(tired, s.rng_key, s.tick)
        if bool(collapsed.any()):
            energy = s.meters[..., calendar.energy]
            s.meters[..., calendar.energy] = torch.where(collapsed, 0.0, energy)
        return wage

    def _commute_shaping(self, clock: torch.Tensor, works: torch.Tensor | None) -> torch.Tensor:
        """(E, A) change of the commute potential this tick (see RewardConfig.commute); no pull
        on a day off."""
        s, layout = self.state, self.layout
        open_now = torch.take(layout.commute_active, clock) & (s.arrived == 0) & s.alive
        if works is not None:
            open_now &= works
        distance = torch.take(layout.job_distance, layout.agent_cell_base + s.pos)
        potential = torch.where(open_now, distance * -self.config.reward.commute, 0.0)
        shaping = potential - s.commute_potential
        if not self.fast.all_alive:  # fainting is not a step toward work
            shaping = shaping * s.alive
        s.commute_potential = potential
        return shaping

    def _new_episodes(self, envs: torch.Tensor | None) -> None:
        """Draw each new episode's key (and start hour, if starts are spread) for the given envs
        (all when None). After this, an env's episode draws nothing from the shared generator,
        so its course depends only on its own state and actions: one env of a batch can be
        re-simulated alone (`townlet recordings verify`)."""
        s, e = self.state, self.num_envs
        keys = torch.randint(0, 2**62, (e,), generator=self.generator, device=self.device)
        s.rng_key = keys if envs is None else torch.where(envs, keys, s.rng_key)
        fresh = torch.ones(e, dtype=torch.bool, device=self.device) if envs is None else envs
        if self.spread_ticks > 0:
            drawn = torch.randint(
                0, self.spread_ticks, (e,), generator=self.generator, device=self.device
            )
            s.start_offset = torch.where(fresh, drawn, s.start_offset)
        if self.meter_spread > 0:
            self._spread_meters(fresh)
        if self.anywhere > 0:
            self._spread_positions(fresh)
        if self.seated > 0 and len(self._seats):
            self._seat_agents(fresh)

    def _spread_meters(self, envs: torch.Tensor) -> None:
        """New episodes' meters: uniform within `meter_spread` of the initial values."""
        s, spread = self.state, self.meter_spread
        noise = torch.rand(s.meters.shape, generator=self.generator, device=self.device)
        drawn = (self._fresh.meters + spread * (2.0 * noise - 1.0)).clamp_(0.1, 1.0)
        s.meters = torch.where(envs.view(-1, 1, 1), drawn, s.meters)

    def _spread_positions(self, envs: torch.Tensor) -> None:
        """New episodes' positions: a uniform walkable tile with chance `anywhere`."""
        s, cells = self.state, self._spawn_cells
        moved = torch.rand(s.pos.shape, generator=self.generator, device=self.device)
        picked = torch.randint(
            0, len(cells), s.pos.shape, generator=self.generator, device=self.device
        )
        elsewhere = (moved < self.anywhere) & envs.unsqueeze(1) & s.alive
        s.pos = torch.where(elsewhere, cells[picked], s.pos)

    def _seat_agents(self, envs: torch.Tensor) -> None:
        """Each agent of a new episode starts inside a long interaction with chance `seated`,
        agents of one env at distinct instances (so no capacity is exceeded: every eligible
        instance seats at least one)."""
        s, seats = self.state, self._seats
        e, a, n = self.num_envs, self.layout.num_agents, len(self._seats)
        g, device = self.generator, self.device
        seat_order = torch.rand(e, n, generator=g, device=device).argsort(-1)
        agent_order = torch.rand(e, a, generator=g, device=device).argsort(-1).argsort(-1)
        draw = torch.rand(e, a, generator=g, device=device)
        # the agent ranked r takes the r-th seat of the env's shuffled seats, if there is one
        rank = agent_order.clamp(max=n - 1)
        seat = seats[seat_order.gather(1, rank)]
        chosen = (agent_order < n) & (draw < self.seated) & envs.unsqueeze(1) & s.alive
        s.pos = torch.where(chosen, self.layout.inst_cell[seat], s.pos)
        s.using = torch.where(chosen, seat, s.using)
        s.progress = torch.where(chosen, 0, s.progress)

    def _advance_clock(self) -> None:
        layout = self.layout
        s = self.state
        if self.fast.oldest_tick <= layout.episode_ticks:
            self._tod = torch.take(layout.tod_of_tick, s.tick + s.start_offset)
        else:  # stepped past the limit without auto-reset
            self._tod = (s.tick + s.start_offset + layout.start_tick) % layout.ticks_per_day
        self._clock = clock_index(layout, self._tod)
        self._tod_cells = (self._tod * (layout.sink_cell + 1)).unsqueeze(1)
        if self.calendar.active:  # a town without days off, rent or weeks skips the work
            self._today = self.calendar.today(s.tick + s.start_offset + layout.start_tick)

    # ------------------------------------------------------------------ curriculum, resume
    def set_stage(
        self, decay_scale: float = 1.0, agents: int | None = None, duration_scale: float = 1.0
    ) -> None:
        """Make the town harder or easier from the next episode of each env on.

        `decay_scale` multiplies every meter's decay (immediately); `agents` keeps only the
        first N agents in episodes that start from now on (the rest sit out, never acting);
        `duration_scale` shortens every interaction longer than a tick, paying the same in all
        (immediately; one in progress ends when its progress reaches the new duration).
        """
        self.tunables.scale_decay(decay_scale)
        self._scale_durations(duration_scale)
        count = self.layout.num_agents if agents is None else agents
        if not 1 <= count <= self.layout.num_agents:
            raise ValueError(f"stage agents must be in 1..{self.layout.num_agents}, got {agents}")
        self._fresh.alive[:] = torch.arange(self.layout.num_agents, device=self.device) < count

    def _scale_durations(self, scale: float) -> None:
        layout = self.layout
        base = self._base_duration
        long = base > 1
        scaled = torch.where(long, (base.double() * scale).round().long().clamp(min=1), base)
        layout.inst_duration.copy_(scaled)
        ratio = (base.float() / scaled.float()).unsqueeze(-1)
        layout.inst_rate.copy_(self._base_rate * torch.where(long.unsqueeze(-1), ratio, 1.0))

    def begin_part_way(self, ticks: torch.Tensor) -> None:
        """Move each env's episode in progress on by `ticks` (E,) ticks, its state otherwise
        unchanged: the clock, the calendar and the time left follow the tick. A learner gives
        its envs different offsets once, so their episodes stay out of step from then on."""
        s = self.state
        if bool((ticks < 0).any()) or bool((ticks >= self.layout.episode_ticks).any()):
            raise ValueError(f"offsets must lie in [0, {self.layout.episode_ticks})")
        s.tick = s.tick + ticks.to(s.tick.device, s.tick.dtype)
        self.fast.oldest_tick = int(s.tick.max())
        self._advance_clock()

    def snapshot(self) -> dict:
        """Everything needed to continue exactly from here (state, generator, fast-path flags)."""
        return {
            "state": {
                f.name: getattr(self.state, f.name).clone() for f in dataclasses.fields(self.state)
            },
            "fresh_alive": self._fresh.alive.clone(),
            "decay": self.tunables.decay.clone(),
            "generator": self.generator.get_state(),
            "flags": self.fast.as_dict(),
        }

    def restore(self, snapshot: dict) -> None:
        device = self.device  # a checkpoint is read onto the CPU; the world may live elsewhere
        values = {k: v.to(device, copy=True) for k, v in snapshot["state"].items()}
        if "outage_left" not in values:  # a checkpoint from before random outages
            values["outage_left"] = torch.zeros_like(self._fresh.outage_left)
        self.generator.set_state(snapshot["generator"])
        if "rng_key" not in values:  # a checkpoint from before episodes had their own draws
            values["rng_key"] = torch.randint(
                0, 2**62, (self.num_envs,), generator=self.generator, device=device
            )
        self.state = WorldState(**values)
        self._fresh.alive.copy_(snapshot["fresh_alive"])
        self.tunables.decay = snapshot["decay"].to(device, copy=True)
        base = self.tunables.base_decay
        if bool((base > 0).any()):  # the stage's factor, for recordings made after a resume
            self.tunables.decay_scale = float((self.tunables.decay[base > 0] / base[base > 0])[0])
        self.fast = FastPath.from_dict(snapshot["flags"])
        self._advance_clock()

    # ------------------------------------------------------------------ convenience
    def positions(self) -> torch.Tensor:
        """(E, A, 2) grid (x, y) of every agent."""
        return self.layout.xy_of(self.state.pos)

    def fresh_alive(self) -> torch.Tensor:
        """(E, A) who takes part in each new episode (the curriculum leaves some out)."""
        return self._fresh.alive

    def active_agents(self) -> torch.Tensor:
        """(E,) how many agents take part in each env's episodes (the curriculum may seat
        some out); at least 1, so a per-agent mean never divides by zero."""
        return self._fresh.alive.sum(-1).clamp(min=1)

    def meter(self, name: str) -> torch.Tensor:
        """(E, A) values of one named meter."""
        return self.state.meters[..., self.layout.meter_names.index(name)]


def _layout_to(layout: Layout, device: torch.device) -> Layout:
    """The layout with every tensor on `device`."""
    if device.type == "cpu":
        return layout
    moved = {
        f.name: getattr(layout, f.name).to(device)
        for f in dataclasses.fields(layout)
        if isinstance(getattr(layout, f.name), torch.Tensor)
    }
    return dataclasses.replace(layout, **moved)


def _long_interactions(layout: Layout) -> torch.Tensor:
    """Instances an agent may start an episode inside (`start_seated`): interactable, open at
    every hour, unlimited, and longer than one tick."""
    tpd = layout.ticks_per_day
    open_all_day = layout.open_here.view(tpd, -1)[:, layout.inst_cell].all(0)
    eligible = (
        layout.inst_interactable
        & open_all_day
        & (layout.inst_stock >= UNLIMITED_STOCK)
        & (layout.inst_duration > 1)
    )
    return eligible.nonzero().squeeze(1)
