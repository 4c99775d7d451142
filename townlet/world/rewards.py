"""Reward per agent per tick, and the same reward split into named terms.

reward = clip(survival + sum_m w_m * change_m + wage_weight * wage)
         + commute shaping - late - absent - rent + help - faint_penalty * fainted

Only the first group is clipped; shift penalties, the commute shaping and the faint penalty are
added after clipping so no clip can hide them (the system we replace clipped a -1.0 faint
penalty to -0.2 and produced a constant reward). `reward_terms` returns every term separately
(with `clip` the amount the clip removed), summing exactly to the reward: evaluation reports
returns split this way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet.config.schema import RewardConfig
from townlet.world.tunables import Tunables


@dataclass
class TickOutcome:
    """What the reward reads from one tick; None = nothing of that kind happened."""

    alive_before: torch.Tensor  # (E, A) bool
    meter_change: torch.Tensor  # (E, A, M)
    wage: torch.Tensor | None = None
    late: torch.Tensor | None = None
    absent: torch.Tensor | None = None
    commute: torch.Tensor | None = None
    fainted: torch.Tensor | None = None
    help: torch.Tensor | None = None  # reward for covering a late coworker
    rent: torch.Tensor | None = None  # penalty for rent that could not be paid (None: no rent)


def compute_reward(
    tunables: Tunables, config: RewardConfig, tick: TickOutcome, all_alive_before: bool = False
) -> torch.Tensor:
    """(E, A) reward for one tick."""
    shaping = tick.meter_change @ tunables.need_weights + config.survival
    if tick.wage is not None:
        shaping.add_(tick.wage, alpha=config.wage_weight)
    reward = shaping.clamp_(config.clip_min, config.clip_max)
    if not all_alive_before:  # the already fainted earn nothing
        reward = reward * tick.alive_before
    for penalty in (tick.late, tick.absent, tick.rent):
        if penalty is not None:
            reward = reward - penalty
    if tick.commute is not None:
        reward = reward + tick.commute
    if tick.help is not None:
        reward = reward + tick.help
    if tick.fainted is not None:
        reward = reward - config.faint_penalty * tick.fainted
    return reward


def reward_terms(
    tunables: Tunables, config: RewardConfig, tick: TickOutcome
) -> dict[str, torch.Tensor]:
    """(E, A) per named term; the terms sum to `compute_reward` (up to float rounding)."""
    alive = tick.alive_before.float()
    zero = torch.zeros_like(alive)
    needs = tick.meter_change * tunables.need_weights
    wage = zero if tick.wage is None else tick.wage * config.wage_weight
    survival = torch.full_like(alive, config.survival)
    unclipped = needs.sum(-1) + survival + wage
    clip = unclipped.clamp(config.clip_min, config.clip_max) - unclipped
    terms = {"survival": survival * alive}
    for i, name in enumerate(tunables.meter_names):
        if float(tunables.need_weights[i]) != 0.0:
            terms[f"need.{name}"] = needs[..., i] * alive
    terms["wage"] = wage * alive
    terms["clip"] = clip * alive
    terms["commute"] = zero if tick.commute is None else tick.commute
    terms["late"] = zero if tick.late is None else -tick.late
    terms["absent"] = zero if tick.absent is None else -tick.absent
    terms["help"] = zero if tick.help is None else tick.help
    terms["faint"] = zero if tick.fainted is None else -config.faint_penalty * tick.fainted.float()
    if tick.rent is not None:  # a town with rent reports the term on every tick
        terms["rent"] = -tick.rent
    return terms
