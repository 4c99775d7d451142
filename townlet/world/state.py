"""The world's dynamic state: a struct of tensors with leading (env, agent) dimensions."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from townlet.world.layout import Layout

NEVER = -(2**40)
"""`last_chat` of a pair that has not chatted this episode: long enough ago for any cooldown."""


@dataclass
class WorldState:
    """Everything that changes during an episode (E envs, A agents, N instances, M meters)."""

    tick: torch.Tensor  # (E,) int64 ticks since the episode started
    pos: torch.Tensor  # (E, A) int64 flat padded cell
    meters: torch.Tensor  # (E, A, M) float32 in [0, 1]
    alive: torch.Tensor  # (E, A) bool; False once fainted
    using: torch.Tensor  # (E, A) int64 instance being used, -1 none
    progress: torch.Tensor  # (E, A) int64 ticks into the current interaction
    queued: torch.Tensor  # (E, A) int64 instance queued for, -1 none
    ticket: torch.Tensor  # (E, A) float64 FIFO order: join tick + random tie-break in [0, 0.5)
    stock: torch.Tensor  # (E, N) int64 uses left today
    rivalry: torch.Tensor  # (E, A, A) float32 in [0, 1]
    familiarity: torch.Tensor  # (E, A, A) float32 in [0, 1], symmetric
    last_chat: torch.Tensor  # (E, A, A) int64 tick of the pair's last chat (NEVER: none), symmetric
    arrived: torch.Tensor  # (E, A) int64 this shift: 0 not yet, 1 on time, 2 late
    episode_return: torch.Tensor  # (E, A) float32
    episode: torch.Tensor  # (E,) int64 episodes started in this env
    start_offset: torch.Tensor  # (E,) int64 ticks after the scenario's start hour this began
    commute_potential: torch.Tensor  # (E, A) float32 shaping potential after the last tick
    rng_key: torch.Tensor  # (E,) int64 this episode's key for counter-based draws (see draws.py)
    outage_left: torch.Tensor  # (E, U) int64 ticks left of each utility's random outage

    @classmethod
    def initial(cls, layout: Layout, num_envs: int, device: torch.device) -> WorldState:
        e, a = num_envs, layout.num_agents
        n = len(layout.instance_names)

        def full(shape, value, dtype):
            return torch.full(shape, value, dtype=dtype, device=device)

        return cls(
            tick=full((e,), 0, torch.int64),
            pos=layout.start_cell.to(device).expand(e, a).clone(),
            meters=layout.initial_meters.to(device).expand(e, a, -1).clone(),
            alive=full((e, a), True, torch.bool),
            using=full((e, a), -1, torch.int64),
            progress=full((e, a), 0, torch.int64),
            queued=full((e, a), -1, torch.int64),
            ticket=full((e, a), 0.0, torch.float64),
            stock=layout.inst_stock.to(device).expand(e, n).clone(),
            rivalry=layout.initial_rivalry.to(device).expand(e, a, a).clone(),
            familiarity=layout.initial_familiarity.to(device).expand(e, a, a).clone(),
            last_chat=full((e, a, a), NEVER, torch.int64),
            arrived=full((e, a), 0, torch.int64),
            episode_return=full((e, a), 0.0, torch.float32),
            episode=full((e,), 0, torch.int64),
            start_offset=full((e,), 0, torch.int64),
            commute_potential=full((e, a), 0.0, torch.float32),
            rng_key=full((e,), 0, torch.int64),
            outage_left=full((e, len(layout.utility_names)), 0, torch.int64),
        )

    def reset_where(self, done: torch.Tensor, fresh: WorldState) -> None:
        """Replace the rows of finished envs with `fresh` rows (same shapes), in place."""
        for f in fields(self):
            if f.name == "episode":
                continue
            current, template = getattr(self, f.name), getattr(fresh, f.name)
            mask = done.view(-1, *([1] * (current.dim() - 1)))
            setattr(self, f.name, torch.where(mask, template, current))
        self.episode += done

    def clone(self) -> WorldState:
        return WorldState(**{f.name: getattr(self, f.name).clone() for f in fields(self)})
