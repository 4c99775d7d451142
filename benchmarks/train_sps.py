"""End-to-end PPO training throughput (rollout + update) at the default config, as JSON lines.

Trains `town` with the default `ppo` group for a few epochs and reports the steady state (the
first epochs warm up allocators and are left out): the split between acting and learning, the
seconds per epoch of every profiled phase (`train.profile`), and the network-only limit of the
update measured in the same process (the same network, minibatch size and number of passes,
forward + backward + Adam on random data) with the trainer's update time as a multiple of it.
Run: python benchmarks/train_sps.py [--epochs N] [--device cuda] [overrides...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from townlet.policy.train import train
from townlet.scenarios import load_config

WARMUP_EPOCHS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (world.device)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. ppo.num_envs=256")
    args = parser.parse_args()
    overrides = [*args.overrides, f"world.device={args.device}"]
    cfg = load_config(overrides)
    ticks = cfg.ppo.rollout_ticks * args.epochs
    cfg = load_config(
        [
            *overrides,
            "train.anneal=[]",  # PPO epochs only: the BC passes of town's default are not PPO
            f"train.total_ticks={ticks}",
            "train.eval_episodes=1",
            "train.progress=false",
            "train.profile=true",
        ]
    )
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Path(tmp))
        records = [
            json.loads(x) for x in (Path(tmp) / "telemetry" / "ppo.jsonl").read_text().splitlines()
        ]
    steady = records[WARMUP_EPOCHS:]
    steps = sum(r["steps_per_sec"] * r["epoch_duration_sec"] for r in steady)
    seconds = sum(r["epoch_duration_sec"] for r in steady)
    rollout = sum(r["rollout_sec"] for r in steady)
    update = sum(r["update_sec"] for r in steady)
    conditions = {
        "scenario": cfg.scenario.name,
        "envs": cfg.ppo.num_envs,
        "agents": len(cfg.scenario.agents),
        "rollout_ticks": cfg.ppo.rollout_ticks,
        "update_epochs": cfg.ppo.update_epochs,
        "minibatches": cfg.ppo.num_minibatches,
        "window": cfg.world.observation.window,
        "epochs_measured": len(steady),
        "threads": torch.get_num_threads(),
        "device": args.device,
        "precision": str(cfg.ppo.precision),
        "torch": torch.__version__,
    }
    limit = network_limit(cfg, sum(r["transitions"] for r in steady) / len(steady))
    figures = [
        ("train_agent_steps_per_sec", steps / seconds, "agent-steps/s"),
        ("rollout_agent_steps_per_sec", steps / rollout, "agent-steps/s"),
        ("update_agent_steps_per_sec", steps / update, "agent-steps/s"),
        ("rollout_time_fraction", rollout / seconds, "fraction"),
        ("update_time_fraction", update / seconds, "fraction"),
        ("update_network_limit_sec", limit, "s per update"),
        (
            "update_over_network_limit",  # the PPO passes alone: the KL after them is its phase
            sum(r["profile_update_sec"] for r in steady) / len(steady) / limit,
            "x",
            {"target": 1.15},
        ),
    ]
    wall = sum(r["profile_wall_sec"] for r in steady)
    for key in sorted({k for r in steady for k in r if k.startswith("profile_")}):
        total = sum(r.get(key, 0.0) for r in steady)
        phase = key.removeprefix("profile_").removesuffix("_sec")
        share = {"share_of_wall": round(total / wall, 4)}
        figures.append((f"phase_{phase}_sec_per_epoch", total / len(steady), "s", share))
    for name, value, unit, *extra in figures:
        line = {"name": name, "value": round(value, 4), "unit": unit, **conditions}
        print(json.dumps({**line, **(extra[0] if extra else {})}), flush=True)


def network_limit(cfg, transitions: float, repeats: int = 3) -> float:
    """Seconds of one update's forward, backward and Adam passes on random data of the same
    shapes (the best of `repeats`): what the update would cost with no other work."""
    from townlet.policy.network import ActorCritic
    from townlet.policy.precision import precision_scope
    from townlet.world import World
    from townlet.world.constants import NUM_ACTIONS

    world = World(cfg.world, cfg.scenario, num_envs=1, seed=0)
    device = world.device
    window, features = world.layout.window, len(world.names.features)
    net = ActorCritic(window, features, NUM_ACTIONS, cfg.ppo.hidden_size, cfg.ppo.embedding_dim)
    net = net.to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4, eps=1e-5)
    size = max(1, int(transitions) // cfg.ppo.num_minibatches)
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 8, (size, window, window), generator=generator).to(torch.uint8)
    inputs = (codes.to(device), torch.rand(size, features, generator=generator).to(device))
    masks = torch.ones(size, NUM_ACTIONS, dtype=torch.bool, device=device)
    actions = torch.randint(0, NUM_ACTIONS, (size,), generator=generator).to(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(cfg.ppo.update_epochs * cfg.ppo.num_minibatches):
            with precision_scope(cfg.ppo.precision, device):
                _, logprob, entropy, value, _ = net.get_action_and_value(
                    *inputs, masks, action=actions
                )
            loss = -(logprob.float().mean()) + value.float().pow(2).mean() - entropy.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.ppo.max_grad_norm)
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


if __name__ == "__main__":
    main()
