"""Regenerate `docs/samples/`: one canonical record per supported telemetry version, taken from
a real (short) training run of our own trainer.

Run from the checkout: python docs/samples/regenerate.py [OUTPUT_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import orjson

from townlet.policy.train import train
from townlet.scenarios import load_config
from townlet.telemetry.schema import REQUIRED

DEFAULT_DIR = Path("docs") / "samples"  # run from the checkout: the samples it documents


def make_samples(output_dir: Path = DEFAULT_DIR) -> list[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            [
                "scenario=kitchen_breakfast",
                "ppo=fast",
                "ppo.num_envs=8",
                "train.total_ticks=64",
                "train.eval_episodes=1",
                "train.progress=false",
            ]
        )
        train(cfg, Path(tmp))
        lines = (Path(tmp) / "telemetry" / "ppo.jsonl").read_bytes().splitlines()
    record = orjson.loads(lines[-1])
    v10 = {k.name: record[k.name] for k in REQUIRED["1.0"]}
    v10["telemetry_version"] = 1.0
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for version, sample in (("1.0", v10), ("1.1", record)):
        path = output_dir / f"telemetry_v{version}.jsonl"
        path.write_bytes(orjson.dumps(sample) + b"\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in make_samples(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR):
        print(path)
