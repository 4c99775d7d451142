"""Which code made a file: the package version and, in a git checkout, its commit."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path


@functools.cache  # one `git` process per process: recorders and live sessions ask repeatedly
def git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=Path(__file__).resolve().parent,  # the package's own checkout, if any
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
