"""Populations: which agents the focal policy drives and what drives the others.

Background agents act from their own source (the scenario's script, a uniform random policy or
a frozen checkpoint of another run) inside the same batched world step; their actions replace
the focal policy's for their slots only, and they are never part of the learner's data.
"""

from __future__ import annotations

from pathlib import Path

import torch

from townlet.config.schema import PopulationConfig, TownletConfig
from townlet.policy.checkpoint import load_policy
from townlet.policy.choosers import (
    Chooser,
    PolicyChooser,
    RandomChooser,
    ScriptChooser,
    scripts_of,
)
from townlet.scenarios.controller import validate_scripts
from townlet.world import StepResult, World
from townlet.world.observations import Observation


def focal_agents(config: TownletConfig) -> torch.Tensor:
    """(A,) bool: True where the agent is focal (not named by a background slot)."""
    background = {agent for slot in config.population.background for agent in slot.agents}
    return torch.tensor([agent.id not in background for agent in config.scenario.agents])


def source_names(config: TownletConfig) -> list[str]:
    """Each agent's source, for captures, headers, the viewer and reports: `focal`,
    `scripted`, `random` or `checkpoint:<file name>`."""
    names = ["focal"] * len(config.scenario.agents)
    index = {agent.id: i for i, agent in enumerate(config.scenario.agents)}
    for slot in config.population.background:
        label = str(slot.source)
        if slot.checkpoint is not None:
            label = f"checkpoint:{Path(slot.checkpoint).name}"
        for agent in slot.agents:
            names[index[agent]] = label
    return names


class Background(Chooser):
    """Acts for the background agents of a world: `act` gives (E, A) actions whose focal
    columns are meaningless (the caller keeps its own there, see `choosers.mix`)."""

    def __init__(self, world: World, config: TownletConfig, seed: int) -> None:
        index = {agent.id: i for i, agent in enumerate(config.scenario.agents)}
        self.slots: list[tuple[torch.Tensor, Chooser]] = []
        for k, slot in enumerate(config.population.background):
            columns = torch.tensor([index[agent] for agent in slot.agents], device=world.device)
            self.slots.append((columns, _chooser(world, config, slot, seed + 104_729 * (k + 1))))

    def act(self, obs: Observation) -> torch.Tensor:
        mask = obs.action_mask
        actions = torch.zeros(mask.shape[:2], dtype=torch.int64, device=mask.device)
        for columns, chooser in self.slots:
            actions[:, columns] = chooser.act(obs).to(actions.device)[:, columns]
        return actions

    def observe(self, result: StepResult) -> None:
        for _, chooser in self.slots:
            chooser.observe(result)


def _chooser(world: World, config: TownletConfig, slot, seed: int) -> Chooser:
    if slot.source == "scripted":
        scripts = scripts_of(config)
        if scripts is None:
            raise ValueError(
                f"population: scenario {config.scenario.name} has agents without a script; "
                "a scripted background needs every agent's"
            )
        validate_scripts(world, scripts, config.scenario.name)
        return ScriptChooser(world, scripts, restart=True)
    if slot.source == "random":
        return RandomChooser(seed)
    net, _ = load_policy(Path(slot.checkpoint), world)
    return PolicyChooser(net, deterministic=True, seed=seed)


def describe(population: PopulationConfig) -> dict:
    """The population as plain data (telemetry, evaluation JSON, recording headers)."""
    return {
        "name": population.name,
        "background": [
            {"agents": list(s.agents), "source": str(s.source), "checkpoint": s.checkpoint}
            for s in population.background
        ],
    }
