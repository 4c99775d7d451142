"""Reward per agent per tick.

reward = clip(survival + sum_m w_m * change_m + wage_weight * wage) - penalties - faint_penalty

Only the shaping terms are clipped; shift penalties and the terminal faint penalty are added
after clipping so no clip can hide them (the system we replace clipped a -1.0 faint penalty to
-0.2 and produced a constant reward).
"""

from __future__ import annotations

import torch

from townlet.config.schema import RewardConfig
from townlet.world.layout import Layout


def compute_reward(
    layout: Layout,
    config: RewardConfig,
    alive_before: torch.Tensor,
    meter_change: torch.Tensor,
    wage: torch.Tensor | None,
    penalty: torch.Tensor | None,
    fainted: torch.Tensor | None,
    all_alive_before: bool = False,
) -> torch.Tensor:
    """(E, A) reward; None arguments mean "nothing of that kind happened this tick"."""
    shaping = meter_change @ layout.need_weights + config.survival
    if wage is not None:
        shaping.add_(wage, alpha=config.wage_weight)
    reward = shaping.clamp_(config.clip_min, config.clip_max)
    if not all_alive_before:  # the already fainted earn nothing
        reward = reward * alive_before
    if penalty is not None:
        reward -= penalty
    if fainted is not None:
        reward = reward - config.faint_penalty * fainted
    return reward
