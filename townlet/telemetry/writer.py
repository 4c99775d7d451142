"""NDJSON epoch records with `log_frequency` and rotation (`ppo.jsonl` -> `ppo.jsonl.1`, ...)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from townlet.telemetry.schema import CURRENT_VERSION, V13_PREFIXES, required_names


class TelemetryWriter:
    """Appends one JSON line per logged epoch; rotates after `max_entries` lines (0 = never).

    `log_stream_offset` counts records written up to and including each record (1 for the
    first, as in the system we replace), across rotation and resume
    (the trainer restores it from its checkpoint).
    """

    def __init__(self, path: Path, log_frequency: int = 1, max_entries: int = 0, offset: int = 0):
        if log_frequency < 1:
            raise ValueError(f"telemetry.log_frequency must be >= 1, got {log_frequency}")
        if max_entries < 0:
            raise ValueError(f"telemetry.max_entries must be >= 0, got {max_entries}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.log_frequency = log_frequency
        self.max_entries = max_entries
        self.offset = offset
        self._lines_in_file = self._count_lines()

    def _count_lines(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as handle:
            return sum(1 for _ in handle)

    def should_log(self, epoch: int) -> bool:
        return epoch % self.log_frequency == 0

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write a complete record (every required key, finite numbers); return it."""
        # 1.2 is 1.1 plus the anneal keys, 1.3 1.2 plus the profile and weekday keys: a record
        # says which.
        anneal = any(key.startswith("anneal_") for key in record)
        newer = any(key.startswith(V13_PREFIXES) for key in record)
        version = 1.3 if newer else 1.2 if anneal else float(CURRENT_VERSION)
        record = {**record, "telemetry_version": version, "log_stream_offset": self.offset + 1}
        missing = [k for k in required_names(CURRENT_VERSION) if k not in record]
        if missing:
            raise ValueError(f"telemetry record lacks {missing}")
        for key, value in record.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"telemetry record key {key} is not finite: {value}")
        if self.max_entries and self._lines_in_file >= self.max_entries:
            self._rotate()
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self._lines_in_file += 1
        self.offset += 1
        return record

    def _rotate(self) -> None:
        """ppo.jsonl.N -> .N+1, ..., ppo.jsonl -> ppo.jsonl.1 (like logrotate)."""
        existing = sorted(
            (
                int(p.name.rsplit(".", 1)[1])
                for p in self.path.parent.glob(self.path.name + ".*")
                if p.name.rsplit(".", 1)[1].isdigit()
            ),
            reverse=True,
        )
        for n in existing:
            os.replace(
                self.path.with_name(f"{self.path.name}.{n}"),
                self.path.with_name(f"{self.path.name}.{n + 1}"),
            )
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._lines_in_file = 0
