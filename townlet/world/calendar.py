"""The calendar of a multi-day town: the weekday of each env's current tick, who works today,
the weekly rent and what too little sleep carries over.

Every fact derives from the env's tick (its start hour and start offset included), so the
calendar adds no state: a checkpoint, a recording's start state and `recordings verify` need
nothing new. A one-day scenario whose jobs run on each day it reaches, without rent or fatigue,
builds an inactive calendar and its world steps exactly as before the calendar existed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from townlet.config.choices import WEEKDAYS
from townlet.config.schema import ScenarioConfig, WorldConfig
from townlet.util.event_codes import RentEvent
from townlet.world.draws import uniform
from townlet.world.layout import hour_to_tick

DAYS_A_WEEK = 7
FATIGUE_KEY = 0x7A1E_D5EE_9B1C_4F03
"""Salts the episode key for fatigue draws, so they are not the queue tie-break's draws."""
CALENDAR_FEATURES = ("weekday_sin", "weekday_cos", "works_today", "works_tomorrow")
RENT_FEATURES = ("rent_due_in", "rent_covered")


@dataclass
class Today:
    """The calendar's facts for the current tick of every env."""

    weekday: torch.Tensor  # (E,) int64, 0 = Monday
    works: torch.Tensor | None  # (E, A) bool: the agent's job runs today (None: everyone's does)
    rent_due: torch.Tensor | None  # (E,) bool: the rent falls due this tick (None: no rent)


class Calendar:
    """Compiled once per world from the world and scenario configs."""

    def __init__(
        self,
        world: WorldConfig,
        scenario: ScenarioConfig,
        job_of_agent: list[str | None],
        meter_names: tuple[str, ...],
        device: torch.device,
    ) -> None:
        tpd = world.ticks_per_day
        self.ticks_per_day, self.device = tpd, device
        self.start_weekday = WEEKDAYS.index(scenario.start_weekday)
        self.days = scenario.days
        works = torch.ones(len(job_of_agent), DAYS_A_WEEK, dtype=torch.bool)
        for agent, job in enumerate(job_of_agent):
            if job is not None:
                days = {WEEKDAYS.index(day) for day in world.jobs[job].days}
                works[agent] = torch.tensor([d in days for d in range(DAYS_A_WEEK)])
        self.works_on = works.to(device)  # (A, 7)
        # weekdays an episode can reach: spread starts may begin up to a day late
        start = hour_to_tick(scenario.start_hour, tpd) % tpd
        reach = math.ceil((start + scenario.ticks + 1) / tpd) + (
            1 if scenario.start_hour_spread > 0 else 0
        )
        reached = [(self.start_weekday + d) % DAYS_A_WEEK for d in range(reach)]
        self.days_off = not bool(works[:, reached].all())
        rent = world.rent
        self.rent_amount, self.rent_penalty = rent.amount, rent.penalty
        self.rent_tick = WEEKDAYS.index(rent.weekday) * tpd + hour_to_tick(rent.hour, tpd) % tpd
        self.money = meter_names.index("money") if "money" in meter_names else -1
        self.has_rent = rent.amount > 0 and self.money >= 0
        fatigue = world.fatigue
        self.energy = meter_names.index("energy") if "energy" in meter_names else -1
        self.fatigue = (fatigue.below, fatigue.wage_factor, fatigue.faint_chance)
        self.has_fatigue = fatigue.below > 0 and self.energy >= 0
        self.observed = scenario.days > 1
        self.active = self.observed or self.days_off or self.has_rent
        names = CALENDAR_FEATURES if self.observed else ()
        self.feature_names = names + (RENT_FEATURES if self.observed and self.has_rent else ())

    def week_tick(self, since_midnight: torch.Tensor) -> torch.Tensor:
        """(E,) tick of the week (0 = Monday 00:00) from ticks since the first day's midnight."""
        return (since_midnight + self.start_weekday * self.ticks_per_day) % (
            DAYS_A_WEEK * self.ticks_per_day
        )

    def today(self, since_midnight: torch.Tensor) -> Today:
        week_tick = self.week_tick(since_midnight)
        weekday = week_tick // self.ticks_per_day
        works = self.works_on[:, weekday].T if self.days_off else None
        rent_due = (week_tick == self.rent_tick) if self.has_rent else None
        return Today(weekday, works, rent_due)

    def features(
        self, since_midnight: torch.Tensor, meters: torch.Tensor, num_agents: int
    ) -> torch.Tensor:
        """(E, A, F) the calendar's observed features (see `feature_names`)."""
        week_tick = self.week_tick(since_midnight)
        weekday = week_tick // self.ticks_per_day
        angle = (week_tick.float() / (DAYS_A_WEEK * self.ticks_per_day)) * (2 * math.pi)
        e = since_midnight.shape[0]
        parts = [
            torch.sin(angle).unsqueeze(1).expand(e, num_agents),
            torch.cos(angle).unsqueeze(1).expand(e, num_agents),
            self.works_on[:, weekday].T.float(),
            self.works_on[:, (weekday + 1) % DAYS_A_WEEK].T.float(),
        ]
        if self.has_rent:
            week = DAYS_A_WEEK * self.ticks_per_day
            due_in = ((self.rent_tick - week_tick) % week).float() / week
            parts.append(due_in.unsqueeze(1).expand(e, num_agents))
            parts.append((meters[..., self.money] >= self.rent_amount).float())
        return torch.stack(parts, dim=-1)

    def charge_rent(
        self, meters: torch.Tensor, alive: torch.Tensor, due: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Take the rent from every standing agent of the envs where it is due, in place on
        `meters`; returns (RentEvent per agent, the penalty charged per agent)."""
        owes = due.unsqueeze(1) & alive
        money = meters[..., self.money]
        paid = owes & (money >= self.rent_amount)
        missed = owes & ~paid
        meters[..., self.money] = torch.where(paid, money - self.rent_amount, money)
        event = paid.long() * RentEvent.PAID + missed.long() * RentEvent.MISSED
        return event, missed.float() * self.rent_penalty

    def rent_shortfall(self, meters: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        """(E, A) the share of the rent each standing agent's money does not cover (0 to 1)."""
        short = (self.rent_amount - meters[..., self.money]).clamp(min=0.0) / self.rent_amount
        return short.clamp(max=1.0) * alive

    def tired(self, meters: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        """(E, A) bool: standing agents below the fatigue threshold."""
        return (meters[..., self.energy] < self.fatigue[0]) & alive

    def collapse(
        self, tired: torch.Tensor, rng_key: torch.Tensor, tick: torch.Tensor
    ) -> torch.Tensor:
        """(E, A) bool: tired agents who faint this tick (a counter-based draw per agent)."""
        chance = self.fatigue[2]
        if chance <= 0:
            return torch.zeros_like(tired)
        draw = uniform(rng_key ^ FATIGUE_KEY, tick, tired.shape[1])
        return tired & (draw < chance)
