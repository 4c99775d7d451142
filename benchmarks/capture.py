"""Wall time to capture the five golden scenarios in one process, and each one, as JSON lines.

Each capture composes its config with Hydra, runs the scripted episode, derives the dense
maps and writes NPZ + JSON files into a temporary directory. Run: python benchmarks/capture.py
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from townlet.capture import capture
from townlet.scenarios import load_config

GOLDEN_FIVE = (
    "kitchen_breakfast",
    "queue_conflict",
    "employment_punctuality",
    "rivalry_decay",
    "observation_baseline",
)


def main() -> None:
    conditions = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    load_config()  # Hydra's one-off initialisation is not part of any scenario's cost
    total_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in GOLDEN_FIVE:
            start = time.perf_counter()
            result = capture(load_config([f"scenario={name}"]), Path(tmp) / name)
            seconds = time.perf_counter() - start
            agents = len(result.world.layout.agent_ids)
            print(
                json.dumps(
                    {
                        "name": "capture_scenario_seconds",
                        "value": round(seconds, 4),
                        "unit": "s",
                        "scenario": name,
                        "ticks": result.trace.ticks,
                        "agents": agents,
                        "ms_per_tick": round(1000 * seconds / result.trace.ticks, 3),
                        **conditions,
                    }
                ),
                flush=True,
            )
    total = time.perf_counter() - total_start
    print(
        json.dumps(
            {
                "name": "capture_golden_five_seconds",
                "value": round(total, 4),
                "unit": "s",
                "scenarios": len(GOLDEN_FIVE),
                **conditions,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
