"""The static side of social life, compiled once with the layout: who works with whom, the
pairs' starting relationships, and the utility outage schedule (which affordances close when,
which outages start at a tick of day, and the outage flags agents observe)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet.config.errors import ConfigError
from townlet.config.schema import ScenarioConfig, WorldConfig


@dataclass(frozen=True)
class SocialTables:
    coworkers: torch.Tensor  # (A, A) bool: another agent with the same workplace
    familiarity: torch.Tensor  # (A, A) float32 starting familiarity (symmetric)
    rivalry: torch.Tensor  # (A, A) float32 starting rivalry (symmetric)
    utility_names: tuple[str, ...]  # utilities with an outage (scheduled or random)
    outage_active: torch.Tensor  # (tpd, U) float32: 1 while the utility is out on schedule
    outage_starts: torch.Tensor  # (tpd,) int64 outages starting at this tick of day
    closed: torch.Tensor  # (tpd, N) bool: instance closed by a scheduled outage
    random_chance: torch.Tensor  # (U,) float64 chance a tick that a random outage begins
    random_ticks: torch.Tensor  # (U,) int64 ticks a random outage lasts (0: none)
    utility_instances: torch.Tensor  # (U, N) bool: the instances the utility powers


def compile_social(
    world: WorldConfig,
    scenario: ScenarioConfig,
    agent_ids: list[str],
    job_cells: list[int],
    has_job: list[bool],
    inst_types: list[str],
    hour_to_tick,
) -> SocialTables:
    """Resolve relationships, coworkers and outages, naming the key of anything inconsistent."""
    a, tpd = len(agent_ids), world.ticks_per_day
    index = {agent: i for i, agent in enumerate(agent_ids)}
    familiarity = torch.zeros(a, a)
    rivalry = torch.zeros(a, a)
    for k, pair in enumerate(scenario.relationships):
        where = f"scenario '{scenario.name}': relationships[{k}]"
        for end in (pair.a, pair.b):
            if end not in index:
                raise ConfigError(f"{where}: unknown agent '{end}' (agents: {', '.join(index)})")
        if pair.a == pair.b:
            raise ConfigError(f"{where}: an agent has no relationship with itself")
        for key in ("familiarity", "rivalry"):
            value = getattr(pair, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{where}.{key}: {value} is outside [0, 1]")
        i, j = index[pair.a], index[pair.b]
        familiarity[i, j] = familiarity[j, i] = pair.familiarity
        rivalry[i, j] = rivalry[j, i] = pair.rivalry
    cells = torch.tensor(job_cells)
    employed = torch.tensor(has_job, dtype=torch.bool)
    coworkers = (cells.unsqueeze(0) == cells.unsqueeze(1)) & employed & employed.unsqueeze(1)
    coworkers &= ~torch.eye(a, dtype=torch.bool)

    for utility, kinds in world.utilities.items():
        for kind in kinds:
            if kind not in world.affordances:
                known = ", ".join(world.affordances)
                raise ConfigError(
                    f"world.utilities.{utility}: unknown affordance type '{kind}' ({known})"
                )
    random = scenario.random_outages
    utilities = tuple(sorted({o.utility for o in scenario.outages} | {o.utility for o in random}))
    powered = torch.tensor(  # (U, N): the instances each utility powers
        [[kind in world.utilities.get(u, ()) for kind in inst_types] for u in utilities],
        dtype=torch.bool,
    ).view(len(utilities), len(inst_types))
    outage_active = torch.zeros(tpd, len(utilities))
    outage_starts = torch.zeros(tpd, dtype=torch.int64)
    closed = torch.zeros(tpd, len(inst_types), dtype=torch.bool)
    for k, outage in enumerate(scenario.outages):
        where = f"scenario '{scenario.name}': outages[{k}]"
        if outage.utility not in world.utilities:
            known = ", ".join(world.utilities) or "none"
            raise ConfigError(f"{where}.utility: unknown utility '{outage.utility}' ({known})")
        for key in ("start_hour", "end_hour"):
            if not 0.0 <= getattr(outage, key) <= 24.0:
                raise ConfigError(f"{where}.{key}: {getattr(outage, key)} is not an hour")
        start, end = hour_to_tick(outage.start_hour, tpd), hour_to_tick(outage.end_hour, tpd)
        if start == end:
            raise ConfigError(f"{where}: start_hour and end_hour are the same tick")
        ticks = torch.arange(tpd)
        after, before = ticks >= start, ticks < end
        window = after & before if start < end else after | before
        u = utilities.index(outage.utility)
        outage_active[window, u] = 1.0
        outage_starts[start % tpd] += 1
        closed[window] |= powered[u]
    chance, ticks = _random_outages(world, scenario, utilities, hour_to_tick)
    return SocialTables(
        coworkers,
        familiarity,
        rivalry,
        utilities,
        outage_active,
        outage_starts,
        closed,
        chance,
        ticks,
        powered,
    )


def _random_outages(
    world: WorldConfig, scenario: ScenarioConfig, utilities: tuple[str, ...], hour_to_tick
) -> tuple[torch.Tensor, torch.Tensor]:
    """(U,) per-tick chance and (U,) duration in ticks of each utility's random outages."""
    tpd = world.ticks_per_day
    chance = torch.zeros(len(utilities), dtype=torch.float64)
    ticks = torch.zeros(len(utilities), dtype=torch.int64)
    for k, outage in enumerate(scenario.random_outages):
        where = f"scenario '{scenario.name}': random_outages[{k}]"
        if outage.utility not in world.utilities:
            known = ", ".join(world.utilities) or "none"
            raise ConfigError(f"{where}.utility: unknown utility '{outage.utility}' ({known})")
        if not 0.0 <= outage.per_day <= tpd:
            raise ConfigError(f"{where}.per_day: {outage.per_day} is outside [0, {tpd}]")
        if not 0.0 < outage.hours <= 24.0:
            raise ConfigError(f"{where}.hours: {outage.hours} is outside (0, 24]")
        u = utilities.index(outage.utility)
        if ticks[u] > 0:
            raise ConfigError(f"{where}.utility: '{outage.utility}' is listed twice")
        chance[u] = outage.per_day / tpd
        ticks[u] = max(1, hour_to_tick(outage.hours, tpd))
    return chance, ticks
