"""Seconds to evaluate a policy and to build the demonstrations a run clones, as JSON lines.

Every PPO run validates its deterministic policy (8 episodes, `train.select_every`) and ends
with an evaluation (16 episodes, deterministic and sampled); an anneal run first demonstrates
the scripts. This times each on the default `town` with a freshly initialised network (an
episode costs the same whatever the weights): the deterministic policy with its seed groups
side by side in one batch (what runs use) and group by group (what they did before
2026-12-07), the sampled policy both ways, and the demonstrations. Best of `--repeats`, one thread.
Run: python benchmarks/evaluation.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from townlet.policy.choosers import PolicyChooser
from townlet.policy.evaluate import play, policy_report
from townlet.policy.imitation import demonstrate
from townlet.policy.network import ActorCritic
from townlet.scenarios import load_config
from townlet.world import World
from townlet.world.constants import NUM_ACTIONS


def best_seconds(work, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config()
    probe = World(config.world, config.scenario, num_envs=1, seed=0)
    torch.manual_seed(0)
    net = ActorCritic(
        probe.layout.window,
        len(probe.names.features),
        NUM_ACTIONS,
        config.ppo.hidden_size,
        config.ppo.embedding_dim,
    )
    seed = config.seed + 1000

    def by_groups(episodes: int, deterministic: bool = True) -> None:
        play(config, lambda _w, s: PolicyChooser(net, deterministic, s), episodes, seed)

    cases = [
        ("deterministic", 8, "side by side", lambda: policy_report(config, net, 8, seed, True)),
        ("deterministic", 8, "group by group", lambda: by_groups(8)),
        ("deterministic", 16, "side by side", lambda: policy_report(config, net, 16, seed, True)),
        ("deterministic", 16, "group by group", lambda: by_groups(16)),
        ("sampled", 16, "side by side", lambda: policy_report(config, net, 16, seed, False)),
        ("sampled", 16, "group by group", lambda: by_groups(16, False)),
    ]
    conditions = {
        "scenario": config.scenario.name,
        "agents": len(config.scenario.agents),
        "threads": torch.get_num_threads(),
        "load": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
    }
    for policy, episodes, how, work in cases:
        line = {
            "name": "evaluation_seconds",
            "value": round(best_seconds(work, args.repeats), 4),
            "unit": "s",
            "policy": policy,
            "episodes": episodes,
            "groups": how,
            **conditions,
        }
        print(json.dumps(line), flush=True)
    seconds = best_seconds(lambda: demonstrate(config, config.seed), args.repeats)
    line = {
        "name": "demonstrations_seconds",
        "value": round(seconds, 4),
        "unit": "s",
        "demo_envs": config.train.bc.demo_envs,
        **conditions,
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
