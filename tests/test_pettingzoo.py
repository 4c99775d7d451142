"""The PettingZoo adapter passes PettingZoo's own API test and ends episodes honestly."""

from __future__ import annotations

from pettingzoo.test import parallel_api_test

from townlet.envs import TownParallelEnv
from townlet.scenarios import load_config


def test_parallel_api_test_passes():
    parallel_api_test(TownParallelEnv(load_config()), num_cycles=300)


def test_episode_runs_to_the_tick_limit_with_masked_random_actions():
    env = TownParallelEnv(load_config(["scenario.ticks=30"]), render_mode="ansi")
    observations, _ = env.reset(seed=1)
    assert set(observations) == set(env.possible_agents)
    first = observations["alice"]
    assert env.observation_space("alice").contains(first)
    steps = 0
    while env.agents:
        actions = {
            a: env.action_space(a).sample(mask=observations[a]["action_mask"]) for a in env.agents
        }
        observations, rewards, terminations, truncations, _ = env.step(actions)
        steps += 1
    assert steps == 30
    assert all(truncations.values()) and not any(terminations.values())
    picture = env.render()
    assert "tick 30" in picture and "B=Bed" in picture
