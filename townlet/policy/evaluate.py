"""Evaluation: the trained policy (deterministic and sampled) against the scripted routine and a
random policy, on fresh episodes of the scenario's fixed start, over several world seeds. Under
a population (`population.background`) each of them drives the focal agents only, beside the
same background, and only the focal agents are measured.

Every entry reports the mean and spread of the return per agent-episode, the return split into
its reward terms (they sum to `return_mean`), and what the agents did: shifts on time, late and
absent, faints and completions per agent-day. One number per policy hid why a policy scored
what it did; a single seed made the deterministic score flip between runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from townlet.config.choices import WEEKDAYS
from townlet.config.schema import TownletConfig
from townlet.policy.choosers import (
    Chooser,
    MixedChooser,
    PolicyChooser,
    RandomChooser,
    ScriptChooser,
    evaluating,
    scripts_of,
)
from townlet.policy.event_counts import EventTally, meal_types
from townlet.policy.network import ActorCritic
from townlet.policy.population import Background, focal_agents
from townlet.scenarios.controller import validate_scripts
from townlet.telemetry.schema import EVENT_PREFIX
from townlet.util.event_codes import RentEvent
from townlet.world import ShiftEvent, World
from townlet.world.calendar import DAYS_A_WEEK
from townlet.world.side_by_side import side_by_side

EVAL_SEEDS = 4
WHO = ("policy_deterministic", "policy_sampled", "scripted", "random")


def play(
    config: TownletConfig,
    make_chooser: Callable[[World, int], Chooser],
    episodes: int,
    seed: int,
    seeds: int = EVAL_SEEDS,
    together: Callable[[World, list[tuple[int, int]]], Chooser] | None = None,
) -> dict:
    """`episodes` episodes from the scenario's fixed start, spread over `seeds` world seeds.
    With `together`, a chooser for the groups' envs stepping in one batch (`side_by_side`),
    given the (envs, seed) of each group, that acts in every row as `make_chooser`'s would in
    its own group's world (the policy: its action depends on the row alone, its noise comes
    from the group's generator): the same report, one pass instead of one per group."""
    groups = seed_groups(episodes, seed, seeds)
    if together is not None and not config.population.background and len(groups) > 1:
        return _report([_play_together(config, together, groups)])
    return _report([_play_group(config, make_chooser, envs, s) for envs, s in groups])


def seed_groups(episodes: int, seed: int, seeds: int = EVAL_SEEDS) -> list[tuple[int, int]]:
    """(envs, world seed) of each group `episodes` are played in: every evaluation (policy,
    baselines, populations) uses these, so their figures come from the same days."""
    groups = max(1, min(seeds, episodes))
    per_group = math.ceil(episodes / groups)
    return [(per_group, seed + 7919 * g) for g in range(groups)]


def _eval_world(config: TownletConfig, envs: int, seed: int) -> World:
    return World(config.world, config.scenario, num_envs=envs, seed=seed, track_terms=True)


def _play_group(config, make_chooser, envs: int, seed: int) -> dict:
    world = _eval_world(config, envs, seed)
    chooser = make_chooser(world, seed)
    taking_part = world.state.alive.clone()
    if config.population.background:  # the chooser drives the focal agents, who are measured
        focal = focal_agents(config).to(world.device)
        chooser = MixedChooser(chooser, Background(world, config, seed), focal)
        taking_part &= focal
    return _play_world(world, chooser, taking_part)


def _play_together(config, make_chooser, groups: list[tuple[int, int]]) -> dict:
    """Every group's envs in one batch; the tally of them all, its agent-days summed group
    by group as `_report` sums separate tallies (so the figures are the same to the bit)."""
    parts = [_eval_world(config, envs, s) for envs, s in groups]
    world = side_by_side(parts, lambda envs: _eval_world(config, envs, groups[0][1]))
    tally = _play_world(world, make_chooser(world, groups), world.state.alive.clone())
    days, start = 0.0, 0
    for envs, _ in groups:
        part = slice(start, start + envs)
        ticks = tally["lengths"][part].unsqueeze(1) * tally["taking_part"][part]
        days += float(ticks.sum()) / world.layout.ticks_per_day
        start += envs
    tally["agent_days"], tally["seeds"] = days, len(groups)
    return tally


def _play_world(world: World, chooser: Chooser, taking_part: torch.Tensor) -> dict:
    envs, a, types = world.num_envs, world.layout.num_agents, world.layout.affordance_types
    device = world.device
    returns = torch.zeros(envs, a, device=device)
    terms: dict[str, torch.Tensor] = {}
    tally = EventTally(envs, a, world.names, meal_types(world.layout), device)
    lengths = torch.zeros(envs, device=device)
    finished = torch.zeros(envs, dtype=torch.bool, device=device)
    week = WeekTally(world) if world.calendar.observed else None
    obs = world.observe()
    for _ in range(world.layout.episode_ticks):
        result = world.step(chooser.act(obs))
        chooser.observe(result)
        live = (~finished).unsqueeze(1) & taking_part
        returns += result.reward * live
        for name, value in result.terms.items():
            terms[name] = terms.get(name, 0.0) + value * live
        ev = result.events
        tally.add(ev, live)
        if week is not None:
            week.add(ev, live)
        lengths += ~finished
        finished |= result.env_done
        obs = result.obs
        if bool(finished.all()):
            break
    return {
        "returns": returns[taking_part].cpu(),
        "terms": {k: v[taking_part].cpu() for k, v in terms.items()},
        "counts": tally.counts(),
        "agent_days": float((lengths.unsqueeze(1) * taking_part).sum())
        / world.layout.ticks_per_day,
        "lengths": lengths.cpu(),
        "taking_part": taking_part.cpu(),
        "types": types,
        "week": week,
        "seeds": 1,
    }


def _report(tallies: list[dict]) -> dict:
    returns = torch.cat([t["returns"] for t in tallies])
    n = len(returns)
    names = list(tallies[0]["terms"])
    components = {k: float(torch.cat([t["terms"][k] for t in tallies]).sum() / n) for k in names}
    counts = {k: sum(t["counts"][k] for t in tallies) for k in tallies[0]["counts"]}
    counts.pop("chat_quality_mean")  # a mean: its sum over groups is no figure
    shifts = {
        ShiftEvent.ON_TIME: counts["shift_on_time_events"],
        ShiftEvent.LATE: counts["shift_late_events"],
        ShiftEvent.ABSENT: counts["shift_absent_events"],
    }
    total_shifts = sum(shifts.values())
    agent_days = sum(t["agent_days"] for t in tallies)
    faints = counts["faint_events"]
    chats_ok, chats_failed = counts["chat_success_events"], counts["chat_failure_events"]
    helped, taken = counts["late_help_events"], counts["shift_takeover_events"]

    def rate(event: ShiftEvent) -> float | None:
        return round(shifts[event] / total_shifts, 4) if total_shifts else None

    report = {
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std(unbiased=False)),
        "episodes": sum(len(t["lengths"]) for t in tallies),
        "agent_episodes": n,
        "seeds": sum(t["seeds"] for t in tallies),
        "length_mean": float(torch.cat([t["lengths"] for t in tallies]).mean()),
        "survival_rate": 1.0 - faints / n,
        "components": components,
        "behaviour": {
            "shifts": total_shifts,
            "on_time_rate": rate(ShiftEvent.ON_TIME),
            "late_rate": rate(ShiftEvent.LATE),
            "absent_rate": rate(ShiftEvent.ABSENT),
            "faints_per_agent_day": faints / agent_days if agent_days else 0.0,
            "chats_per_agent_day": (chats_ok + chats_failed) / agent_days if agent_days else 0.0,
            "chat_success_rate": (
                round(chats_ok / (chats_ok + chats_failed), 4) if chats_ok + chats_failed else None
            ),
            "late_help_events": helped,
            "shift_takeover_events": taken,
            "completions_per_agent_day": {
                name: counts[f"{EVENT_PREFIX}{name}"] / agent_days if agent_days else 0.0
                for name in tallies[0]["types"]
            },
        },
    }
    if tallies[0]["week"] is not None:
        report["behaviour"].update(WeekTally.merged([t["week"] for t in tallies]))
    return report


class WeekTally:
    """A multi-day evaluation's figures: the weekly rent, and each weekday's shifts, faints
    and completions (a day's behaviour is what a week of it is made of)."""

    def __init__(self, world: World) -> None:
        device, types = world.device, len(world.layout.affordance_types)
        self.types = world.layout.affordance_types
        self.rent = torch.zeros(3, dtype=torch.int64, device=device)
        self.shifts = torch.zeros(DAYS_A_WEEK, len(ShiftEvent), dtype=torch.int64, device=device)
        self.completions = torch.zeros(DAYS_A_WEEK, types, dtype=torch.int64, device=device)
        self.faints = torch.zeros(DAYS_A_WEEK, dtype=torch.int64, device=device)
        self.agent_ticks = torch.zeros(DAYS_A_WEEK, dtype=torch.int64, device=device)
        self.ticks_per_day = world.layout.ticks_per_day

    def add(self, events, live: torch.Tensor) -> None:
        day = events.weekday.unsqueeze(1).expand_as(live)[live]
        self.rent += torch.bincount(events.rent[live], minlength=3)
        kinds = len(ShiftEvent)
        shift = torch.bincount(
            day * kinds + events.shift_event[live], minlength=DAYS_A_WEEK * kinds
        )
        self.shifts += shift.view(DAYS_A_WEEK, kinds)
        done = events.completed[live]
        types = self.completions.shape[1]
        index = day[done >= 0] * types + done[done >= 0]
        self.completions += torch.bincount(index, minlength=DAYS_A_WEEK * types).view(-1, types)
        self.faints += torch.bincount(day[events.fainted[live]], minlength=DAYS_A_WEEK)
        self.agent_ticks += torch.bincount(day, minlength=DAYS_A_WEEK)

    @staticmethod
    def merged(tallies: list[WeekTally]) -> dict:
        rent = sum(t.rent for t in tallies).tolist()
        shifts = sum(t.shifts for t in tallies)
        completions = sum(t.completions for t in tallies)
        faints = sum(t.faints for t in tallies).tolist()
        days = (sum(t.agent_ticks for t in tallies).double() / tallies[0].ticks_per_day).tolist()
        by_weekday = {}
        for d, name in enumerate(WEEKDAYS):
            if days[d] == 0:
                continue
            worked = int(shifts[d, 1:].sum())
            by_weekday[name.value] = {
                "agent_days": round(days[d], 4),
                "shifts": worked,
                "on_time_rate": (
                    round(int(shifts[d, ShiftEvent.ON_TIME]) / worked, 4) if worked else None
                ),
                "faints_per_agent_day": faints[d] / days[d],
                "completions_per_agent_day": {
                    kind: float(completions[d, i]) / days[d]
                    for i, kind in enumerate(tallies[0].types)
                },
            }
        due = rent[RentEvent.PAID] + rent[RentEvent.MISSED]
        return {
            "rent_paid": rent[RentEvent.PAID],
            "rent_missed": rent[RentEvent.MISSED],
            "rent_paid_rate": round(rent[RentEvent.PAID] / due, 4) if due else None,
            "by_weekday": by_weekday,
        }


def scripted_report(
    config: TownletConfig, episodes: int, seed: int, scripts: list | None = None
) -> dict | None:
    """The scripted routine (or the given scripts) over the same seeds; None without scripts."""
    scripts = scripts if scripts is not None else scripts_of(config)
    if scripts is None:
        return None
    probe = World(config.world, config.scenario, num_envs=1, seed=seed)
    validate_scripts(probe, scripts, config.scenario.name)
    return play(config, lambda world, _seed: ScriptChooser(world, scripts), episodes, seed)


def random_report(config: TownletConfig, episodes: int, seed: int) -> dict:
    return play(config, lambda _world, s: RandomChooser(s), episodes, seed)


def policy_report(config: TownletConfig, net: ActorCritic, episodes: int, seed: int, det: bool):
    """The policy's report, played in eval mode (its training mode restored after)."""
    with evaluating(net):
        return play(
            config,
            lambda _world, s: PolicyChooser(net, det, s),
            episodes,
            seed,
            together=lambda _world, groups: PolicyChooser(net, det, groups[0][1], groups),
        )


def baseline_reports(config: TownletConfig, episodes: int, seed: int) -> dict:
    """The scripted routine's and the random policy's reports: they never change within a run,
    so a trainer plays them once and passes them to every `evaluate`."""
    return {
        "scripted": scripted_report(config, episodes, seed),
        "random": random_report(config, episodes, seed),
    }


def evaluate(
    config: TownletConfig,
    net: ActorCritic,
    episodes: int,
    seed: int,
    baselines: dict | None = None,
) -> dict:
    """Reports for the policy and the baselines (see the module docstring)."""
    baselines = baselines if baselines is not None else baseline_reports(config, episodes, seed)
    return {
        "policy_deterministic": policy_report(config, net, episodes, seed, True),
        "policy_sampled": policy_report(config, net, episodes, seed, False),
        "scripted": baselines["scripted"],
        "random": baselines["random"],
    }


def format_table(report: dict) -> str:
    """The evaluation as a fixed-width table: returns, terms and behaviour per policy."""
    who = [w for w in WHO if report.get(w)]
    width = 22
    lines = ["".ljust(width) + "".join(w.rjust(22) for w in who)]

    def row(label: str, values: list) -> None:
        cells = []
        for v in values:
            cells.append(("-" if v is None else f"{v:.3f}").rjust(22))
        lines.append(label.ljust(width) + "".join(cells))

    row("return_mean", [report[w]["return_mean"] for w in who])
    row("return_std", [report[w]["return_std"] for w in who])
    lines.append(
        "episodes".ljust(width) + "".join(str(report[w]["episodes"]).rjust(22) for w in who)
    )
    for term in report[who[0]]["components"]:
        row(f"  {term}", [report[w]["components"].get(term) for w in who])
    for key in (
        "on_time_rate",
        "late_rate",
        "absent_rate",
        "faints_per_agent_day",
        "chats_per_agent_day",
        "chat_success_rate",
        "late_help_events",
        "shift_takeover_events",
    ):
        row(key, [report[w]["behaviour"][key] for w in who])
    if "rent_paid_rate" in report[who[0]]["behaviour"]:  # a multi-day town
        row("rent_paid_rate", [report[w]["behaviour"]["rent_paid_rate"] for w in who])
        for day in report[who[0]]["behaviour"]["by_weekday"]:
            row(
                f"  on_time.{day}",
                [
                    report[w]["behaviour"]["by_weekday"].get(day, {}).get("on_time_rate")
                    for w in who
                ],
            )
    for kind in report[who[0]]["behaviour"]["completions_per_agent_day"]:
        row(
            f"  {kind}/agent-day",
            [report[w]["behaviour"]["completions_per_agent_day"][kind] for w in who],
        )
    return "\n".join(lines)


def evaluate_checkpoint(path, overrides: list[str], episodes: int, seed: int | None) -> dict:
    """Evaluate a checkpoint's policy on the project config with `overrides` (by default on
    the scenario it was trained on); raises CheckpointError or ConfigError in one line."""
    config, net = checkpoint_policy(path, overrides)
    return evaluate(config, net, episodes, config.seed + 1000 if seed is None else seed)


def checkpoint_policy(path, overrides: list[str]) -> tuple[TownletConfig, ActorCritic]:
    """The config (the checkpoint's scenario unless `overrides` name one) and the network."""
    from townlet.config.untrusted import scenario_name
    from townlet.policy.checkpoint import load_checkpoint, load_policy
    from townlet.scenarios.build import CONF_DIR, load_config, typed

    data = load_checkpoint(path)
    if not any(o.split("=", 1)[0].lstrip("+") == "scenario" for o in overrides):
        name = scenario_name(data.get("scenario"), CONF_DIR, str(path))
        overrides = [f"scenario={name}", *overrides]
    config = typed(load_config(overrides))
    world = World(config.world, config.scenario, num_envs=1, seed=config.seed)
    net, _ = load_policy(path, world)
    return config, net
