"""Choosers: what acts for the agents of a world in evaluation, demonstrations and
populations (the trained policy, the scenario's scripts, a uniform random policy, or a mix)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from townlet.config.schema import TownletConfig
from townlet.policy.network import ActorCritic, gumbel_max
from townlet.scenarios.controller import ScriptedController
from townlet.world import StepResult, World
from townlet.world.observations import Observation


class Chooser:
    """Acts for every agent of a world; `observe` sees each step's result."""

    def act(self, obs: Observation) -> torch.Tensor:
        raise NotImplementedError

    def observe(self, result: StepResult) -> None:
        """Most choosers are memoryless."""


class PolicyChooser(Chooser):
    """The policy, greedy or sampled. `groups`, (envs, seed) of the worlds whose envs share
    this batch in order (`side_by_side`): each group's rows sample from a generator of its own
    seed, drawing what they would draw alone, so a sampled evaluation played side by side is
    the one played group by group."""

    def __init__(
        self,
        net: ActorCritic,
        deterministic: bool,
        seed: int,
        groups: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        self.net, self.deterministic = net, deterministic
        device = next(net.parameters()).device
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.groups = [
            (envs, torch.Generator(device=device).manual_seed(s)) for envs, s in groups or ()
        ]

    def act(self, obs: Observation) -> torch.Tensor:
        e, a = obs.features.shape[:2]
        inputs = (
            obs.map_codes.reshape(e * a, *obs.map_codes.shape[2:]),
            obs.features.reshape(e * a, -1),
            obs.action_mask.reshape(e * a, -1),
        )
        with torch.inference_mode():
            if self.deterministic:
                return self.net.masked_logits(*inputs).argmax(-1).view(e, a)
            if self.groups:
                return self._sample_by_group(self.net.masked_logits(*inputs), a).view(e, a)
            action, *_ = self.net.get_action_and_value(*inputs, generator=self.generator)
        return action.view(e, a)

    def _sample_by_group(self, logits: torch.Tensor, agents: int) -> torch.Tensor:
        """As `ActorCritic.get_action_and_value` samples, each group's noise from its own
        generator."""
        noise = [
            torch.rand(envs * agents, logits.shape[1], generator=g, device=logits.device)
            for envs, g in self.groups
        ]
        return gumbel_max(logits, torch.cat(noise))


class RandomChooser(Chooser):
    """Uniform over the allowed actions."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def act(self, obs: Observation) -> torch.Tensor:
        noise = torch.rand(obs.action_mask.shape, generator=self.generator)
        return (noise * obs.action_mask.cpu()).argmax(-1)


class ScriptChooser(Chooser):
    """The scenario's scripts. With `restart`, an env whose episode ended starts its scripts
    again (a world that resets itself runs day after day)."""

    def __init__(
        self, world: World, scripts, anchored: bool = False, restart: bool = False
    ) -> None:
        self.controller = ScriptedController(world, scripts, anchored=anchored)
        self.restart = restart

    def act(self, obs: Observation) -> torch.Tensor:
        return self.controller.act()

    def observe(self, result: StepResult) -> None:
        self.controller.update(result)
        if self.restart and bool(result.env_done.any()):
            for env in result.env_done.nonzero().flatten().tolist():
                self.controller.restart(env)


def scripts_of(config: TownletConfig) -> list | None:
    """The scenario's scripts, or None when some agent has none."""
    scripts = [list(agent.script) for agent in config.scenario.agents]
    return scripts if all(scripts) else None


def mix(focal: torch.Tensor, background: torch.Tensor, is_focal: torch.Tensor) -> torch.Tensor:
    """(E, A) actions: the focal policy's where `is_focal` (A,), the background's elsewhere."""
    return torch.where(is_focal.to(focal.device), focal, background.to(focal.device))


@contextlib.contextmanager
def evaluating(net: ActorCritic) -> Iterator[ActorCritic]:
    """`net` in eval mode for the block, its training mode restored after."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


class MixedChooser(Chooser):
    """The focal chooser's actions for focal agents, the background's for the rest."""

    def __init__(self, focal: Chooser, background: Chooser, is_focal: torch.Tensor) -> None:
        self.focal, self.background, self.is_focal = focal, background, is_focal

    def act(self, obs: Observation) -> torch.Tensor:
        return mix(self.focal.act(obs), self.background.act(obs), self.is_focal)

    def observe(self, result: StepResult) -> None:
        self.focal.observe(result)
        self.background.observe(result)
