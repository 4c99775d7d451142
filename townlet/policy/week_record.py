"""Per-weekday figures of a rollout in a multi-day town, for epoch records.

A week's episode spans about 26 PPO epochs, so its return arrives once in that many records; the
day it is living is visible every epoch. For each weekday the rollout touched, the record gets
the reward per agent-day and the share of that day's shifts begun on time, and in a town with
rent the rent paid and missed in the epoch. A weekday the rollout never reached has no key
(no figure that looks like data and is not)."""

from __future__ import annotations

import torch

from townlet.policy.rollout import Rollout
from townlet.util.event_codes import RentEvent
from townlet.util.weekdays import WEEKDAY_NAMES
from townlet.world import ShiftEvent


def weekday_key(day: str, figure: str) -> str:
    return f"weekday.{day}.{figure}"


def week_figures(
    buffers: Rollout, agents: int, ticks_per_day: int, focal: torch.Tensor, has_rent: bool
) -> dict[str, float]:
    """The rollout's per-weekday figures; `focal` (N,) marks the agents the learner plays."""
    events = buffers.events
    t, envs = events["weekday"].shape
    day = events["weekday"].unsqueeze(-1).expand(t, envs, agents).reshape(t, -1)  # (T, N)
    rows = focal.unsqueeze(0).expand_as(day)
    shifts = events["shift_event"]
    met = rows & (shifts != ShiftEvent.NONE)
    on_time = rows & (shifts == ShiftEvent.ON_TIME)
    figures: dict[str, float] = {}
    for index, name in enumerate(WEEKDAY_NAMES):
        today = day == index
        agent_ticks = int((today & rows).sum())
        if agent_ticks == 0:
            continue
        reward = float(buffers.rewards[today & rows].sum())
        figures[weekday_key(name, "reward_per_agent_day")] = reward * ticks_per_day / agent_ticks
        begun = int((today & met).sum())
        if begun:
            figures[weekday_key(name, "on_time_rate")] = int((today & on_time).sum()) / begun
    if has_rent:
        paid = rows & (events["rent"] == RentEvent.PAID)
        missed = rows & (events["rent"] == RentEvent.MISSED)
        figures["rent_paid_events"] = int(paid.sum())
        figures["rent_missed_events"] = int(missed.sum())
    return figures
