"""A PettingZoo `ParallelEnv` over one town (E=1), for users of the standard MARL API.

Observations are dicts: `map` (dense named channels, float32 C x V x V), `features` (float32),
and `action_mask` (int8, as PettingZoo's samplers expect). Fainted agents leave `agents`; the
episode ends for everyone at the scenario's tick limit.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from omegaconf import DictConfig
from pettingzoo import ParallelEnv

from townlet.config.schema import TownletConfig
from townlet.scenarios import build_world
from townlet.world import Action, Observation, World
from townlet.world.constants import NUM_ACTIONS


class TownParallelEnv(ParallelEnv):
    metadata = {"name": "townlet_town_v0", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(self, cfg: DictConfig | TownletConfig, render_mode: str | None = None) -> None:
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.world: World = build_world(cfg, num_envs=1)
        names = self.world.names
        self.possible_agents = list(names.agents)
        self.agents: list[str] = []
        layout = self.world.layout
        v = layout.window
        self._observation_space = spaces.Dict(
            {
                "map": spaces.Box(0.0, 1.0, (len(names.dense_channels), v, v), np.float32),
                "features": spaces.Box(
                    -1.0, float(max(layout.num_agents, 1)), (len(names.features),), np.float32
                ),
                "action_mask": spaces.Box(0, 1, (NUM_ACTIONS,), np.int8),
            }
        )
        self._action_space = spaces.Discrete(NUM_ACTIONS)
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}

    @functools.cache  # noqa: B019 - PettingZoo requires the same object back
    def observation_space(self, agent: str) -> spaces.Space:
        return self._observation_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return self._action_space

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, dict], dict[str, dict]]:
        obs = self.world.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._observations(obs), {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, int]):
        chosen = torch.full((1, len(self.possible_agents)), int(Action.WAIT), dtype=torch.int64)
        for agent, action in actions.items():
            if agent not in self._index:
                raise KeyError(f"unknown agent {agent!r}; agents: {self.possible_agents}")
            chosen[0, self._index[agent]] = int(action)
        result = self.world.step(chosen)
        live = list(self.agents)
        observations = self._observations(result.obs, live)
        rewards = {a: float(result.reward[0, self._index[a]]) for a in live}
        terminations = {a: bool(result.terminated[0, self._index[a]]) for a in live}
        truncations = {a: bool(result.truncated[0, self._index[a]]) for a in live}
        infos = {a: self._info(result, self._index[a]) for a in live}
        self.agents = [a for a in live if not (terminations[a] or truncations[a])]
        return observations, rewards, terminations, truncations, infos

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return render_ansi(self.world)

    def close(self) -> None:
        self.agents = []

    # ------------------------------------------------------------------ helpers
    def _observations(self, obs: Observation, agents: list[str] | None = None) -> dict[str, dict]:
        dense = self.world.dense_map(obs)[0].numpy()
        features = obs.features[0].numpy()
        masks = obs.action_mask[0].numpy().astype(np.int8)
        return {
            agent: {
                "map": dense[self._index[agent]],
                "features": features[self._index[agent]],
                "action_mask": masks[self._index[agent]],
            }
            for agent in (self.agents if agents is None else agents)
        }

    def _info(self, result, index: int) -> dict[str, Any]:
        types = self.world.names.affordance_types
        started, completed = (
            int(result.events.started[0, index]),
            int(result.events.completed[0, index]),
        )
        return {
            "started": types[started] if started >= 0 else None,
            "completed": types[completed] if completed >= 0 else None,
            "shift_event": int(result.events.shift_event[0, index]),
        }


def type_glyphs(types: tuple[str, ...]) -> dict[str, str]:
    """A distinct single character per affordance type, preferring letters of its name."""
    glyphs: dict[str, str] = {}
    taken = set("#.0123456789")
    for name in types:
        options = [c for c in name + name.lower() + name.upper() if c.isalpha()]
        glyph = next((c for c in options if c not in taken), None)
        if glyph is None:
            glyph = next(c for c in "abcdefghijklmnopqrstuvwxyz" if c not in taken)
        glyphs[name] = glyph
        taken.add(glyph)
    return glyphs


def render_ansi(world: World, env: int = 0) -> str:
    """A text picture: '#' wall, '.' floor, affordances by glyph, agents by index digit."""
    layout = world.layout
    glyphs = type_glyphs(layout.affordance_types)
    rows = [["." for _ in range(layout.width)] for _ in range(layout.height)]
    for x, y in layout.walls:
        rows[y][x] = "#"
    for type_index, (x, y) in zip(layout.inst_type.tolist(), layout.inst_xy, strict=True):
        rows[y][x] = glyphs[layout.affordance_types[type_index]]
    positions = world.positions()[env].tolist()
    for i, (x, y) in enumerate(positions):
        if bool(world.state.alive[env, i]):
            rows[y][x] = str(i % 10)
    tod = int(world.time_of_day()[env])
    clock = tod * 24 * 60 // layout.ticks_per_day
    header = f"tick {int(world.state.tick[env])}  {clock // 60:02d}:{clock % 60:02d}"
    used = sorted({layout.affordance_types[t] for t in layout.inst_type.tolist()})
    legend = "  ".join(f"{glyphs[t]}={t}" for t in used)
    return "\n".join([header, *("".join(row) for row in rows), legend])
