"""Run one scripted episode and keep every per-tick tensor a replay sample or metric needs.

Observation t is the one action t was chosen from: the trace stores the observation *before*
each step next to the action taken from it and the reward that followed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from townlet.recording.frame import frame_of, outcome_of
from townlet.recording.recorder import EpisodeRecorder
from townlet.world import World
from townlet.world.events import AGENT, TICK_EVENTS, allocate_events, store_tick


@dataclass
class EpisodeTrace:
    """Per-tick tensors for env 0: leading dims (T, A)."""

    map_codes: torch.Tensor  # (T, A, V, V) uint8
    features: torch.Tensor  # (T, A, F) float32
    action_masks: torch.Tensor  # (T, A, K) bool, what the behaviour could choose from
    actions: torch.Tensor  # (T, A) int64
    log_probs: torch.Tensor  # (T, A) float32 behaviour policy log-probability of the action
    rewards: torch.Tensor  # (T, A) float32
    terminated: torch.Tensor  # (T, A) bool
    truncated: torch.Tensor  # (T, A) bool
    shift_penalty: torch.Tensor  # (T, A) float32 late and absence penalties charged
    rivalry_max: torch.Tensor  # (T, A) float32 after the step
    help_reward: torch.Tensor  # (T, A) float32 reward for covering a late coworker
    familiarity_max: torch.Tensor  # (T, A) float32 strongest familiarity after the step
    works: torch.Tensor  # (T, A) bool: the agent's job ran on the tick's day
    meters: torch.Tensor  # (T + 1, A, M) float32, before each step and after the last
    events: dict[str, torch.Tensor] = field(default_factory=dict)
    """Env 0's declared tick events (`townlet.world.events.TICK_EVENTS`) in the rollout's
    buffer layout: (T, A) per agent, (T, 1) per env, "nothing" where the world left one out."""
    values: torch.Tensor | None = None  # (T + 1, A) the behaviour's value estimates, if it has any

    @property
    def ticks(self) -> int:
        return int(self.actions.shape[0])


def run_episode(
    world: World, behaviour, ticks: int, recorder: EpisodeRecorder | None = None
) -> EpisodeTrace:
    """Step env 0 for `ticks` ticks (or until every agent is down) under a behaviour; with a
    recorder, also tap every tick into it (the caller ends the episode)."""
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in EpisodeTrace.__dataclass_fields__}
    del rows["events"]
    agents = world.layout.num_agents
    events = allocate_events(ticks, world.num_envs, agents, world.device)
    world.track_terms = True  # the penalties charged, by term
    obs = world.observe()
    rows["meters"].append(world.state.meters[0].clone())
    for t in range(ticks):
        actions, log_probs, values = behaviour.act(obs)
        if values is not None:
            rows["values"].append(values)
        rows["map_codes"].append(obs.map_codes[0])
        rows["features"].append(obs.features[0])
        rows["action_masks"].append(obs.action_mask[0])
        rows["works"].append(world.works_today()[0])
        frame = None
        if recorder is not None:
            frame = frame_of(world, obs.features[0], actions[0], None, values)
            recorder.before_step()
        result = world.step(actions)
        if recorder is not None:
            recorder.tap(**frame, **outcome_of(result))
        behaviour.update(result)
        rows["actions"].append(actions[0])
        rows["log_probs"].append(log_probs)
        rows["rewards"].append(result.reward[0])
        rows["terminated"].append(result.terminated[0])
        rows["truncated"].append(result.truncated[0])
        store_tick(events, t, result.events)
        rows["shift_penalty"].append(-(result.terms["late"][0] + result.terms["absent"][0]))
        rows["rivalry_max"].append(world.state.rivalry[0].amax(-1))
        rows["help_reward"].append(result.terms["help"][0])
        rows["familiarity_max"].append(world.state.familiarity[0].amax(-1))
        rows["meters"].append(world.state.meters[0].clone())
        obs = result.obs
        if bool(result.env_done[0]):
            break
    final_value = behaviour.value(obs)
    if final_value is not None:
        rows["values"].append(final_value)
    steps = len(rows["actions"])
    env0 = {event.name: agents if event.scope == AGENT else 1 for event in TICK_EVENTS}
    return EpisodeTrace(
        **{name: torch.stack(series).cpu() if series else None for name, series in rows.items()},
        events={name: events[name][:steps, :width].cpu() for name, width in env0.items()},
    )
