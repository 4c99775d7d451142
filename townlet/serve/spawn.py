"""Start the viewer's server for a run's recordings in a child process (tests, benchmarks and
tools that drive the page from outside)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from townlet.util.net import free_port

READY = "Townlet viewer on"


def serve_command(run: Path, port: int, *extra: str, db: str = "recordings.db") -> list[str]:
    """`python -m townlet.serve` on `run`'s index (`db`: a version-1 folder's is metrics.db)
    and recordings folder."""
    run = Path(run)
    return [
        sys.executable, "-m", "townlet.serve",
        "--db", str(run / db), "--recordings", str(run / "recordings"),
        "--port", str(port), *extra,
    ]  # fmt: skip


def spawn_viewer(run: Path, *extra: str, db: str = "recordings.db") -> tuple[subprocess.Popen, str]:
    """Start it on a free port and wait for its ready line; (the process, the page's URL)."""
    port = free_port()
    process = subprocess.Popen(
        serve_command(run, port, *extra, db=db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if READY not in line:
        process.kill()
        raise RuntimeError(f"the viewer did not start: {process.stderr.read()[-2000:]}")
    return process, f"http://127.0.0.1:{port}/"
