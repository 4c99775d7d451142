"""Where a PPO epoch's data comes from. Each source hands the trainer the same `EpochData`:
`RolloutSource` acts in the world with the current policy; `ReplaySource` streams captured
samples and scores them with the current critic. The trainer picks one per epoch
(`train.source`: rollout, replay, or mixed — alternating) and never looks inside."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from townlet.config.schema import TownletConfig
from townlet.policy.choosers import mix
from townlet.policy.epoch import EpochData
from townlet.policy.event_counts import meal_types
from townlet.policy.novelty import beta_at
from townlet.policy.population import Background
from townlet.policy.ppo import Batch
from townlet.policy.precision import precision_scope
from townlet.policy.replay import load_chunk
from townlet.policy.rollout import Rollout, compute_gae
from townlet.policy.telemetry_record import rollout_events
from townlet.policy.train_state import TrainState
from townlet.policy.week_record import week_figures
from townlet.recording.frame import frame_of, outcome_of
from townlet.util.phases import PhaseClock
from townlet.world.constants import NUM_ACTIONS
from townlet.world.events import store_tick


@dataclass
class _EndedEpisodes:
    """The figures of the episodes a rollout saw end (lists, one entry per env-episode)."""

    returns: list[float] = field(default_factory=list)
    lengths: list[float] = field(default_factory=list)
    survival: list[float] = field(default_factory=list)
    background: list[float] = field(default_factory=list)  # under a population


class RolloutSource:
    """Online data: `rollout_ticks` ticks in every env with the learner's policy (and a
    population's background agents beside it), recorded when the run records, turned into
    advantages (GAE) and the flat batch of the learner's valid transitions."""

    def __init__(
        self,
        config: TownletConfig,
        state: TrainState,
        phases: PhaseClock,
        is_focal: torch.Tensor,
        background: Background | None,
    ) -> None:
        self.config, self.state, self.phases = config, state, phases
        self.is_focal, self.background = is_focal, background
        world = state.world
        layout, names = world.layout, world.names
        self.e, self.a = world.num_envs, layout.num_agents
        self.n, self.window, self.num_features = self.e * self.a, layout.window, len(names.features)
        self.device = world.device
        self.meal_types = meal_types(layout)
        self.week = world.calendar.observed  # multi-day: per-weekday figures in each record
        self.focal_rows = is_focal.repeat(self.e).nonzero().squeeze(1)
        self.buffers = Rollout.allocate(
            config.ppo.rollout_ticks,
            self.n,
            self.window,
            self.num_features,
            NUM_ACTIONS,
            self.device,
            self.e,
        )
        self.obs = world.observe()
        self._novelty_beta = 0.0  # the exploration bonus's weight this epoch
        self._rent_before: torch.Tensor | None = None  # the rent potential before a tick

    def collect(self, progress: float) -> EpochData:
        """Act `rollout_ticks` ticks in every env; `progress` (0-1 through the PPO epochs)
        sets the exploration bonus's weight."""
        ppo = self.config.ppo
        self._novelty_beta = beta_at(ppo.novelty_bonus, ppo.novelty_until, progress)
        start = time.perf_counter()
        ended = _EndedEpisodes()
        # what only the advantages see (time-limit bootstrap, shaping, exploration bonus);
        # telemetry keeps the world's rewards
        learner_extra = torch.zeros_like(self.buffers.rewards)
        self._rent_before = self._rent_potential() if ppo.rent_shaping > 0 else None
        with torch.no_grad(), precision_scope(ppo.precision, self.device):
            for t in range(ppo.rollout_ticks):
                self._tick(t, learner_extra[t], ended)
            with self.phases.time("policy"):  # background rows' values are never used
                next_value = self.state.net.get_value(*self._inputs()[:2])
        acting_sec = time.perf_counter() - start
        with self.phases.time("gae"):
            batch, rewards, entropy = self._batch(learner_extra, next_value)
        return EpochData(
            mode="rollout",
            batch=batch,
            rewards=rewards,
            entropy=entropy,
            events=self._events(),
            agent_steps=ppo.rollout_ticks * self.n,
            acting_sec=acting_sec,
            new_cycle=True,
            finished_returns=ended.returns,
            finished_lengths=ended.lengths,
            survival=ended.survival,
            background_returns=ended.background,
        )

    def _inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The current observation as the network's (codes, features, masks) rows."""
        obs, n = self.obs, self.n
        return (
            obs.map_codes.reshape(n, self.window, self.window),
            obs.features.reshape(n, self.num_features),
            obs.action_mask.reshape(n, NUM_ACTIONS),
        )

    def _tick(self, t: int, extra: torch.Tensor, ended: _EndedEpisodes) -> None:
        """One tick: act, store the transition, step the world, store what it produced."""
        world, buffers, phases = self.state.world, self.buffers, self.phases
        recorder = self.state.recorder
        codes, features, masks = self._inputs()
        with phases.time("policy"):
            action, logprob, entropy, value, logits = self._act(codes, features, masks)
        if self.background is not None:
            with phases.time("background"):
                background = self.background.act(self.obs)
                action = mix(action.view(self.e, self.a), background, self.is_focal)
                action = action.reshape(self.n)
        with phases.time("buffers"):
            buffers.codes[t] = codes
            buffers.features[t] = features
            buffers.masks[t] = masks
            buffers.actions[t] = action
            buffers.logprobs[t] = logprob
            buffers.logits[t] = logits
            buffers.entropy[t] = entropy
            buffers.values[t] = value
            buffers.valid[t] = (world.state.alive & self.is_focal).reshape(self.n)
        if recorder is not None:  # env 0's rows, taken before the step moves the world
            with phases.time("recording"):
                a = self.a
                frame = frame_of(world, features[:a], action[:a], logits[:a], value[:a])
                recorder.before_step()
        with phases.time("world_step"):
            result = world.step(action.view(self.e, self.a))
        if self.background is not None:
            with phases.time("background"):
                self.background.observe(result)
        if recorder is not None:
            with phases.time("recording"):
                self._record_tick(frame, result)
        with phases.time("buffers"):
            buffers.rewards[t] = result.reward.reshape(self.n)
            self._add_learner_extra(extra, result)
            self._store_events(t, result)
            if bool(result.env_done.any()):
                self._episodes_ended(result, ended)
            self.obs = result.obs

    def _act(self, codes: torch.Tensor, features: torch.Tensor, masks: torch.Tensor):
        """The learner's (action, log-prob, entropy, value, logits) for every row; under a
        population only the focal rows are computed (background rows hold zeros and are
        replaced by the background's actions), so background agents cost only their own
        inference."""
        net, generator = self.state.net, self.state.act_generator
        if self.background is None:
            return net.get_action_and_value(codes, features, masks, generator=generator)
        rows = self.focal_rows
        outputs = net.get_action_and_value(
            codes[rows], features[rows], masks[rows], generator=generator
        )
        full = []
        for output in outputs:
            whole = output.new_zeros((len(codes), *output.shape[1:]))
            whole[rows] = output
            full.append(whole)
        return tuple(full)

    def _record_tick(self, frame: dict, result) -> None:
        """Env 0's tick to the recorder; its episode closed when it ended."""
        state = self.state
        state.recorder.tap(**frame, **outcome_of(result))
        if bool(result.env_done[0]):
            state.recorder.end_episode(
                int(state.world.state.episode[0]) - 1,
                state.curriculum.stage,
                result.episode_return[0],
            )

    def _add_learner_extra(self, extra: torch.Tensor, result) -> None:
        """Add to `extra` (n,), in place, what the advantages' reward gains beyond the world's
        this tick: the time-limit bootstrap, the exploration bonus and the gamma-consistent
        shaping terms."""
        ppo, state, n = self.config.ppo, self.state, self.n
        world = state.world
        if result.final_obs is not None:  # a day's end is a time limit, not a death
            extra += self._truncation_bootstrap(result)
        if state.novelty is not None and self._novelty_beta > 0:
            extra += state.novelty.bonus(
                world.state.pos, world.time_of_day(), world.state.alive, self._novelty_beta
            ).reshape(n)
        if ppo.rent_shaping > 0:  # gamma x potential' - potential, 0 at the end
            now = self._rent_potential()  # a new episode's where an env ended
            after = now * ~result.env_done.unsqueeze(1)
            extra += (ppo.gamma * after - self._rent_before).reshape(n)
            self._rent_before = now
        if ppo.discount_shaping:  # gamma x potential' - potential, potential(end) = 0
            after = world.shaping_potential() * ~result.env_done.unsqueeze(1)
            extra -= (1.0 - ppo.gamma) * after.reshape(n)

    def _store_events(self, t: int, result) -> None:
        """The tick's ends and world events into the rollout buffers (telemetry counts them)."""
        buffers, ev = self.buffers, result.events
        buffers.dones[t] = (result.terminated | result.truncated).reshape(self.n)
        store_tick(buffers.events, t, ev)
        self.state.episode_faints += ev.fainted.sum(-1)

    def _episodes_ended(self, result, ended: _EndedEpisodes) -> None:
        """The figures of the episodes that ended this tick (not those begun part way)."""
        state, world = self.state, self.state.world
        done = result.env_done
        whole = done & ~state.partial  # an episode begun part way is no figure
        active = world.active_agents().float()
        if self.background is None:
            per_capita = result.episode_return.sum(-1) / active
        else:  # the learner's figure is its own agents'
            per_capita = result.episode_return[:, self.is_focal].mean(-1)
            background = result.episode_return[:, ~self.is_focal].mean(-1)
            ended.background += background[whole].tolist()
        ended.returns += per_capita[whole].tolist()
        ended.lengths += result.episode_length[whole].tolist()
        ended.survival += (1.0 - state.episode_faints / active)[whole].tolist()
        state.episode_faints[done] = 0
        state.partial[done] = False

    def _batch(
        self, learner_extra: torch.Tensor, next_value: torch.Tensor
    ) -> tuple[Batch, torch.Tensor, torch.Tensor]:
        """Advantages (GAE) and the flat batch of valid transitions (b_ in CleanRL), with
        their world rewards and behaviour entropies for telemetry."""
        buffers, ppo = self.buffers, self.config.ppo
        advantages, returns = compute_gae(
            buffers.rewards + learner_extra,
            buffers.values,
            buffers.dones,
            next_value,
            ppo.gamma,
            ppo.gae_lambda,
        )
        index = buffers.valid.reshape(-1).nonzero().squeeze(1)

        def flat(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(-1, *x.shape[2:])[index]

        batch = Batch(
            codes=flat(buffers.codes),
            features=flat(buffers.features),
            masks=flat(buffers.masks),
            actions=flat(buffers.actions),
            logprobs=flat(buffers.logprobs),
            logits=flat(buffers.logits),
            values=flat(buffers.values),
            advantages=flat(advantages),
            returns=flat(returns),
        )
        return batch, flat(buffers.rewards), flat(buffers.entropy)

    def _events(self) -> dict[str, float]:
        """The epoch's world-event counters, and in a multi-day town its per-weekday figures."""
        world, buffers = self.state.world, self.buffers
        events = rollout_events(
            buffers.events, buffers.features, self.a, world.names, self.meal_types
        )
        if self.week:
            focal = self.is_focal.repeat(self.e)
            calendar = world.calendar
            events |= week_figures(
                buffers, self.a, calendar.ticks_per_day, focal, calendar.has_rent
            )
        return events

    def _rent_potential(self) -> torch.Tensor:
        """(E, A) -ppo.rent_shaping x the share of the rent each agent's money leaves short."""
        world = self.state.world
        shortfall = world.calendar.rent_shortfall(world.state.meters, world.state.alive)
        return -self.config.ppo.rent_shaping * shortfall

    def _truncation_bootstrap(self, result) -> torch.Tensor:
        """(n,) gamma x V(state at the tick limit) for truncated agents, 0 elsewhere."""
        final, n = result.final_obs, self.n
        value = self.state.net.get_value(
            final.map_codes.reshape(n, self.window, self.window),
            final.features.reshape(n, self.num_features),
        )
        return self.config.ppo.gamma * value * result.truncated.reshape(n)


class ReplaySource:
    """Offline data: the next chunk of captured samples (`train.capture_dir`), with
    advantages from the current critic and the captures' own figures as the baseline."""

    def __init__(self, config: TownletConfig, state: TrainState) -> None:
        self.config, self.state = config, state

    def collect(self, progress: float) -> EpochData:
        """`progress` is unused: a capture's data does not change with the schedule."""
        del progress
        start, ppo = time.perf_counter(), self.config.ppo
        refs, new_cycle = self.state.replay.next_chunk()
        chunk = load_chunk(refs, self.state.world, self.state.net, ppo.gamma, ppo.gae_lambda)
        return EpochData(
            mode="replay",
            batch=chunk.batch,
            rewards=chunk.rewards,
            entropy=chunk.entropy,
            events=chunk.events,
            agent_steps=len(chunk.batch),
            acting_sec=time.perf_counter() - start,
            new_cycle=new_cycle,
            baseline=chunk.baseline,
        )


def sources_for(
    config: TownletConfig,
    state: TrainState,
    phases: PhaseClock,
    is_focal: torch.Tensor,
    background: Background | None,
) -> dict[str, Any]:
    """The sources a run's `train.source` needs, by epoch mode (rollout, replay)."""
    sources: dict[str, Any] = {
        "rollout": RolloutSource(config, state, phases, is_focal, background)
    }
    if state.replay is not None:
        sources["replay"] = ReplaySource(config, state)
    return sources
