"""Adapters over the batched world."""

from townlet.envs.pettingzoo_env import TownParallelEnv, render_ansi

__all__ = ["TownParallelEnv", "render_ansi"]
