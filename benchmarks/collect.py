"""Run benchmark scripts and keep what they print for the manual's benchmarks page.

Each script's JSON figure lines are stamped with the script, the date, the machine, the
one-minute load when it started and the commit, and replace that script's earlier figures in
docs/benchmarks/figures.jsonl (other scripts' figures stay). `make docs` turns the file into
docs/reference/benchmarks.md.

Run: python benchmarks/collect.py [--only world_step train_sps ...] [--output FILE]
The default set takes a few minutes on 2 cores; the slow scripts (learning, serve, viewer,
sweeps, video, hostile) run only when named.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from figures import figure_from_line, read_figures  # noqa: E402

from townlet.util.atomic import atomic_write_bytes  # noqa: E402

QUICK = {
    "world_step": ["--threads", "1", "--seconds", "1"],
    "train_sps": ["--epochs", "6"],
    "capture": [],
    "telemetry": ["--records", "200000"],
    "recording": [],
    "evaluation": ["--repeats", "2"],
}
"""Scripts of the default set and the arguments that keep each to a minute or two."""
SLOW = {"learning": [], "serve": [], "viewer": [], "sweeps": [], "video": [], "hostile": []}


def machine() -> str:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__}"


def commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def run_script(script: str, args: list[str]) -> list[dict]:
    """The script's figures, stamped; its other output passes through to stderr."""
    stamp = {
        "script": f"benchmarks/{script}.py",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "commit": commit(),
        "load": round(os.getloadavg()[0], 2),
    }
    done = subprocess.run(
        [sys.executable, str(HERE / f"{script}.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    sys.stderr.write(done.stderr[-2000:])
    if done.returncode != 0:
        raise SystemExit(f"collect: benchmarks/{script}.py exited {done.returncode}")
    figures = []
    for line in done.stdout.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        figure = figure_from_line(parsed, stamp) if isinstance(parsed, dict) else None
        if figure is not None:
            figures.append(figure)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        nargs="*",
        choices=sorted({**QUICK, **SLOW}),
        help="scripts to run (default: the quick set)",
    )
    parser.add_argument(
        "--output", type=Path, default=HERE.parent / "docs" / "benchmarks" / "figures.jsonl"
    )
    options = parser.parse_args()
    kept = read_figures(options.output)
    for script in options.only or list(QUICK):
        figures = run_script(script, {**QUICK, **SLOW}[script])
        kept = [f for f in kept if f["script"] != f"benchmarks/{script}.py"] + figures
        atomic_write_bytes(options.output, "".join(json.dumps(f) + "\n" for f in kept).encode())
        print(f"{script}: {len(figures)} figure(s) kept in {options.output}", flush=True)


if __name__ == "__main__":
    main()
