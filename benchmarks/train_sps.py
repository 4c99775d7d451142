"""End-to-end PPO training throughput (rollout + update) at the default config, as JSON lines.

Trains `town` with the default `ppo` group for a few epochs and reports the steady state (the
first epochs warm up allocators and are left out), with the split between acting and learning.
Run: python benchmarks/train_sps.py [--epochs N] [--device cuda] [overrides...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
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
    for name, value, unit in (
        ("train_agent_steps_per_sec", steps / seconds, "agent-steps/s"),
        ("rollout_agent_steps_per_sec", steps / rollout, "agent-steps/s"),
        ("update_agent_steps_per_sec", steps / update, "agent-steps/s"),
        ("rollout_time_fraction", rollout / seconds, "fraction"),
        ("update_time_fraction", update / seconds, "fraction"),
    ):
        print(
            json.dumps({"name": name, "value": round(value, 3), "unit": unit, **conditions}),
            flush=True,
        )


if __name__ == "__main__":
    main()
