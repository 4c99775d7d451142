"""Does PPO learn? Trains `town` and each scenario, printing JSON lines with the final return of
PPO (deterministic policy), a random policy and the scripted controller, and the wall time PPO
took to first reach the scripted controller's return (evaluated every few epochs).

Run: python benchmarks/learning.py [--only NAME ...]   (about 8 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from townlet.policy.train import train
from townlet.scenarios import load_config

# scenario -> overrides: the town trains with the default PPO config; scenarios with ppo=fast.
RUNS = {
    "town": ["train.eval_every=20"],
    "kitchen_breakfast": ["ppo=fast", "train.total_ticks=3200", "train.eval_every=5"],
    "queue_conflict": ["ppo=fast", "train.total_ticks=3200", "train.eval_every=5"],
    "employment_punctuality": ["ppo=fast", "train.total_ticks=3200", "train.eval_every=5"],
    "rivalry_decay": ["ppo=fast", "train.total_ticks=3200", "train.eval_every=5"],
    "observation_baseline": ["ppo=fast", "train.total_ticks=640", "train.eval_every=5"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="scenarios to run")
    args = parser.parse_args()
    for scenario, overrides in RUNS.items():
        if args.only and scenario not in args.only:
            continue
        cfg = load_config([f"scenario={scenario}", *overrides, "train.progress=false"])
        with tempfile.TemporaryDirectory() as tmp:
            result = train(cfg, Path(tmp))
            history = [
                json.loads(x)
                for x in (Path(tmp) / "evaluation_history.jsonl").read_text().splitlines()
            ]
        final = result.evaluation
        scripted = final["scripted"]["return_mean"] if final["scripted"] else None
        reached = next(
            (
                h
                for h in history
                if scripted is not None
                and h["policy_deterministic"]["return_mean"] >= scripted - 1e-6
            ),
            None,
        )
        print(
            json.dumps(
                {
                    "name": "learning",
                    "scenario": scenario,
                    "value": round(final["policy_deterministic"]["return_mean"], 4),
                    "unit": "return per agent-episode",
                    "ppo_sampled": round(final["policy_sampled"]["return_mean"], 4),
                    "random": round(final["random"]["return_mean"], 4),
                    "scripted": None if scripted is None else round(scripted, 4),
                    "seconds_to_scripted": None if reached is None else reached["elapsed_sec"],
                    "train_seconds": history[-1]["elapsed_sec"],
                    "agent_steps": result.steps,
                    "envs": cfg.ppo.num_envs,
                    "ppo": "fast" if "ppo=fast" in overrides else "default",
                    "threads": torch.get_num_threads(),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
