"""Evaluation: the trained policy (deterministic and sampled) against a random policy and the
scripted controller, on fresh episodes of the scenario."""

from __future__ import annotations

import torch

from townlet.config.schema import TownletConfig
from townlet.policy.network import ActorCritic
from townlet.scenarios.controller import ScriptedController, validate_scripts
from townlet.world import World


def _episodes(config: TownletConfig, episodes: int, seed: int, choose) -> dict[str, float]:
    """Run `episodes` envs in parallel to their end; `choose(obs, generator)` gives actions."""
    world = World(config.world, config.scenario, num_envs=episodes, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    obs = world.observe()
    returns = torch.zeros(episodes, world.layout.num_agents)
    lengths = torch.zeros(episodes)
    finished = torch.zeros(episodes, dtype=torch.bool)
    fainted = torch.zeros(episodes, world.layout.num_agents, dtype=torch.bool)
    for _ in range(world.layout.episode_ticks):
        result = world.step(choose(obs, generator))
        live = ~finished
        returns[live] += result.reward[live]
        fainted |= result.terminated & live.unsqueeze(1)
        lengths[live] += 1
        finished |= result.env_done
        obs = result.obs
        if bool(finished.all()):
            break
    return {
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std(unbiased=False)),
        "length_mean": float(lengths.mean()),
        "survival_rate": float(1.0 - fainted.float().mean()),
        "episodes": episodes,
    }


def policy_chooser(net: ActorCritic, deterministic: bool):
    def choose(obs, generator):
        e, a = obs.features.shape[:2]
        with torch.inference_mode():
            action, *_ = net.get_action_and_value(
                obs.map_codes.reshape(e * a, *obs.map_codes.shape[2:]),
                obs.features.reshape(e * a, -1),
                obs.action_mask.reshape(e * a, -1),
                generator=generator,
                deterministic=deterministic,
            )
        return action.view(e, a)

    return choose


def random_choice(obs, generator):
    return (torch.rand(obs.action_mask.shape, generator=generator) * obs.action_mask).argmax(-1)


def scripted_return(config: TownletConfig, seed: int) -> dict[str, float] | None:
    """The scripted controller's episode (None when some agent has no script)."""
    scripts = [list(agent.script) for agent in config.scenario.agents]
    if not all(scripts):
        return None
    world = World(config.world, config.scenario, num_envs=1, seed=seed)
    validate_scripts(world, scripts, config.scenario.name)
    controller = ScriptedController(world, scripts)
    returns = torch.zeros(world.layout.num_agents)
    fainted = torch.zeros(world.layout.num_agents, dtype=torch.bool)
    length = 0
    for _ in range(world.layout.episode_ticks):
        result = world.step(controller.act())
        controller.update(result)
        returns += result.reward[0]
        fainted |= result.terminated[0]
        length += 1
        if bool(result.env_done[0]):
            break
    return {
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std(unbiased=False)),
        "length_mean": float(length),
        "survival_rate": float(1.0 - fainted.float().mean()),
        "episodes": 1,
    }


def evaluate(config: TownletConfig, net: ActorCritic, episodes: int, seed: int) -> dict:
    """Returns per agent-episode for the policy and the baselines."""
    was_training = net.training
    net.eval()
    try:
        report = {
            "policy_deterministic": _episodes(config, episodes, seed, policy_chooser(net, True)),
            "policy_sampled": _episodes(config, episodes, seed, policy_chooser(net, False)),
            "random": _episodes(config, episodes, seed, random_choice),
            "scripted": scripted_return(config, seed),
        }
    finally:
        net.train(was_training)
    return report
