"""World step throughput with observations built, as JSON lines (one figure per line).

Agents act uniformly at random among their unmasked actions, so interactions, queues, shifts
and faints all happen; envs auto-reset.
Run: python benchmarks/world_step.py [--seconds S] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from townlet.scenarios import build_world, load_config

SIZES = (
    ("town", 1, 1),
    ("town", 64, 4),
    ("town", 1024, 4),
    ("town", 4096, 4),
    ("village", 1, 16),
    ("village", 64, 16),
    ("village", 256, 16),
)


def scenario_config(scenario: str, agents: int):
    cfg = load_config([f"scenario={scenario}"])
    cfg.scenario.agents = cfg.scenario.agents[:agents]
    return cfg


def sample_actions(mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniform over unmasked actions, vectorised (on the mask's device)."""
    scores = torch.rand(mask.shape, generator=generator, device=mask.device) * mask
    return scores.argmax(-1)


def measure(
    scenario: str, envs: int, agents: int, seconds: float, windows: int = 20, device: str = "cpu"
) -> dict:
    """Step for `seconds` in `windows` equal slices; per-slice step times give a median that
    other load on the machine disturbs less than the mean."""
    cfg = scenario_config(scenario, agents)
    cfg.world.device = device
    world = build_world(cfg, num_envs=envs, auto_reset=True, seed=0)
    generator = torch.Generator(device=device).manual_seed(1)
    obs = world.observe()
    for _ in range(20):
        obs = world.step(sample_actions(obs.action_mask, generator)).obs
    per_step, steps, elapsed = [], 0, 0.0
    for _ in range(windows):
        window_steps, start = 0, time.perf_counter()
        while True:
            obs = world.step(sample_actions(obs.action_mask, generator)).obs
            window_steps += 1
            spent = time.perf_counter() - start
            if spent >= seconds / windows and window_steps >= 5:
                break
        per_step.append(spent / window_steps)
        steps, elapsed = steps + window_steps, elapsed + spent
    return {"steps": steps, "elapsed": elapsed, "median_step": statistics.median(per_step)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per size")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (world.device)")
    parser.add_argument("--only", nargs="*", help="scenarios to measure (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    conditions = {
        "threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.machine(),
        "window": int(load_config().world.observation.window),
        "policy": "uniform over action mask",
        "device": args.device,
    }
    for scenario, envs, agents in SIZES:
        if args.only and scenario not in args.only:
            continue
        run = measure(scenario, envs, agents, args.seconds, device=args.device)
        rate = run["steps"] * envs * agents / run["elapsed"]
        print(
            json.dumps(
                {
                    "name": "world_step_throughput",
                    "value": round(rate),
                    "unit": "agent-steps/s",
                    "scenario": scenario,
                    "envs": envs,
                    "agents": agents,
                    **conditions,
                }
            ),
            flush=True,
        )
        if envs == 1 and agents == 1:
            median = run["median_step"] * 1e6
            print(
                json.dumps(
                    {
                        "name": "world_step_latency_median",
                        "value": round(median, 1),
                        "unit": "us/step",
                        "scenario": scenario,
                        "envs": 1,
                        "agents": 1,
                        "windows": 20,
                        **conditions,
                    }
                ),
                flush=True,
            )
            latency = run["elapsed"] / run["steps"] * 1e6
            print(
                json.dumps(
                    {
                        "name": "world_step_latency",
                        "value": round(latency, 1),
                        "unit": "us/step",
                        "scenario": scenario,
                        "envs": 1,
                        "agents": 1,
                        **conditions,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
