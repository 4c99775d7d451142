"""Does PPO learn each scenario? For every scenario and training seed, one JSON line: the
returns of PPO (deterministic and sampled), the scripted routine and a random policy (the
evaluation's 16 episodes over 4 world seeds), the return split into terms, what the agents did
(shifts on time, faints and completions per agent-day), the wall time to first match the
scripted return and the whole job's wall time; then one summary line per scenario over seeds.

Run: python benchmarks/learning.py [--only NAME ...] [--seeds 1 2 3] [--scratch [--scratch-on
town_week]] [--jobs 2]
(one torch thread a job; `town` takes about 6 minutes a seed on this 2-core machine; `--scratch`
adds `town` trained by `experiment=scratch` (no demonstrations, no scripted labels), whose rows
also give the deterministic policy's return and behaviour at fixed wall times (5, 10, 20 and
30 minutes: the last evaluation before each). `--jobs` runs seeds side by side in separate
processes, one thread each: two jobs on two cores gave each seed the same figures, in half the
wall time.)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from omegaconf import OmegaConf
from scipy import stats

from townlet.policy.train import train
from townlet.scenarios import load_config
from townlet.tracking.seed_report import mean_interval

# scenario -> overrides: the town trains with its default schedule (BC, then PPO); the small
# scenarios with ppo=fast.
RUNS = {
    "town": ["train.eval_every=25"],
    "kitchen_breakfast": ["ppo=fast", "train.total_ticks=3200", "train.eval_every=5"],
    "queue_conflict": ["ppo=fast", "train.total_ticks=3200", "train.eval_every=5"],
    "employment_punctuality": ["ppo=fast", "train.total_ticks=3200", "train.eval_every=5"],
    "rivalry_decay": ["ppo=fast", "train.total_ticks=3200", "train.eval_every=5"],
    "observation_baseline": ["ppo=fast", "train.total_ticks=640", "train.eval_every=5"],
    # 16 agents: the town's recipe (clone the routine, then PPO) as conf/experiment/village.yaml
    "village": ["experiment=village"],
    # seven days a week: conf/experiment/week.yaml (the town's recipe on town_week)
    "town_week": ["experiment=week", "train.eval_every=50"],
}
SCRATCH = ["experiment=scratch", "train.eval_every=50"]
WALL_MARKS_MIN = (5, 10, 20, 30)


def _brief(part: dict) -> dict:
    behaviour = part["behaviour"]
    return {
        "return": round(part["return_mean"], 4),
        "std": round(part["return_std"], 4),
        "on_time_rate": behaviour["on_time_rate"],
        "faints_per_agent_day": round(behaviour["faints_per_agent_day"], 4),
        "chats_per_agent_day": round(behaviour["chats_per_agent_day"], 4),
        "chat_success_rate": behaviour["chat_success_rate"],
        "late_help_events": behaviour["late_help_events"],
        "shift_takeover_events": behaviour["shift_takeover_events"],
        "completions_per_agent_day": {
            k: round(v, 3) for k, v in behaviour["completions_per_agent_day"].items() if v
        },
        "components": {k: round(v, 4) for k, v in part["components"].items() if v},
    }


def run_one(
    scenario: str, overrides: list[str], seed: int, label: str, keep: Path | None = None
) -> dict:
    """Train one seed; with `keep`, the run stays in keep/LABEL/seed_N laid out like a sweep's
    job (`.hydra/config.yaml` and `overrides.yaml`), so `townlet report keep/LABEL` reads it."""
    given = [f"scenario={scenario}", *overrides, f"seed={seed}"]
    cfg = load_config([*given, "train.progress=false", "train.threads=1", "tracking=off"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) if keep is None else keep / label / f"seed_{seed}"
        if keep is not None:
            (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
            (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
            (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(given))
        result = train(cfg, run_dir)
        history = [
            json.loads(x) for x in (run_dir / "evaluation_history.jsonl").read_text().splitlines()
        ]
    wall = time.perf_counter() - start
    final = result.evaluation
    scripted = final["scripted"]["return_mean"] if final["scripted"] else None
    reached = next(
        (
            h
            for h in history
            if scripted is not None and h["policy_deterministic"]["return_mean"] >= scripted - 1e-6
        ),
        None,
    )
    marks = {}
    for minutes in WALL_MARKS_MIN:
        before = [h for h in history if h["elapsed_sec"] <= 60 * minutes]
        if before:
            last = before[-1]
            marks[f"{minutes}min"] = {
                "epoch": last["epoch"],
                **_brief(last["policy_deterministic"]),
            }
    row = {
        "name": "learning",
        "scenario": label,
        "seed": seed,
        "value": round(final["policy_deterministic"]["return_mean"], 4),
        "unit": "return per agent-episode (deterministic policy)",
        "ppo_sampled": round(final["policy_sampled"]["return_mean"], 4),
        "scripted": None if scripted is None else round(scripted, 4),
        "random": round(final["random"]["return_mean"], 4),
        "seconds_to_scripted": None if reached is None else reached["elapsed_sec"],
        "job_seconds": round(wall, 1),
        "policy_deterministic": _brief(final["policy_deterministic"]),
        "policy_sampled": _brief(final["policy_sampled"]),
        "scripted_detail": _brief(final["scripted"]) if final["scripted"] else None,
        "at_wall_time": marks,
        "epochs": result.epochs,
        "agent_steps": result.steps,
        "threads": torch.get_num_threads(),
        "load_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(row), flush=True)
    return row


def summary(label: str, rows: list[dict]) -> None:
    values = [r["value"] for r in rows]
    sampled = [r["ppo_sampled"] for r in rows]
    scripted = rows[0]["scripted"]
    on_time = [r["policy_deterministic"]["on_time_rate"] for r in rows]
    beds = [r["policy_deterministic"]["completions_per_agent_day"].get("Bed", 0.0) for r in rows]
    print(
        json.dumps(
            {
                "name": "learning_summary",
                "scenario": label,
                "value": round(statistics.mean(values), 4),
                "unit": "mean deterministic return over seeds",
                "seeds": [r["seed"] for r in rows],
                "min": min(values),
                "iqm": round(float(stats.trim_mean(values, 0.25)), 4),
                "interval_95": mean_interval(np.array(values)),
                "per_seed": values,
                "sampled_mean": round(statistics.mean(sampled), 4),
                "scripted": scripted,
                "beats_scripted_in": sum(v >= (scripted or float("inf")) - 1e-6 for v in values),
                "on_time_rate": on_time,
                "bed_per_agent_day": beds,
                "faints_per_agent_day": [
                    r["policy_deterministic"]["faints_per_agent_day"] for r in rows
                ],
                "job_seconds_max": max(r["job_seconds"] for r in rows),
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="scenarios to run")
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    parser.add_argument("--scratch", action="store_true", help="also town by PPO alone")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained side by side")
    parser.add_argument(
        "--scratch-only", action="store_true", help="only the scratch recipe (with --scratch)"
    )
    parser.add_argument(
        "--scratch-on", default="town", help="the scenario the scratch recipe learns (town)"
    )
    parser.add_argument(
        "--keep", type=Path, help="keep each run in KEEP/LABEL/seed_N for `townlet report`"
    )
    args = parser.parse_args()
    runs = [(s, s, o) for s, o in RUNS.items() if not args.only or s in args.only]
    if args.scratch_only:
        runs = []
    if args.scratch:
        runs.append((args.scratch_on, f"{args.scratch_on}_ppo_from_scratch", SCRATCH))
    context = multiprocessing.get_context("spawn")  # fresh interpreters: one thread each
    for scenario, label, overrides in runs:
        if args.jobs > 1:
            with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
                jobs = [
                    pool.submit(run_one, scenario, overrides, seed, label, args.keep)
                    for seed in args.seeds
                ]
                rows = [job.result() for job in jobs]
        else:
            rows = [run_one(scenario, overrides, seed, label, args.keep) for seed in args.seeds]
        summary(label, rows)


if __name__ == "__main__":
    main()
