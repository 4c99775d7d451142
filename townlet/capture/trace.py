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
from townlet.world.events import AGENT, TICK_EVENTS


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
    """Env 0's declared tick events (`townlet.world.events.TICK_EVENTS`): (T, A) per agent,
    (T,) per env, "nothing" where the world left an event out."""
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
    events_rows: dict[str, list[torch.Tensor]] = {event.name: [] for event in TICK_EVENTS}
    del rows["events"]
    world.track_terms = True  # the penalties charged, by term
    obs = world.observe()
    rows["meters"].append(world.state.meters[0].clone())
    for _ in range(ticks):
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
        events = result.events
        rows["actions"].append(actions[0])
        rows["log_probs"].append(log_probs)
        rows["rewards"].append(result.reward[0])
        rows["terminated"].append(result.terminated[0])
        rows["truncated"].append(result.truncated[0])
        _keep_events(events_rows, events, world.layout.num_agents)
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
    return EpisodeTrace(
        **{name: torch.stack(series).cpu() if series else None for name, series in rows.items()},
        events={name: torch.stack(series).cpu() for name, series in events_rows.items()},
    )


def _keep_events(rows: dict[str, list[torch.Tensor]], events, agents: int) -> None:
    """Env 0's value of every declared event this tick ("nothing" where it was left out)."""
    device = events.completed.device
    for event in TICK_EVENTS:
        value = getattr(events, event.name)
        if value is None:
            shape = (agents,) if event.scope == AGENT else ()
            value = torch.full(shape, event.none, dtype=event.dtype, device=device)
        else:
            value = value[0]
        rows[event.name].append(value)
