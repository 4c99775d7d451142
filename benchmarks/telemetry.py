"""Validate and summarise a 1,000,000-record epoch log, as JSON lines.

The log is the canonical v1.1 record (docs/samples) with epoch, steps and losses varied per
line (about 1.7 GB). Each tool runs as its CLI in a subprocess; peak memory is measured at
100,000 and 1,000,000 records to show it stays flat. Run: python benchmarks/telemetry.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from townlet.telemetry.parallel import PARALLEL_MIN_BYTES

ROOT = Path(__file__).resolve().parents[1]


def make_log(path: Path, records: int) -> int:
    template = orjson.loads((ROOT / "docs" / "samples" / "telemetry_v1.1.jsonl").read_bytes())
    with open(path, "wb", buffering=1 << 22) as handle:
        for i in range(records):
            template["epoch"] = i + 1
            template["steps"] = (i + 1) * 2048
            template["loss_total"] = 0.5 / (1 + i % 997)
            template["kl_divergence"] = 0.001 * (i % 13)
            template["log_stream_offset"] = i
            handle.write(orjson.dumps(template) + b"\n")
    return path.stat().st_size


def timed(verb: str, log: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of `python -m townlet.telemetry VERB LOG` in a child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "townlet.telemetry", verb, str(log)], capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for records in (args.records // 10, args.records):
            log = Path(tmp) / f"ppo_{records}.jsonl"
            size = make_log(log, records)
            for verb in ("validate", "summary"):
                seconds, peak = timed(verb, log)
                processes = (
                    os.cpu_count() if verb == "validate" and size >= PARALLEL_MIN_BYTES else 1
                )
                conditions = {
                    "records": records,
                    "log_mb": round(size / 2**20),
                    "processes": processes,
                }
                print(
                    json.dumps(
                        {
                            "name": f"telemetry_{verb}_seconds",
                            "value": round(seconds, 2),
                            "unit": "s",
                            **conditions,
                        }
                    ),
                    flush=True,
                )
                print(
                    json.dumps(
                        {
                            "name": f"telemetry_{verb}_peak_rss_per_process",
                            "value": round(peak, 1),
                            "unit": "MiB",
                            **conditions,
                        }
                    ),
                    flush=True,
                )
            log.unlink()


if __name__ == "__main__":
    main()
