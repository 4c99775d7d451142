"""`recordings_summary.json`: what a run recorded, counted by reason, for the run's reader."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from townlet.recording.index import RecordingIndex
from townlet.util.atomic import atomic_write_json

SUMMARY_NAME = "recordings_summary.json"


def summarise_recordings(run_dir: Path) -> dict[str, Any]:
    """Count the run's indexed episodes by recording reason and write the summary file."""
    index = RecordingIndex.for_run(run_dir, create=False)
    try:
        rows = index.list(limit=None)
    finally:
        index.close()
    by_reason = Counter(reason for row in rows for reason in row["recording_reasons"])
    summary = {
        "recordings": len(rows),
        "by_reason": dict(by_reason),
        "episodes": [row["episode_id"] for row in rows],
    }
    atomic_write_json(Path(run_dir) / SUMMARY_NAME, summary)
    return summary
