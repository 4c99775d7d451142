"""Run one scripted episode and keep every per-tick tensor a replay sample or metric needs.

Observation t is the one action t was chosen from: the trace stores the observation *before*
each step next to the action taken from it and the reward that followed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet.scenarios.controller import ScriptedController
from townlet.world import World


@dataclass
class EpisodeTrace:
    """Per-tick tensors for env 0: leading dims (T, A)."""

    map_codes: torch.Tensor  # (T, A, V, V) uint8
    features: torch.Tensor  # (T, A, F) float32
    actions: torch.Tensor  # (T, A) int64
    log_probs: torch.Tensor  # (T, A) float32 behaviour policy log-probability of the action
    rewards: torch.Tensor  # (T, A) float32
    terminated: torch.Tensor  # (T, A) bool
    truncated: torch.Tensor  # (T, A) bool
    acted: torch.Tensor  # (T, A) bool: the agent was standing when it chose action t
    started: torch.Tensor  # (T, A) int64
    completed: torch.Tensor  # (T, A) int64
    contention: torch.Tensor  # (T, A) bool
    intensity: torch.Tensor  # (T, A) float32
    shift_event: torch.Tensor  # (T, A) int64
    wage: torch.Tensor  # (T, A) float32
    rivalry_max: torch.Tensor  # (T, A) float32 after the step
    meters: torch.Tensor  # (T + 1, A, M) float32, before each step and after the last

    @property
    def ticks(self) -> int:
        return int(self.actions.shape[0])


def run_scripted_episode(world: World, controller: ScriptedController, ticks: int) -> EpisodeTrace:
    """Step env 0 for `ticks` ticks (or until every agent is down) under the script."""
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in EpisodeTrace.__dataclass_fields__}
    obs = world.observe()
    rows["meters"].append(world.state.meters[0].clone())
    for _ in range(ticks):
        actions = controller.act()
        rows["map_codes"].append(obs.map_codes[0])
        rows["features"].append(obs.features[0])
        rows["acted"].append(world.state.alive[0].clone())
        result = world.step(actions)
        controller.update(result)
        events = result.events
        rows["actions"].append(actions[0])
        # The controller is deterministic: probability 1 on its action, log-probability 0.
        rows["log_probs"].append(torch.zeros(actions.shape[1]))
        rows["rewards"].append(result.reward[0])
        rows["terminated"].append(result.terminated[0])
        rows["truncated"].append(result.truncated[0])
        rows["started"].append(events.started[0])
        rows["completed"].append(events.completed[0])
        rows["contention"].append(events.contention[0])
        rows["intensity"].append(events.contention_intensity[0])
        rows["shift_event"].append(events.shift_event[0])
        rows["wage"].append(events.wage[0])
        rows["rivalry_max"].append(world.state.rivalry[0].amax(-1))
        rows["meters"].append(world.state.meters[0].clone())
        obs = result.obs
        if bool(result.env_done[0]):
            break
    return EpisodeTrace(**{name: torch.stack(values) for name, values in rows.items()})
