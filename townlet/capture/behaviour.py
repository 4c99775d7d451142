"""Who acts during a capture: the scenario's script, or a trained policy from a checkpoint.

Both report what a replay sample needs from a behaviour policy: the log-probability of each
taken action, and (the policy only) its value estimates.
"""

from __future__ import annotations

from pathlib import Path

import torch

from townlet.policy.checkpoint import load_policy
from townlet.policy.choosers import mix
from townlet.scenarios.controller import ScriptedController
from townlet.world import Observation, StepResult, World

SCRIPT_LOG_PROBS = (
    "log-probability of the taken action under the behaviour policy; the scripted controller "
    "is deterministic, so every value is exactly log(1) = 0"
)
SCRIPT_VALUES = (
    "discounted return-to-go realised under the behaviour policy within the capture "
    "(Monte Carlo estimate); the last element bootstraps with 0"
)
POLICY_LOG_PROBS = "log-probability of the sampled action under the checkpoint's policy"
POLICY_VALUES = (
    "the checkpoint critic's value estimate of each observation; the last element is its "
    "estimate of the observation after the final step, or 0 when the agent fainted"
)


class ScriptedBehaviour:
    name = "scripted"
    log_probs_meaning = SCRIPT_LOG_PROBS
    values_meaning = SCRIPT_VALUES

    def __init__(self, world: World, scripts) -> None:
        self.controller = ScriptedController(world, scripts)

    def act(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        actions = self.controller.act()
        return actions, torch.zeros(actions.shape[1]), None

    def value(self, obs: Observation) -> torch.Tensor | None:
        return None

    def update(self, result: StepResult) -> None:
        self.controller.update(result)


class PolicyBehaviour:
    """Samples from a checkpoint's policy with a seeded generator (or takes its argmax)."""

    values_meaning = POLICY_VALUES

    def __init__(self, world: World, checkpoint: Path, seed: int, deterministic: bool = False):
        self.net, _ = load_policy(checkpoint, world)
        self.generator = torch.Generator(device=world.device).manual_seed(seed)
        self.deterministic = deterministic
        self.name = f"checkpoint:{checkpoint}"
        self.log_probs_meaning = (
            "log-probability of the argmax action under the checkpoint's policy"
            if deterministic
            else POLICY_LOG_PROBS
        )

    def _flat(self, obs: Observation):
        a = obs.features.shape[1]
        return obs.map_codes[0], obs.features[0], obs.action_mask[0], a

    def act(self, obs: Observation):
        codes, features, masks, a = self._flat(obs)
        with torch.no_grad():
            action, logprob, _, value, _ = self.net.get_action_and_value(
                codes, features, masks, generator=self.generator, deterministic=self.deterministic
            )
        return action.view(1, a), logprob, value

    def value(self, obs: Observation) -> torch.Tensor:
        codes, features, _, _ = self._flat(obs)
        with torch.no_grad():
            return self.net.get_value(codes, features)

    def update(self, result: StepResult) -> None:
        pass


class MixedBehaviour:
    """A behaviour for the focal agents beside a population's background (which acts from its
    own source); only the focal agents' samples are written, so the log-probabilities and
    values reported are the focal behaviour's own."""

    def __init__(self, inner, background, is_focal: torch.Tensor) -> None:
        self.inner, self.background, self.is_focal = inner, background, is_focal
        self.name = inner.name
        self.log_probs_meaning, self.values_meaning = inner.log_probs_meaning, inner.values_meaning

    def act(self, obs: Observation):
        actions, logprob, value = self.inner.act(obs)
        return mix(actions, self.background.act(obs), self.is_focal), logprob, value

    def value(self, obs: Observation) -> torch.Tensor | None:
        return self.inner.value(obs)

    def update(self, result: StepResult) -> None:
        self.inner.update(result)
        self.background.observe(result)
