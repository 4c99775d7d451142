"""Run one scripted episode and keep every per-tick tensor a replay sample or metric needs.

Observation t is the one action t was chosen from: the trace stores the observation *before*
each step next to the action taken from it and the reward that followed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet.recording.frame import frame_of, outcome_of
from townlet.recording.recorder import EpisodeRecorder
from townlet.world import World


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
    started: torch.Tensor  # (T, A) int64
    completed: torch.Tensor  # (T, A) int64
    contention: torch.Tensor  # (T, A) bool
    intensity: torch.Tensor  # (T, A) float32
    shift_event: torch.Tensor  # (T, A) int64
    wage: torch.Tensor  # (T, A) float32
    shift_penalty: torch.Tensor  # (T, A) float32 late and absence penalties charged
    rivalry_max: torch.Tensor  # (T, A) float32 after the step
    chat: torch.Tensor  # (T, A) int64 ChatEvent of the chat the agent started
    chat_quality: torch.Tensor  # (T, A) float32 (0 where none)
    helped: torch.Tensor  # (T, A) bool: a coworker covered the agent's lateness
    took_over: torch.Tensor  # (T, A) int64 colleagues' shifts taken over
    help_reward: torch.Tensor  # (T, A) float32 reward for covering a late coworker
    familiarity_max: torch.Tensor  # (T, A) float32 strongest familiarity after the step
    rent: torch.Tensor  # (T, A) int64 RentEvent of the weekly rent (0 where it was not due)
    works: torch.Tensor  # (T, A) bool: the agent's job ran on the tick's day
    meters: torch.Tensor  # (T + 1, A, M) float32, before each step and after the last
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
        rows["started"].append(events.started[0])
        rows["completed"].append(events.completed[0])
        rows["contention"].append(events.contention[0])
        rows["intensity"].append(events.contention_intensity[0])
        rows["shift_event"].append(events.shift_event[0])
        rows["wage"].append(events.wage[0])
        rows["shift_penalty"].append(-(result.terms["late"][0] + result.terms["absent"][0]))
        rows["rivalry_max"].append(world.state.rivalry[0].amax(-1))
        rows["chat"].append(events.chat[0])
        rows["chat_quality"].append(events.chat_quality[0])
        rows["helped"].append(events.helped[0])
        rows["took_over"].append(events.took_over[0])
        rows["help_reward"].append(result.terms["help"][0])
        rows["familiarity_max"].append(world.state.familiarity[0].amax(-1))
        rows["rent"].append(events.rent[0])
        rows["meters"].append(world.state.meters[0].clone())
        obs = result.obs
        if bool(result.env_done[0]):
            break
    final_value = behaviour.value(obs)
    if final_value is not None:
        rows["values"].append(final_value)
    return EpisodeTrace(
        **{name: torch.stack(series).cpu() if series else None for name, series in rows.items()}
    )
