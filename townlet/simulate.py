"""Run the batched world under a masked-uniform random policy and report what happened.

This is the main job until the PPO loop lands (issue 4): it exercises the whole world at
training scale and leaves a `summary.json` in the run directory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from townlet.config.schema import TownletConfig
from townlet.scenarios import build_world
from townlet.scenarios.build import typed


def random_actions(mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniform over each agent's unmasked actions, vectorised."""
    return (torch.rand(mask.shape, generator=generator) * mask).argmax(-1)


def simulate(cfg: DictConfig | TownletConfig, output_dir: Path | None = None) -> dict[str, Any]:
    """Step `train.num_envs` envs for `train.total_ticks` ticks; return (and save) a summary."""
    config = typed(cfg) if isinstance(cfg, DictConfig) else cfg
    if config.train.policy != "random":
        raise ValueError(
            f"train.policy: only 'random' exists until PPO lands, got {config.train.policy!r}"
        )
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    world = build_world(config, num_envs=config.train.num_envs, auto_reset=True)
    generator = torch.Generator().manual_seed(config.seed)
    names = world.names
    totals: dict[str, float] = {}
    finished_returns: list[float] = []
    finished_lengths: list[int] = []
    faint_episodes = 0
    obs = world.observe()
    start = time.perf_counter()
    for _ in range(config.train.total_ticks):
        result = world.step(random_actions(obs.action_mask, generator))
        obs = result.obs
        for key, value in result.events.counters(names.affordance_types).items():
            totals[key] = totals.get(key, 0.0) + float(value.sum())
        if bool(result.env_done.any()):
            done = result.env_done
            finished_returns += result.episode_return[done].mean(-1).tolist()
            finished_lengths += result.episode_length[done].tolist()
            faint_episodes += int(result.env_terminated.sum())
    elapsed = time.perf_counter() - start
    agent_steps = config.train.total_ticks * world.num_envs * world.layout.num_agents
    summary = {
        "scenario": config.scenario.name,
        "seed": config.seed,
        "num_envs": world.num_envs,
        "num_agents": world.layout.num_agents,
        "ticks": config.train.total_ticks,
        "agent_steps": agent_steps,
        "agent_steps_per_sec": agent_steps / elapsed,
        "episodes_finished": len(finished_returns),
        "episodes_all_fainted": faint_episodes,
        "mean_episode_return": _mean(finished_returns),
        "mean_episode_length": _mean(finished_lengths),
        "events": {k: round(v, 6) for k, v in sorted(totals.items())},
        "names": names.as_dict(),
    }
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def describe(summary: dict[str, Any]) -> str:
    """A few human lines about a run."""
    events = summary["events"]
    completions = {
        k.split(".", 1)[1]: int(v) for k, v in events.items() if k.startswith("completed.") and v
    }
    ret = summary["mean_episode_return"]
    return "\n".join(
        [
            f"scenario {summary['scenario']}: {summary['num_envs']} envs x "
            f"{summary['num_agents']} agents, {summary['ticks']} ticks "
            f"({summary['agent_steps_per_sec']:,.0f} agent-steps/s)",
            f"episodes finished: {summary['episodes_finished']} "
            f"(all fainted: {summary['episodes_all_fainted']}), mean return "
            + ("n/a" if ret is None else f"{ret:.3f}"),
            f"completions: {completions or 'none'}",
            f"contention events: {int(events['contention_events'])}, faints: "
            f"{int(events['faints'])}, on time / late / absent: {int(events['shift_on_time'])} / "
            f"{int(events['shift_late'])} / {int(events['shift_absent'])}",
        ]
    )
