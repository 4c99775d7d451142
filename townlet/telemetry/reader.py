"""Reading epoch logs: line by line (streaming), with errors that name the file and line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class TelemetryError(ValueError):
    """A log that cannot be read; the message names the file and line."""


def iter_records(
    path: Path, tolerate_partial_last: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each line; a truncated last line is an error unless tolerated."""
    path = Path(path)
    if not path.exists():
        raise TelemetryError(f"{path}: no such file")
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                if tolerate_partial_last:
                    return
                raise TelemetryError(
                    f"{path}:{number}: truncated last line (a writer still writing?)"
                )
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                raise TelemetryError(f"{path}:{number}: not JSON ({error.msg})") from error
            if not isinstance(record, dict):
                raise TelemetryError(f"{path}:{number}: a record must be a JSON object")
            yield number, record


def truncate_after_epoch(path: Path, epoch: int) -> None:
    """Drop records past `epoch` (a run killed after logging but before checkpointing)."""
    path = Path(path)
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines(keepends=True)
        if line.endswith("\n") and json.loads(line).get("epoch", 0) <= epoch
    ]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(kept))
    os.replace(tmp, path)
