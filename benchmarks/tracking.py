"""What tracking costs, as JSON lines: training throughput with MLflow tracking on vs off for a
short run, and the wall time of a 4-job joblib sweep against the same jobs one after another.

Tracking logs into a temporary SQLite store. Run: python benchmarks/tracking.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOB = [
    "experiments/train.py",
    "scenario=kitchen_breakfast",
    "ppo=fast",
    "train.total_ticks=640",
    "train.eval_episodes=1",
    "train.progress=false",
]


def run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return time.perf_counter() - start


def steady_rate(run_dir: Path) -> float:
    records = [
        json.loads(x) for x in (run_dir / "telemetry" / "ppo.jsonl").read_text().splitlines()
    ][2:]
    return sum(r["steps_per_sec"] * r["epoch_duration_sec"] for r in records) / sum(
        r["epoch_duration_sec"] for r in records
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TOWNLET_TRACKING_URI": f"sqlite:///{Path(tmp) / 'mlruns.db'}"}
        on, off, on_wall, off_wall = [], [], [], []
        for i in range(3):  # alternate; this machine is noisy
            for tracking, rates, walls in (("mlflow", on, on_wall), ("off", off, off_wall)):
                out = Path(tmp) / f"{tracking}{i}"
                walls.append(run([*JOB, f"tracking={tracking}", f"hydra.run.dir={out}"], env))
                rates.append(steady_rate(out))
        ratio = statistics.median(on) / statistics.median(off)
        print(
            json.dumps(
                {
                    "name": "training_throughput_ratio_tracking_on_vs_off",
                    "value": round(ratio, 3),
                    "unit": "ratio",
                    "tracked": round(statistics.median(on)),
                    "untracked": round(statistics.median(off)),
                    "runs_each": 3,
                    "job": "kitchen_breakfast ppo=fast 20 epochs",
                }
            ),
            flush=True,
        )
        print(
            json.dumps(
                {
                    "name": "job_wall_time_tracking_on_minus_off",
                    "unit": "s",
                    "value": round(statistics.median(on_wall) - statistics.median(off_wall), 2),
                    "note": "fixed cost per job: importing mlflow, creating the run, logging",
                }
            ),
            flush=True,
        )
        grid = ["ppo.learning_rate=1e-3,3e-4", "ppo.update_epochs=2,3"]
        parallel = run(
            [
                *JOB[:1],
                "-m",
                *JOB[1:],
                *grid,
                "hydra/launcher=joblib",
                "hydra.launcher.n_jobs=2",
                f"hydra.sweep.dir={Path(tmp) / 'par'}",
            ],
            env,
        )
        serial = run([*JOB[:1], "-m", *JOB[1:], *grid, f"hydra.sweep.dir={Path(tmp) / 'ser'}"], env)
        print(
            json.dumps(
                {
                    "name": "sweep_4_jobs_wall_time",
                    "value": round(parallel, 2),
                    "unit": "s",
                    "launcher": "joblib n_jobs=2",
                    "serial_s": round(serial, 2),
                    "speedup": round(serial / parallel, 3),
                    "cores": os.cpu_count(),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
