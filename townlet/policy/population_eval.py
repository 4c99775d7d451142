"""Evaluation with populations, after Melting Pot 2.0: the focal policy drives its slots, the
background its own, and the report splits every figure by group.

Per population: focal and background per-capita return (mean over agent-episodes, with a 95%
bootstrap interval over episodes), the focal return normalised between the all-random town (0)
and the all-scripted town (1) on the same seeds and agent slots, efficiency (the sum of all
agents' returns per episode), equality (1 - Gini of the agents' returns per episode), and per
group the on-time rate, late help given and received, faints, and chats between the groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from townlet.config.schema import TownletConfig
from townlet.policy import choosers
from townlet.policy.evaluate import seed_groups
from townlet.policy.network import ActorCritic
from townlet.policy.population import Background, describe, focal_agents, source_names
from townlet.tracking.seed_report import mean_interval
from townlet.util.event_codes import ChatEvent
from townlet.world import ShiftEvent, World


@dataclass
class AgentTally:
    """Per agent-episode and per agent figures of a set of episodes."""

    returns: np.ndarray  # (episodes, A), NaN where the agent did not take part
    on_time: np.ndarray  # (A,) shift events
    shifts: np.ndarray  # (A,) shifts with an outcome (on time, late, absent)
    help_received: np.ndarray  # (A,)
    help_given: np.ndarray  # (A,)
    faints: np.ndarray  # (A,)
    chats_ok: np.ndarray  # (A, A) started by row, with column
    chats_failed: np.ndarray  # (A, A)

    @staticmethod
    def join(parts: list[AgentTally]) -> AgentTally:
        return AgentTally(
            returns=np.concatenate([p.returns for p in parts]),
            **{
                name: sum(getattr(p, name) for p in parts)
                for name in (
                    "on_time",
                    "shifts",
                    "help_received",
                    "help_given",
                    "faints",
                    "chats_ok",
                    "chats_failed",
                )
            },
        )


def tally(config: TownletConfig, make_chooser, episodes: int, seed: int) -> AgentTally:
    """Play `episodes` episodes in the evaluation's seed groups (so figures compare with
    the evaluation's) and keep every figure per agent."""
    groups = seed_groups(episodes, seed)
    return AgentTally.join([_tally_group(config, make_chooser, envs, s) for envs, s in groups])


def _tally_group(config: TownletConfig, make_chooser, envs: int, seed: int) -> AgentTally:
    world = World(config.world, config.scenario, num_envs=envs, seed=seed, track_terms=True)
    chooser = make_chooser(world, seed)
    a = world.layout.num_agents
    taking_part = world.state.alive.clone()
    returns = torch.zeros(envs, a)
    on_time, shifts = torch.zeros(a), torch.zeros(a)
    received, given, faints = torch.zeros(a), torch.zeros(a), torch.zeros(a)
    chats = {ChatEvent.SUCCESS: torch.zeros(a, a), ChatEvent.FAILURE: torch.zeros(a, a)}
    finished = torch.zeros(envs, dtype=torch.bool)
    obs = world.observe()
    for _ in range(world.layout.episode_ticks):
        result = world.step(chooser.act(obs))
        chooser.observe(result)
        live = ((~finished).unsqueeze(1) & taking_part.cpu()).float()
        ev = result.events
        returns += result.reward.cpu() * live
        shift = ev.shift_event.cpu()
        on_time += ((shift == ShiftEvent.ON_TIME) * live).sum(0)
        shifts += ((shift > 0) * live).sum(0)
        received += (ev.helped.cpu() * live).sum(0)
        if "help" in result.terms:
            given += ((result.terms["help"].cpu() > 0) * live).sum(0)
        faints += (ev.fainted.cpu() * live).sum(0)
        partner = ev.chat_partner.cpu()
        for code, counts in chats.items():
            started = (ev.chat.cpu() == code) & (live > 0)
            env, agent = started.nonzero(as_tuple=True)
            counts.index_put_((agent, partner[env, agent]), torch.ones(len(agent)), accumulate=True)
        finished |= result.env_done.cpu()
        obs = result.obs
        if bool(finished.all()):
            break
    out = returns.numpy().astype(np.float64)
    out[~taking_part.cpu().numpy()] = np.nan
    return AgentTally(
        out,
        on_time.numpy(),
        shifts.numpy(),
        received.numpy(),
        given.numpy(),
        faints.numpy(),
        chats[ChatEvent.SUCCESS].numpy(),
        chats[ChatEvent.FAILURE].numpy(),
    )


def gini(values: np.ndarray) -> float | None:
    """Gini coefficient of one episode's agent returns: the mean absolute difference over all
    ordered pairs divided by twice the mean absolute return (returns may be negative, so the
    scale is the mean of |x|); None for a town whose returns are all zero."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    scale = np.abs(values).mean() if len(values) else 0.0
    if scale == 0:
        return None
    differences = np.abs(values[:, None] - values[None, :]).mean()
    return float(differences / (2.0 * scale))


def normalised(value: float, random: float, scripted: float) -> float | None:
    """0 at the random town's figure, 1 at the scripted routine's (None when they are equal)."""
    span = scripted - random
    return None if abs(span) < 1e-12 else (value - random) / span


def per_capita(returns: np.ndarray, columns: np.ndarray) -> tuple[float | None, list | None]:
    """Mean return of the agents in `columns` per agent-episode, and a 95% interval over
    episodes (each episode's mean over those agents)."""
    if not columns.any():
        return None, None
    chosen = returns[:, columns]
    per_episode = np.nanmean(chosen, axis=1)
    per_episode = per_episode[~np.isnan(per_episode)]
    interval = mean_interval(per_episode)
    return float(np.nanmean(chosen)), None if interval is None else [*map(float, interval)]


def group_figures(t: AgentTally, columns: np.ndarray) -> dict:
    shifts = float(t.shifts[columns].sum())
    return {
        "agents": int(columns.sum()),
        "on_time_rate": round(float(t.on_time[columns].sum()) / shifts, 4) if shifts else None,
        "late_help_received": int(t.help_received[columns].sum()),
        "late_help_given": int(t.help_given[columns].sum()),
        "faints": int(t.faints[columns].sum()),
    }


def population_report(
    config: TownletConfig, net: ActorCritic, episodes: int, seed: int, baselines: dict
) -> dict:
    """The focal policy (deterministic) in `config.population`; `baselines` from
    `town_baselines` on the same seeds."""
    is_focal = focal_agents(config)

    def chooser(world: World, s: int) -> choosers.Chooser:
        focal = choosers.PolicyChooser(net, True, s)
        return choosers.MixedChooser(focal, Background(world, config, s), is_focal)

    with choosers.evaluating(net):
        t = tally(config, chooser, episodes, seed)
    focal = is_focal.numpy()
    background = ~focal
    focal_return, focal_interval = per_capita(t.returns, focal)
    background_return, background_interval = per_capita(t.returns, background)
    scales = [gini(row) for row in t.returns]
    scales = [g for g in scales if g is not None]
    scripted, random = baselines.get("scripted"), baselines["random"]
    return {
        "population": describe(config.population),
        "sources": dict(
            zip([a.id for a in config.scenario.agents], source_names(config), strict=True)
        ),
        "episodes": int(t.returns.shape[0]),
        "focal_per_capita_return": focal_return,
        "focal_interval": focal_interval,
        "background_per_capita_return": background_return,
        "background_interval": background_interval,
        "focal_normalised": (
            None
            if scripted is None
            else normalised(
                focal_return,
                float(np.nanmean(random.returns[:, focal])),
                float(np.nanmean(scripted.returns[:, focal])),
            )
        ),
        "efficiency": float(np.nanmean(np.nansum(t.returns, axis=1))),
        "equality": float(1.0 - np.mean(scales)) if scales else None,
        "focal": group_figures(t, focal),
        "background": group_figures(t, background) if background.any() else None,
        "chats": {
            "focal_to_background": {
                "ok": int(t.chats_ok[np.ix_(focal, background)].sum()),
                "failed": int(t.chats_failed[np.ix_(focal, background)].sum()),
            },
            "background_to_focal": {
                "ok": int(t.chats_ok[np.ix_(background, focal)].sum()),
                "failed": int(t.chats_failed[np.ix_(background, focal)].sum()),
            },
        },
    }


def town_baselines(config: TownletConfig, episodes: int, seed: int) -> dict:
    """The all-scripted town (None without scripts) and the all-random town, per agent."""
    scripts = choosers.scripts_of(config)
    return {
        "scripted": None
        if scripts is None
        else tally(
            config, lambda world, _s: choosers.ScriptChooser(world, scripts), episodes, seed
        ),
        "random": tally(config, lambda _world, s: choosers.RandomChooser(s), episodes, seed),
    }
